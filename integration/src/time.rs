//! RFC 3339 timestamps, as in the `created` field of the OCI state.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` strictly (uppercase `T`/`Z` as Go's
/// RFC3339Nano prints them; lowercase accepted as RFC 3339 allows).
pub fn parse_rfc3339(s: &str) -> Result<SystemTime> {
    let err = || format!("not an RFC 3339 timestamp: {s:?}");
    let b = s.as_bytes();
    if b.len() < 20 {
        bail!(err());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64> {
        let t = s.get(r).with_context(err)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            bail!(err());
        }
        t.parse::<i64>().with_context(err)
    };
    let sep_ok = b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't')
        && b[13] == b':'
        && b[16] == b':';
    if !sep_ok {
        bail!(err());
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        bail!(err());
    }
    let mut i = 19;
    let mut nanos: u64 = 0;
    if b[i] == b'.' {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        if end == start || end - start > 9 {
            bail!(err());
        }
        let frac = &s[start..end];
        nanos = format!("{frac:0<9}").parse().with_context(err)?;
        i = end;
    }
    let offset_secs = match &s[i..] {
        "Z" | "z" => 0,
        tz if tz.len() == 6
            && matches!(tz.as_bytes()[0], b'+' | b'-')
            && tz.as_bytes()[3] == b':' =>
        {
            let h = num(i + 1..i + 3)?;
            let m = num(i + 4..i + 6)?;
            let o = h * 3600 + m * 60;
            if tz.starts_with('-') {
                -o
            } else {
                o
            }
        }
        _ => bail!(err()),
    };
    let secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec - offset_secs;
    let secs = u64::try_from(secs).with_context(|| format!("{s:?} is before 1970"))?;
    Ok(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_rfc3339nano() -> Result<()> {
        let t = parse_rfc3339("2026-11-29T09:34:53.67912111Z")?;
        let d = t.duration_since(UNIX_EPOCH)?;
        assert_eq!(d.as_secs(), 1_795_944_893);
        assert_eq!(d.subsec_nanos(), 679_121_110);
        let t2 = parse_rfc3339("2026-11-29T10:34:53.67912111+01:00")?;
        assert_eq!(t, t2);
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z")?, UNIX_EPOCH);
        for bad in [
            "2026-11-29 09:34:53Z",
            "2026-11-29T09:34:53",
            "2026-13-01T00:00:00Z",
            "x",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
        Ok(())
    }
}
