//! Device access control: which device nodes the container may create (mknod), read
//! and write. `linux.resources.devices` is an ordered list of allow/deny rules; runc
//! appends its default allow list (null, zero, full, tty, random, urandom, ptmx, pts,
//! and mknod of anything) and so does runrs.
//!
//! The rules are first reduced to a [`Policy`] with the kernel's v1 semantics (a
//! default action plus exceptions, later rules refining earlier ones). On cgroup v1 the
//! policy is written to devices.allow / devices.deny ([`v1`]); on cgroup v2 it becomes
//! a BPF_PROG_TYPE_CGROUP_DEVICE program ([`bpf`]) attached to the container's cgroup.
//! See Documentation/admin-guide/cgroup-v1/devices.rst and the OCI config-linux.md
//! "Allowed Device List".

pub mod bpf;
pub mod v1;

use std::collections::BTreeMap;
use std::fmt;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, Spec};

use super::CgroupError;

/// Access bits, numbered as the kernel's BPF_DEVCG_ACC_* flags.
pub mod access {
    /// mknod(2).
    pub const MKNOD: u8 = 1;
    /// open for reading.
    pub const READ: u8 = 2;
    /// open for writing.
    pub const WRITE: u8 = 4;
    /// All three.
    pub const ALL: u8 = MKNOD | READ | WRITE;
}

/// The device types a cgroup rule can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DevKind {
    /// Character devices.
    Char,
    /// Block devices.
    Block,
}

impl DevKind {
    fn letter(self) -> char {
        match self {
            DevKind::Char => 'c',
            DevKind::Block => 'b',
        }
    }
}

/// One rule of `linux.resources.devices`, checked and normalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// `None` for type `a` (all devices).
    pub kind: Option<DevKind>,
    /// `None` is the wildcard `*`.
    pub major: Option<u32>,
    /// `None` is the wildcard `*`.
    pub minor: Option<u32>,
    /// [`access`] bits.
    pub access: u8,
    /// Allow or deny.
    pub allow: bool,
}

impl Rule {
    const fn allow(kind: DevKind, major: Option<u32>, minor: Option<u32>, access: u8) -> Rule {
        Rule {
            kind: Some(kind),
            major,
            minor,
            access,
            allow: true,
        }
    }

    /// Parse an OCI rule. A missing type is `a`, a missing access is `rwm` (both as in
    /// the spec's defaults); a missing or -1 major/minor is the wildcard.
    pub fn from_oci(i: usize, d: &LinuxDeviceCgroup) -> Result<Rule, CgroupError> {
        let field = format!("devices[{i}]");
        let bad = |reason: String| CgroupError::Resource {
            field: field.clone(),
            reason,
        };
        let kind = match d.typ().unwrap_or_default() {
            LinuxDeviceType::A => None,
            LinuxDeviceType::C | LinuxDeviceType::U => Some(DevKind::Char),
            LinuxDeviceType::B => Some(DevKind::Block),
            LinuxDeviceType::P => {
                return Err(bad(
                    "type \"p\" (fifo) is not subject to the device cgroup; use a, b or c".into(),
                ))
            }
        };
        let num = |v: Option<i64>, what: &str| -> Result<Option<u32>, CgroupError> {
            match v {
                None | Some(-1) => Ok(None),
                Some(n) if (0..=u32::MAX as i64).contains(&n) => Ok(Some(n as u32)),
                Some(n) => Err(bad(format!("invalid {what} number {n}"))),
            }
        };
        let access = match d.access().as_deref() {
            None | Some("") => access::ALL,
            Some(s) => parse_access(s).ok_or_else(|| {
                bad(format!(
                    "invalid access {s:?} (a combination of r, w and m)"
                ))
            })?,
        };
        Ok(Rule {
            kind,
            major: num(d.major(), "major")?,
            minor: num(d.minor(), "minor")?,
            access,
            allow: d.allow(),
        })
    }
}

fn parse_access(s: &str) -> Option<u8> {
    let mut bits = 0;
    for c in s.chars() {
        bits |= match c {
            'r' => access::READ,
            'w' => access::WRITE,
            'm' => access::MKNOD,
            // runc 1.1 accepts "rwa" (tools write it for "all"); its rules keep only
            // r, w and m, so `a` adds nothing there either.
            'a' => 0,
            _ => return None,
        };
    }
    Some(bits)
}

/// Render access bits as `rwm` letters.
pub fn access_string(bits: u8) -> String {
    let mut s = String::new();
    if bits & access::READ != 0 {
        s.push('r');
    }
    if bits & access::WRITE != 0 {
        s.push('w');
    }
    if bits & access::MKNOD != 0 {
        s.push('m');
    }
    s
}

