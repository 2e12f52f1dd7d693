//! `runrs update`: change a container's resource limits, with runc's flags or a JSON
//! `linux.resources` document (`-r FILE`, `-r -` for stdin; the flags are then
//! ignored, as in runc). Values given replace the stored ones; the rest is kept.

use std::io::Read;

use anyhow::Context;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
use runtime_core::Container;

/// Arguments of `runrs update`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container id.
    id: String,
    /// JSON file with the resources to update, or '-' for stdin (other options are ignored).
    #[arg(short = 'r', long)]
    resources: Option<String>,
    /// Block IO weight, 10-1000.
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    /// CPU CFS period (µs).
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    /// CPU CFS quota (µs per period, -1 for none).
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share", visible_alias = "cpu-shares")]
    cpu_share: Option<u64>,
    /// CPU realtime period (µs).
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<u64>,
    /// CPU realtime runtime (µs per period).
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    cpu_rt_runtime: Option<i64>,
    /// CPUs to use (cpuset list).
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Memory nodes to use (cpuset list).
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with a unit: 64m, 1g).
    #[arg(long, allow_hyphen_values = true)]
    memory: Option<String>,
    /// Memory + swap limit; -1 for unlimited swap.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Memory reservation (soft limit).
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// Obsolete (kernel memory limits are ignored).
    #[arg(long = "kernel-memory", hide = true)]
    kernel_memory: Option<String>,
    /// Obsolete (kernel memory limits are ignored).
    #[arg(long = "kernel-memory-tcp", hide = true)]
    kernel_memory_tcp: Option<String>,
    /// Maximum number of processes (-1 for unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Intel RDT L3 cache schema (not supported by update yet).
    #[arg(long = "l3-cache-schema")]
    l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (not supported by update yet).
    #[arg(long = "mem-bw-schema")]
    mem_bw_schema: Option<String>,
}

/// Run `runrs update`.
pub fn run(root: &std::path::Path, a: Args) -> anyhow::Result<i32> {
    let mut c = Container::load(root, &a.id)?;
    let patch = match &a.resources {
        Some(src) => read_json(src)?,
        None => from_flags(&a)?,
    };
    c.update(&patch)?;
    Ok(0)
}

fn read_json(src: &str) -> anyhow::Result<LinuxResources> {
    let mut text = String::new();
    if src == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("read resources from stdin")?;
    } else {
        text = std::fs::read_to_string(src).with_context(|| format!("read resources {src}"))?;
    }
    let de = &mut serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de).with_context(|| {
        format!(
            "decode resources from {}",
            if src == "-" { "stdin" } else { src }
        )
    })
}

fn from_flags(a: &Args) -> anyhow::Result<LinuxResources> {
    if a.l3_cache_schema.is_some() || a.mem_bw_schema.is_some() {
        anyhow::bail!(
            "--l3-cache-schema/--mem-bw-schema: changing Intel RDT schemata of a running container is not supported yet (linux.intelRdt is applied at create)"
        );
    }
    if a.kernel_memory.is_some() || a.kernel_memory_tcp.is_some() {
        tracing::warn!("--kernel-memory and --kernel-memory-tcp are obsolete and ignored");
    }
    let mut r = LinuxResources::default();
    let mem = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<i64>> {
        v.as_deref()
            .map(|s| parse_bytes(s).with_context(|| format!("invalid value for --{flag}")))
            .transpose()
    };
    let (limit, swap, reservation) = (
        mem("memory", &a.memory)?,
        mem("memory-swap", &a.memory_swap)?,
        mem("memory-reservation", &a.memory_reservation)?,
    );
    if limit.is_some() || swap.is_some() || reservation.is_some() {
        let mut m = LinuxMemory::default();
        m.set_limit(limit);
        // --memory -1 alone also lifts the swap limit (done by the cgroup writer).
        m.set_swap(swap);
        m.set_reservation(reservation);
        r.set_memory(Some(m));
    }
    let cpu_given = a.cpu_period.is_some()
        || a.cpu_quota.is_some()
        || a.cpu_share.is_some()
        || a.cpu_rt_period.is_some()
        || a.cpu_rt_runtime.is_some()
        || a.cpuset_cpus.is_some()
        || a.cpuset_mems.is_some();
    if cpu_given {
        let mut c = LinuxCpu::default();
        c.set_period(a.cpu_period);
        c.set_quota(a.cpu_quota);
        c.set_shares(a.cpu_share);
        c.set_realtime_period(a.cpu_rt_period);
        c.set_realtime_runtime(a.cpu_rt_runtime);
        c.set_cpus(a.cpuset_cpus.clone());
        c.set_mems(a.cpuset_mems.clone());
        r.set_cpu(Some(c));
    }
    if let Some(l) = a.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(l);
        r.set_pids(Some(p));
    }
    if let Some(w) = a.blkio_weight {
        let mut b = LinuxBlockIo::default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    Ok(r)
}

/// A byte count as runc takes it (docker's RAMInBytes): a number with an optional
/// binary unit (k, m, g, t, p; "kb", "KiB" too), or -1.
pub fn parse_bytes(s: &str) -> anyhow::Result<i64> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let lower = t.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let num: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("{s:?} is not a size (like 1024, 64m or 1g)"))?;
    let unit = unit.trim();
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => anyhow::bail!("{s:?}: unknown unit (k, m, g, t or p)"),
    };
    Ok((num * mult) as i64)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1024").expect("n"), 1024);
        assert_eq!(parse_bytes("64m").expect("n"), 64 << 20);
        assert_eq!(parse_bytes("1G").expect("n"), 1 << 30);
        assert_eq!(parse_bytes("2KiB").expect("n"), 2048);
        assert_eq!(parse_bytes("1.5k").expect("n"), 1536);
        assert_eq!(parse_bytes("-1").expect("n"), -1);
        assert!(parse_bytes("12x").is_err());
        assert!(parse_bytes("m").is_err());
    }
}
