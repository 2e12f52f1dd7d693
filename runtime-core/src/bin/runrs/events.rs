//! `runrs events`: container statistics and OOM notifications as JSON lines in runc's
//! event format (`{"type":"stats","id":…,"data":{cpu,memory,pids,blkio,hugetlb,…}}`
//! and `{"type":"oom","id":…}`). `--stats` prints one stats event and exits; otherwise
//! a stats event every `--interval` (Go duration syntax, default 5s) plus an oom event
//! each time the container hits OOM, until the container stops.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use runtime_core::host::c;
use runtime_core::CgroupMode as Mode;
use runtime_core::Container;
use runtime_core::{host as sys, Status};
use runtime_core::{BlkioEntry, MemoryEntry, Stats};
use runtime_core::{OomEvent, OomWatcher};
use serde::Serialize;

/// Arguments of `runrs events`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container id.
    id: String,
    /// Display the container's stats once, then exit.
    #[arg(long)]
    stats: bool,
    /// Stats collection interval.
    #[arg(long, default_value = "5s")]
    interval: String,
}

/// Run `runrs events`.
pub fn run(root: &std::path::Path, a: Args) -> anyhow::Result<i32> {
    let interval = parse_duration(&a.interval)?;
    let c = Container::load(root, &a.id)?;
    if c.status() == Status::Stopped {
        anyhow::bail!("container with id {} is not running", a.id);
    }
    if a.stats {
        print_event("stats", c.id(), Some(&c.stats()?))?;
        return Ok(0);
    }
    let mut watcher = match c.oom_watcher() {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("no OOM events: {}", runtime_core::chain(&e));
            None
        }
    };
    let mut next = Instant::now() + interval;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        let ready = match &watcher {
            Some(w) => {
                let ms = wait.as_millis().min(i32::MAX as u128) as i32;
                sys::poll_one(w.as_fd(), c::POLLIN, ms)? != 0
            }
            None => {
                std::thread::sleep(wait);
                false
            }
        };
        if ready {
            if drain(&mut watcher, c.id())? {
                return Ok(0);
            }
            continue;
        }
        next += interval;
        if c.status() == Status::Stopped {
            // An OOM that ended the container is reported before we leave.
            drain(&mut watcher, c.id())?;
            return Ok(0);
        }
        match c.stats() {
            Ok(s) => print_event("stats", c.id(), Some(&s))?,
            Err(e) => tracing::error!("{}", runtime_core::chain(&e)),
        }
    }
}

/// Print what the watcher has; true once the cgroup is gone.
fn drain(watcher: &mut Option<OomWatcher>, id: &str) -> anyhow::Result<bool> {
    let Some(w) = watcher else { return Ok(false) };
    while let Some(ev) = w.read()? {
        match ev {
            OomEvent::Oom { .. } => print_event("oom", id, None)?,
            OomEvent::Gone => return Ok(true),
        }
    }
    Ok(false)
}

fn print_event(typ: &str, id: &str, stats: Option<&Stats>) -> anyhow::Result<()> {
    let ev = Event {
        typ,
        id,
        data: stats.map(RuncStats::from),
    };
    println!("{}", serde_json::to_string(&ev)?);
    Ok(())
}

/// Parse a Go duration ("5s", "1m30s", "250ms", "1.5h").
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let bad = || anyhow::anyhow!("invalid duration {s:?} (like 5s, 500ms or 1m)");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..n_end].parse().map_err(|_| bad())?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..u_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * secs;
        rest = &rest[u_end..];
    }
    if total <= 0.0 {
        anyhow::bail!("duration interval must be greater than 0");
    }
    Ok(Duration::from_secs_f64(total))
}

// runc's types/events.go, field names and omitempty as there.

#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    typ: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<RuncStats>,
}

fn zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Serialize)]
struct RuncStats {
    cpu: Cpu,
    cpuset: Cpuset,
    memory: Memory,
    pids: Pids,
    blkio: Blkio,
    hugetlb: BTreeMap<String, Hugetlb>,
    intel_rdt: BTreeMap<String, u64>,
    network_interfaces: Option<Vec<u8>>,
}

#[derive(Serialize)]
struct Cpu {
    usage: CpuUsage,
    throttling: Throttling,
}

#[derive(Serialize)]
struct CpuUsage {
    #[serde(skip_serializing_if = "zero")]
    total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    percpu_user: Vec<u64>,
    kernel: u64,
    user: u64,
}

#[derive(Serialize)]
struct Throttling {
    #[serde(skip_serializing_if = "zero")]
    periods: u64,
    #[serde(rename = "throttledPeriods", skip_serializing_if = "zero")]
    throttled_periods: u64,
    #[serde(rename = "throttledTime", skip_serializing_if = "zero")]
    throttled_time: u64,
}

#[derive(Serialize)]
struct Cpuset {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cpus: Vec<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mems: Vec<u16>,
}

#[derive(Serialize)]
struct Entry {
    limit: u64,
    #[serde(skip_serializing_if = "zero")]
    usage: u64,
    #[serde(skip_serializing_if = "zero")]
    max: u64,
    failcnt: u64,
}

impl From<&MemoryEntry> for Entry {
    fn from(e: &MemoryEntry) -> Self {
        Entry {
            limit: e.limit,
            usage: e.usage,
            max: e.max_usage,
            failcnt: e.failcnt,
        }
    }
}

