//! `linux.resources` as systemd unit properties (systemd.resource-control(5)), the
//! subset runc's systemd driver sets: memory, CPU weight/shares, quota and period,
//! cpusets (v2), tasks, IO weight and the device allow list. The exact values are
//! written through cgroupfs afterwards; these are what systemd re-applies when it
//! realises the unit again.

use oci_spec::runtime::LinuxResources;

use crate::cgroups::devices::{access_string, DevKind, Policy};
use crate::cgroups::limits::conv;
use crate::cgroups::Mode;

/// A unit property value, in the D-Bus type systemd expects for its name.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Prop {
    /// `b`
    Bool(bool),
    /// `t`
    U64(u64),
    /// `s`
    Str(String),
    /// `au` (PIDs)
    U32s(Vec<u32>),
    /// `ay` (a CPU or NUMA node bitmask)
    Bytes(Vec<u8>),
    /// `a(ss)` (DeviceAllow: path or class, permissions)
    DeviceAllow(Vec<(String, String)>),
}

/// systemd's "no limit" for `t` limits (`CGROUP_LIMIT_MAX`, `USEC_INFINITY`).
const INFINITY: u64 = u64::MAX;

/// The properties for `res` on a host of `mode`. `devices`: the device policy to set
/// (None on an update that does not touch devices). `proc_devices`: the contents
/// of /proc/devices (names of majors for `char-<name>` entries).
pub fn properties(
    mode: Mode,
    res: &LinuxResources,
    devices: Option<&Policy>,
    proc_devices: &str,
) -> Vec<(&'static str, Prop)> {
    let v2 = mode == Mode::Unified;
    let mut p = Vec::new();
    if let Some(m) = res.memory() {
        let limit = m.limit().unwrap_or(0);
        if limit != 0 {
            let v = if limit < 0 { INFINITY } else { limit as u64 };
            p.push((if v2 { "MemoryMax" } else { "MemoryLimit" }, Prop::U64(v)));
        }
        if v2 {
            if let Some(r) = m.reservation().filter(|r| *r != 0) {
                let v = if r < 0 { INFINITY } else { r as u64 };
                p.push(("MemoryLow", Prop::U64(v)));
            }
            if let Ok(Some(s)) = conv::memory_swap_to_v2(m.swap().unwrap_or(0), limit) {
                let v = if s == "max" {
                    INFINITY
                } else {
                    s.parse().unwrap_or(INFINITY)
                };
                p.push(("MemorySwapMax", Prop::U64(v)));
            }
        }
    }
    if let Some(c) = res.cpu() {
        if let Some(shares) = c.shares().filter(|s| *s != 0) {
            if v2 {
                p.push(("CPUWeight", Prop::U64(conv::cpu_shares_to_weight(shares))));
            } else {
                p.push(("CPUShares", Prop::U64(shares)));
            }
        }
        let quota = c.quota().unwrap_or(0);
        let period = c.period().unwrap_or(0);
        if quota != 0 || period != 0 {
            let mut per_sec = INFINITY;
            if quota > 0 {
                let period = if period == 0 { 100_000 } else { period };
                // systemd keeps the quota as a percentage (10 ms per second steps):
                // round up so the exact cpu.max written afterwards is not above it.
                per_sec = (quota as u64).saturating_mul(1_000_000) / period;
                if per_sec % 10_000 != 0 {
                    per_sec = (per_sec / 10_000 + 1) * 10_000;
                }
            }
            p.push(("CPUQuotaPerSecUSec", Prop::U64(per_sec)));
        }
        if period != 0 {
            p.push(("CPUQuotaPeriodUSec", Prop::U64(period)));
        }
        if v2 {
            for (name, list) in [("AllowedCPUs", c.cpus()), ("AllowedMemoryNodes", c.mems())] {
                if let Some(bits) = list.as_deref().filter(|s| !s.is_empty()).and_then(bitmask) {
                    p.push((name, Prop::Bytes(bits)));
                }
            }
        }
    }
    if let Some(pids) = res.pids() {
        match pids.limit() {
            0 => {}
            l if l < 0 => p.push(("TasksMax", Prop::U64(INFINITY))),
            l => p.push(("TasksMax", Prop::U64(l as u64))),
        }
    }
    if let Some(w) = res
        .block_io()
        .as_ref()
        .and_then(|b| b.weight())
        .filter(|w| *w != 0)
    {
        if v2 {
            p.push(("IOWeight", Prop::U64(conv::blkio_weight_to_io_weight(w))));
        } else {
            p.push(("BlockIOWeight", Prop::U64(u64::from(w))));
        }
    }
    if let Some(policy) = devices {
        device_properties(policy, proc_devices, &mut p);
    }
    p
}

