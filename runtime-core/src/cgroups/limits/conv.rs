//! Conversions between the OCI (cgroup v1 flavoured) values and cgroup v2 files, as
//! runc does them (libcontainer/cgroups/utils.go).

/// cpu.shares (2..262144) to cpu.weight (1..10000): runc's linear mapping.
/// 0 means "not set".
pub fn cpu_shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// blkio.weight (10..1000) to io.weight (1..10000). 0 means "not set".
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    let w = u64::from(weight.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// A v1 byte value for a v2 file: 0 is "not set", -1 is `max`.
pub fn num_to_str(v: i64) -> Option<String> {
    match v {
        0 => None,
        -1 => Some("max".into()),
        v => Some(v.to_string()),
    }
}

/// memory.swap.max from the OCI `swap` (memory + swap, v1 memsw) and `limit`.
/// Returns `None` when nothing is to be written.
pub fn memory_swap_to_v2(swap: i64, limit: i64) -> Result<Option<String>, String> {
    // Unlimited memory without a swap setting means unlimited swap too (as on v1).
    if limit == -1 && swap == 0 {
        return Ok(Some("max".into()));
    }
    match swap {
        0 => return Ok(None),
        -1 => return Ok(Some("max".into())),
        _ => {}
    }
    if limit == 0 || limit == -1 {
        return Err("a swap limit needs a memory limit".into());
    }
    if limit < 0 {
        return Err(format!("invalid memory limit {limit}"));
    }
    if swap < limit {
        return Err(format!(
            "swap ({swap}) is memory+swap and must not be less than the memory limit ({limit})"
        ));
    }
    Ok(Some((swap - limit).to_string()))
}

/// cpu.max from quota and period (0 = not set; quota < 0 = unlimited).
pub fn cpu_max(quota: i64, period: u64) -> Option<String> {
    if quota == 0 && period == 0 {
        return None;
    }
    let mut s = if quota > 0 {
        quota.to_string()
    } else {
        "max".to_string()
    };
    if period != 0 {
        s.push(' ');
        s.push_str(&period.to_string());
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_to_weight() {
        assert_eq!(cpu_shares_to_weight(0), 0);
        assert_eq!(cpu_shares_to_weight(2), 1);
        assert_eq!(cpu_shares_to_weight(1024), 39);
        assert_eq!(cpu_shares_to_weight(262_144), 10_000);
        assert_eq!(cpu_shares_to_weight(1_000_000), 10_000);
    }

    #[test]
    fn blkio_to_io_weight() {
        assert_eq!(blkio_weight_to_io_weight(0), 0);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    }

    #[test]
    fn swap() {
        assert_eq!(memory_swap_to_v2(0, 0), Ok(None));
        assert_eq!(memory_swap_to_v2(0, -1), Ok(Some("max".into())));
        assert_eq!(memory_swap_to_v2(-1, 100), Ok(Some("max".into())));
        assert_eq!(memory_swap_to_v2(300, 100), Ok(Some("200".into())));
        assert_eq!(memory_swap_to_v2(100, 100), Ok(Some("0".into())));
        assert!(memory_swap_to_v2(50, 100).is_err());
        assert!(memory_swap_to_v2(50, 0).is_err());
    }

    #[test]
    fn cpu_max_strings() {
        assert_eq!(cpu_max(0, 0), None);
        assert_eq!(cpu_max(50_000, 100_000).as_deref(), Some("50000 100000"));
        assert_eq!(cpu_max(-1, 0).as_deref(), Some("max"));
        assert_eq!(cpu_max(0, 20_000).as_deref(), Some("max 20000"));
        assert_eq!(cpu_max(25_000, 0).as_deref(), Some("25000"));
        assert_eq!(num_to_str(-1).as_deref(), Some("max"));
        assert_eq!(num_to_str(0), None);
    }
}