/// runc's default rules, appended after the spec's own (runc `AllowedDevices`). They
/// include /dev/net/tun (c 10:200 rwm), as runc 1.1 and runc >= 1.2.4 do: 1.2.0 dropped it
/// and re-added it after users' containers that mknod a tun device broke (runc#4555).
/// The ones with a path are dropped when `linux.devices` defines a device at that path.
const DEFAULTS: [(Option<&str>, Rule); 11] = [
    (None, Rule::allow(DevKind::Char, None, None, access::MKNOD)),
    (None, Rule::allow(DevKind::Block, None, None, access::MKNOD)),
    (
        Some("/dev/null"),
        Rule::allow(DevKind::Char, Some(1), Some(3), access::ALL),
    ),
    (
        Some("/dev/random"),
        Rule::allow(DevKind::Char, Some(1), Some(8), access::ALL),
    ),
    (
        Some("/dev/full"),
        Rule::allow(DevKind::Char, Some(1), Some(7), access::ALL),
    ),
    (
        Some("/dev/tty"),
        Rule::allow(DevKind::Char, Some(5), Some(0), access::ALL),
    ),
    (
        Some("/dev/zero"),
        Rule::allow(DevKind::Char, Some(1), Some(5), access::ALL),
    ),
    (
        Some("/dev/urandom"),
        Rule::allow(DevKind::Char, Some(1), Some(9), access::ALL),
    ),
    // /dev/pts/* and /dev/ptmx.
    (
        None,
        Rule::allow(DevKind::Char, Some(136), None, access::ALL),
    ),
    (
        None,
        Rule::allow(DevKind::Char, Some(5), Some(2), access::ALL),
    ),
    // /dev/net/tun.
    (
        None,
        Rule::allow(DevKind::Char, Some(10), Some(200), access::ALL),
    ),
];

/// The full rule list of a container: the spec's `linux.resources.devices`, then the
/// defaults.
pub fn rules_for(spec: &Spec) -> Result<Vec<Rule>, CgroupError> {
    let linux = spec.linux().as_ref();
    let spec_rules = linux
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().as_ref());
    let own_paths: Vec<&std::path::Path> = linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
        .map(|d| d.path().as_path())
        .collect();
    with_defaults(
        spec_rules.map(Vec::as_slice).unwrap_or_default(),
        &own_paths,
    )
}

/// `rules` then the defaults not overridden by a device at one of `own_paths`.
pub fn with_defaults(
    rules: &[LinuxDeviceCgroup],
    own_paths: &[&std::path::Path],
) -> Result<Vec<Rule>, CgroupError> {
    let mut out = rules
        .iter()
        .enumerate()
        .map(|(i, d)| Rule::from_oci(i, d))
        .collect::<Result<Vec<_>, _>>()?;
    for (path, rule) in DEFAULTS {
        if path.is_some_and(|p| own_paths.iter().any(|o| *o == std::path::Path::new(p))) {
            continue;
        }
        out.push(rule);
    }
    Ok(out)
}

/// Key of an exception: type, major, minor (`None` = wildcard).
pub type Key = (DevKind, Option<u32>, Option<u32>);

/// The effect of a rule list, as the v1 devices controller keeps it: a default action
/// and exceptions to it. In an allow-list policy (`default_allow == false`) every
/// exception allows its access bits; in a deny-list policy every exception denies them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// What happens to a device no exception matches.
    pub default_allow: bool,
    /// Exceptions with their access bits (never empty).
    pub exceptions: BTreeMap<Key, u8>,
}

impl Policy {
    /// Apply `rules` in order, starting from "deny everything" (runc's emulator does
    /// the same). A rule for all devices (`a *:* rwm`) resets the policy. A rule of the
    /// same action as the default takes its bits away from the exception with exactly
    /// the same type and numbers (as the kernel does); any other rule adds an exception.
    /// Type `a` with numbers or partial access stands for the same rule on `c` and `b`.
    pub fn from_rules(rules: &[Rule]) -> Policy {
        let mut p = Policy::default();
        for r in rules {
            match r.kind {
                None if r.major.is_none() && r.minor.is_none() && r.access == access::ALL => {
                    p.default_allow = r.allow;
                    p.exceptions.clear();
                }
                None => {
                    for kind in [DevKind::Char, DevKind::Block] {
                        p.apply_one(Rule {
                            kind: Some(kind),
                            ..*r
                        });
                    }
                }
                Some(_) => p.apply_one(*r),
            }
        }
        p
    }

    fn apply_one(&mut self, r: Rule) {
        let Some(kind) = r.kind else { return };
        let key = (kind, r.major, r.minor);
        if r.allow == self.default_allow {
            if let Some(bits) = self.exceptions.get_mut(&key) {
                *bits &= !r.access;
                if *bits == 0 {
                    self.exceptions.remove(&key);
                }
            }
        } else if r.access != 0 {
            *self.exceptions.entry(key).or_insert(0) |= r.access;
        }
    }

    /// Whether `access` to the device is allowed, with the kernel's matching: in an
    /// allow list one exception must grant every requested bit; in a deny list any
    /// exception sharing a requested bit denies.
    pub fn allows(&self, kind: DevKind, major: u32, minor: u32, access: u8) -> bool {
        let matching = self.exceptions.iter().filter(|((k, ma, mi), _)| {
            *k == kind && ma.is_none_or(|m| m == major) && mi.is_none_or(|m| m == minor)
        });
        if self.default_allow {
            !matching.into_iter().any(|(_, bits)| bits & access != 0)
        } else {
            matching.into_iter().any(|(_, bits)| access & !bits == 0)
        }
    }
}

/// One exception in the v1 devices.list syntax (`c 1:3 rwm`).
pub struct Entry<'a>(pub &'a Key, pub u8);

impl fmt::Display for Entry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ((kind, major, minor), bits) = (self.0, self.1);
        let n = |v: &Option<u32>| v.map_or("*".to_string(), |v| v.to_string());
        write!(
            f,
            "{} {}:{} {}",
            kind.letter(),
            n(major),
            n(minor),
            access_string(bits)
        )
    }
}

#[cfg(test)]
mod tests;