/// DevicePolicy and DeviceAllow for a policy (runc's `generateDeviceProperties`).
/// systemd knows allow lists only: a deny-list policy that is not "allow all" gets
/// a strict empty list here (the cgroupfs rules written afterwards are the real ones on
/// v1; on v2 both filters must pass, so such a policy denies every device).
fn device_properties(policy: &Policy, proc_devices: &str, p: &mut Vec<(&'static str, Prop)>) {
    if policy.default_allow {
        if policy.exceptions.is_empty() {
            p.push(("DevicePolicy", Prop::Str("auto".into())));
            p.push(("DeviceAllow", Prop::DeviceAllow(Vec::new())));
        } else {
            tracing::warn!(
                "systemd has no deny-list device rules: the unit gets an empty strict list"
            );
            p.push(("DevicePolicy", Prop::Str("strict".into())));
            p.push(("DeviceAllow", Prop::DeviceAllow(Vec::new())));
        }
        return;
    }
    let mut allow = Vec::new();
    for ((kind, major, minor), bits) in &policy.exceptions {
        let class = match kind {
            DevKind::Char => "char",
            DevKind::Block => "block",
        };
        let path = match (major, minor) {
            (None, None) => format!("{class}-*"),
            (Some(ma), None) => match major_name(proc_devices, *kind, *ma) {
                Some(n) => format!("{class}-{n}"),
                None => {
                    tracing::warn!("device rule {class} {ma}:* has no name in /proc/devices: not given to systemd");
                    continue;
                }
            },
            (Some(ma), Some(mi)) => format!("/dev/{class}/{ma}:{mi}"),
            (None, Some(mi)) => {
                tracing::warn!("device rule {class} *:{mi} cannot be expressed for systemd");
                continue;
            }
        };
        allow.push((path, access_string(*bits)));
    }
    p.push(("DevicePolicy", Prop::Str("strict".into())));
    p.push(("DeviceAllow", Prop::DeviceAllow(allow)));
}

/// The name /proc/devices gives a major number of this kind.
fn major_name(proc_devices: &str, kind: DevKind, major: u32) -> Option<String> {
    let section = match kind {
        DevKind::Char => "Character devices:",
        DevKind::Block => "Block devices:",
    };
    let mut inside = false;
    for line in proc_devices.lines() {
        let line = line.trim();
        if line.ends_with("devices:") {
            inside = line == section;
            continue;
        }
        if !inside {
            continue;
        }
        let mut it = line.split_whitespace();
        if let (Some(num), Some(name)) = (it.next(), it.next()) {
            if num.parse() == Ok(major) {
                return Some(name.to_string());
            }
        }
    }
    None
}

/// A cpuset list (`0-3,5`) as systemd's bitmask: bit n of byte n/8 for CPU n.
/// None for a list that does not parse (the cgroupfs write reports it).
fn bitmask(list: &str) -> Option<Vec<u8>> {
    let mut bytes: Vec<u8> = Vec::new();
    for part in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<usize>().ok()?,
                b.trim().parse::<usize>().ok()?,
            ),
            None => {
                let n = part.parse::<usize>().ok()?;
                (n, n)
            }
        };
        // A cpuset beyond 64 Ki CPUs is a typo, not a machine.
        if lo > hi || hi >= 65_536 {
            return None;
        }
        for n in lo..=hi {
            if bytes.len() <= n / 8 {
                bytes.resize(n / 8 + 1, 0);
            }
            bytes[n / 8] |= 1 << (n % 8);
        }
    }
    Some(bytes)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn bitmask_of_cpu_lists() {
        assert_eq!(bitmask("0"), Some(vec![1]));
        assert_eq!(bitmask("0-3,5"), Some(vec![0b0010_1111]));
        assert_eq!(bitmask("9"), Some(vec![0, 2]));
        assert_eq!(bitmask("3-1"), None);
        assert_eq!(bitmask("x"), None);
        assert_eq!(bitmask("0-100000"), None);
    }

    #[test]
    fn major_names_from_proc_devices() {
        let pd = "Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  7 loop\n  8 sd\n";
        assert_eq!(major_name(pd, DevKind::Char, 136).as_deref(), Some("pts"));
        assert_eq!(major_name(pd, DevKind::Block, 8).as_deref(), Some("sd"));
        assert_eq!(major_name(pd, DevKind::Block, 1), None);
        assert_eq!(major_name(pd, DevKind::Char, 7), None);
    }
}
