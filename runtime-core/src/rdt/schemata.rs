//! Schemata lines: parsing the spec's `l3CacheSchema`, `memBwSchema` and `schemata`,
//! and merging them domain by domain (later lines override earlier ones).

use super::*;

/// One `RESOURCE:id=value;id=value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Line {
    pub(super) resource: String,
    pub(super) domains: Vec<(u32, String)>,
}

impl Line {
    pub(super) fn is_cache(resource: &str) -> bool {
        resource.starts_with("L3") || resource.starts_with("L2")
    }

    pub(super) fn parse(field: &str, text: &str) -> Result<Line, RdtError> {
        let t = text.trim();
        let (res, rest) = t.split_once(':').ok_or_else(|| {
            invalid(
                field,
                text,
                "expected RESOURCE:<id>=<value>;<id>=<value>...",
            )
        })?;
        let res = res.trim();
        if res.is_empty()
            || !res
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(invalid(
                field,
                text,
                format!("{res:?} is not a resctrl resource name (L3, L3CODE, L3DATA, L2, MB, ...)"),
            ));
        }
        let mut domains: Vec<(u32, String)> = Vec::new();
        for d in rest.split(';') {
            let d = d.trim();
            let (id, val) = d
                .split_once('=')
                .ok_or_else(|| invalid(field, text, format!("{d:?} is not <id>=<value>")))?;
            let id: u32 = id.trim().parse().map_err(|_| {
                invalid(
                    field,
                    text,
                    format!("domain id {:?} is not a number", id.trim()),
                )
            })?;
            let val = val.trim();
            let ok = if Self::is_cache(res) {
                !val.is_empty() && val.chars().all(|c| c.is_ascii_hexdigit())
            } else if res == "MB" || res == "SMBA" {
                !val.is_empty() && val.chars().all(|c| c.is_ascii_digit())
            } else {
                !val.is_empty() && val.chars().all(|c| c.is_ascii_alphanumeric())
            };
            if !ok {
                return Err(invalid(
                    field,
                    text,
                    if Self::is_cache(res) {
                        format!("domain {id}: {val:?} is not a hexadecimal capacity bitmask")
                    } else {
                        format!("domain {id}: {val:?} is not a decimal bandwidth value")
                    },
                ));
            }
            if domains.iter().any(|(i, _)| *i == id) {
                return Err(invalid(field, text, format!("domain {id} is given twice")));
            }
            domains.push((id, val.to_string()));
        }
        Ok(Line {
            resource: res.to_string(),
            domains,
        })
    }

    pub(super) fn render(&self) -> String {
        let d: Vec<String> = self
            .domains
            .iter()
            .map(|(i, v)| format!("{i}={v}"))
            .collect();
        format!("{}:{}", self.resource, d.join(";"))
    }

    pub(super) fn value(&self, resource: &str, v: &str) -> Option<u64> {
        u64::from_str_radix(v, if Self::is_cache(resource) { 16 } else { 10 }).ok()
    }
}

/// The schemata lines the spec asks for, merged, with the field each line came from.
pub(super) fn wanted(rdt: &LinuxIntelRdt) -> Result<Vec<(Line, &'static str)>, RdtError> {
    let mut out: Vec<(Line, &'static str)> = Vec::new();
    let mut push =
        |l: Line, field: &'static str| match out.iter_mut().find(|(x, _)| x.resource == l.resource)
        {
            Some((x, _)) => {
                for (id, v) in l.domains {
                    match x.domains.iter_mut().find(|(i, _)| *i == id) {
                        Some(slot) => slot.1 = v,
                        None => x.domains.push((id, v)),
                    }
                }
            }
            None => out.push((l, field)),
        };
    let mb = rdt.mem_bw_schema().as_deref().filter(|s| !s.is_empty());
    if let Some(l3) = rdt.l3_cache_schema().as_deref().filter(|s| !s.is_empty()) {
        const F: &str = "linux.intelRdt.l3CacheSchema";
        for line in l3.split('\n').filter(|l| !l.trim().is_empty()) {
            let l = Line::parse(F, line)?;
            // A legacy MB: line in l3CacheSchema gives way to memBwSchema.
            if l.resource == "MB" && mb.is_some() {
                continue;
            }
            push(l, F);
        }
    }
    if let Some(m) = mb {
        const F: &str = "linux.intelRdt.memBwSchema";
        if m.contains('\n') {
            return Err(invalid(F, m, "must be a single line"));
        }
        if !m.trim_start().starts_with("MB:") {
            return Err(invalid(F, m, "must start with MB:"));
        }
        push(Line::parse(F, m)?, F);
    }
    for (i, s) in rdt.schemata().iter().flatten().enumerate() {
        let f: &'static str = "linux.intelRdt.schemata";
        if s.contains('\n') {
            return Err(invalid(&format!("{f}[{i}]"), s, "must be a single line"));
        }
        if s.trim().is_empty() {
            continue;
        }
        push(Line::parse(&format!("{f}[{i}]"), s)?, f);
    }
    Ok(out)
}
