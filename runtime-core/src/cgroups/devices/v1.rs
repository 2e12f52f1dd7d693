//! The v1 devices controller: write a [`Policy`] to devices.allow / devices.deny.
//!
//! A fresh cgroup inherits its parent's list, so the policy is written from a reset
//! (`a` to devices.deny or devices.allow, then the exceptions). On a live container
//! switching between two allow lists, only the difference is written (new grants
//! first, then revocations), so running processes never see a moment of "deny all".

use std::path::Path;

use super::{DevKind, Entry, Policy};
use crate::cgroups::{write_field, CgroupError};

/// Read the current policy from devices.list. In allow-all mode the kernel lists only
/// `a *:* rwm` and hides the deny exceptions: `None` then, as they cannot be known.
pub fn current(dir: &Path) -> Result<Option<Policy>, CgroupError> {
    let p = dir.join("devices.list");
    let text = std::fs::read_to_string(&p).map_err(|e| CgroupError::Read(p.clone(), e))?;
    Ok(parse_list(&text))
}

/// Parse devices.list (see [`current`]).
pub fn parse_list(text: &str) -> Option<Policy> {
    let mut p = Policy::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 3 {
            continue;
        }
        let kind = match f[0] {
            "a" => return None,
            "c" => DevKind::Char,
            "b" => DevKind::Block,
            _ => continue,
        };
        let Some((ma, mi)) = f[1].split_once(':') else {
            continue;
        };
        let num = |s: &str| s.parse::<u32>().ok();
        let bits = super::parse_access(f[2]).unwrap_or(0);
        if bits != 0 {
            *p.exceptions.entry((kind, num(ma), num(mi))).or_insert(0) |= bits;
        }
    }
    Some(p)
}

/// The writes (file, line) that take the cgroup from `current` to `target`.
pub fn transition(current: Option<&Policy>, target: &Policy) -> Vec<(&'static str, String)> {
    // Where the default action is set, and where exceptions to it are added.
    let (default_file, exception_file) = if target.default_allow {
        ("devices.allow", "devices.deny")
    } else {
        ("devices.deny", "devices.allow")
    };
    let mut out = Vec::new();
    match current {
        Some(cur) if !cur.default_allow && !target.default_allow => {
            for (k, bits) in &target.exceptions {
                if cur.exceptions.get(k).is_none_or(|c| c & bits != *bits) {
                    out.push((exception_file, Entry(k, *bits).to_string()));
                }
            }
            for (k, bits) in &cur.exceptions {
                let keep = target.exceptions.get(k).copied().unwrap_or(0);
                let extra = bits & !keep;
                if extra != 0 {
                    out.push((default_file, Entry(k, extra).to_string()));
                }
            }
        }
        _ => {
            out.push((default_file, "a".to_string()));
            for (k, bits) in &target.exceptions {
                out.push((exception_file, Entry(k, *bits).to_string()));
            }
        }
    }
    out
}

/// Bring the devices cgroup at `dir` to `target`.
pub fn apply(dir: &Path, target: &Policy) -> Result<(), CgroupError> {
    let cur = current(dir)?;
    for (file, line) in transition(cur.as_ref(), target) {
        write_field("devices", &dir.join(file), &line)?;
    }
    Ok(())
}