#[derive(Serialize)]
struct Memory {
    #[serde(skip_serializing_if = "zero")]
    cache: u64,
    usage: Entry,
    swap: Entry,
    kernel: Entry,
    #[serde(rename = "kernelTCP")]
    kernel_tcp: Entry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    raw: BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct Pids {
    #[serde(skip_serializing_if = "zero")]
    current: u64,
    #[serde(skip_serializing_if = "zero")]
    limit: u64,
}

#[derive(Serialize)]
struct Blkio {
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    io_service_bytes_recursive: Vec<BlkioOut>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    io_serviced_recursive: Vec<BlkioOut>,
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    io_queued_recursive: Vec<BlkioOut>,
    #[serde(
        rename = "ioServiceTimeRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    io_service_time_recursive: Vec<BlkioOut>,
    #[serde(rename = "ioWaitTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    io_wait_time_recursive: Vec<BlkioOut>,
    #[serde(rename = "ioMergedRecursive", skip_serializing_if = "Vec::is_empty")]
    io_merged_recursive: Vec<BlkioOut>,
    #[serde(rename = "ioTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    io_time_recursive: Vec<BlkioOut>,
    #[serde(rename = "sectorsRecursive", skip_serializing_if = "Vec::is_empty")]
    sectors_recursive: Vec<BlkioOut>,
}

#[derive(Serialize)]
struct BlkioOut {
    #[serde(skip_serializing_if = "zero")]
    major: u64,
    #[serde(skip_serializing_if = "zero")]
    minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    op: String,
    #[serde(skip_serializing_if = "zero")]
    value: u64,
}

#[derive(Serialize)]
struct Hugetlb {
    #[serde(skip_serializing_if = "zero")]
    usage: u64,
    #[serde(skip_serializing_if = "zero")]
    max: u64,
    failcnt: u64,
}

fn blk(v: &[BlkioEntry]) -> Vec<BlkioOut> {
    v.iter()
        .map(|e| BlkioOut {
            major: e.major,
            minor: e.minor,
            op: e.op.clone(),
            value: e.value,
        })
        .collect()
}

impl From<&Stats> for RuncStats {
    fn from(s: &Stats) -> Self {
        let m = &s.memory;
        let mut swap = Entry::from(&m.swap);
        if s.mode == Mode::Unified {
            // runc reports memory+swap on v2 too, as v1's memsw does.
            swap.usage = swap.usage.saturating_add(m.usage.usage);
            if swap.limit != u64::MAX {
                swap.limit = swap.limit.saturating_add(m.usage.limit);
            }
        }
        RuncStats {
            cpu: Cpu {
                usage: CpuUsage {
                    total: s.cpu.usage_ns,
                    percpu: s.cpu.per_cpu_ns.clone(),
                    percpu_kernel: s.cpu.per_cpu_kernel_ns.clone(),
                    percpu_user: s.cpu.per_cpu_user_ns.clone(),
                    kernel: s.cpu.kernel_ns,
                    user: s.cpu.user_ns,
                },
                throttling: Throttling {
                    periods: s.cpu.throttling.periods,
                    throttled_periods: s.cpu.throttling.throttled_periods,
                    throttled_time: s.cpu.throttling.throttled_ns,
                },
            },
            cpuset: Cpuset {
                cpus: s.cpuset.cpus.clone(),
                mems: s.cpuset.mems.clone(),
            },
            memory: Memory {
                cache: m.cache,
                usage: Entry::from(&m.usage),
                swap,
                kernel: Entry::from(&m.kernel),
                kernel_tcp: Entry::from(&m.kernel_tcp),
                raw: m.stat.clone(),
            },
            pids: Pids {
                current: s.pids.current,
                limit: s.pids.limit,
            },
            blkio: Blkio {
                io_service_bytes_recursive: blk(&s.blkio.io_service_bytes_recursive),
                io_serviced_recursive: blk(&s.blkio.io_serviced_recursive),
                io_queued_recursive: blk(&s.blkio.io_queued_recursive),
                io_service_time_recursive: blk(&s.blkio.io_service_time_recursive),
                io_wait_time_recursive: blk(&s.blkio.io_wait_time_recursive),
                io_merged_recursive: blk(&s.blkio.io_merged_recursive),
                io_time_recursive: blk(&s.blkio.io_time_recursive),
                sectors_recursive: blk(&s.blkio.sectors_recursive),
            },
            hugetlb: s
                .hugetlb
                .iter()
                .map(|(k, h)| {
                    let v = Hugetlb {
                        usage: h.usage,
                        max: h.max_usage,
                        failcnt: h.failcnt,
                    };
                    (k.clone(), v)
                })
                .collect(),
            intel_rdt: BTreeMap::new(),
            network_interfaces: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").expect("d"), Duration::from_secs(5));
        assert_eq!(
            parse_duration("250ms").expect("d"),
            Duration::from_millis(250)
        );
        assert_eq!(parse_duration("1m30s").expect("d"), Duration::from_secs(90));
        assert_eq!(
            parse_duration("1.5h").expect("d"),
            Duration::from_secs(5400)
        );
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5x").is_err());
    }
}
