//! Usage statistics of a container's cgroups (what `runrs events` prints and the shim
//! turns into containerd's cgroup v1/v2 Metrics). Plain data: bytes and nanoseconds,
//! read from the cgroup files of either version; a value the host does not report is
//! 0 or empty. A "max" (unlimited) limit on cgroup v2 reads as `u64::MAX`.
//! See cgroup-v1/{cpuacct,memory,blkio-controller,hugetlb}.rst and cgroup-v2.rst.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::{CgroupError, CgroupPaths, Mode, UNIFIED};
use crate::sys::c;

/// Everything `Container::stats` reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Which cgroup version the numbers follow (hybrid reads as v1).
    pub mode: Mode,
    /// CPU time and throttling.
    pub cpu: CpuStats,
    /// The CPUs and memory nodes in use.
    pub cpuset: CpusetStats,
    /// Memory usage and limits.
    pub memory: MemoryStats,
    /// Process count.
    pub pids: PidsStats,
    /// Block I/O.
    pub blkio: BlkioStats,
    /// Hugepage usage by page size ("2MB").
    pub hugetlb: BTreeMap<String, HugetlbStats>,
}

/// CPU accounting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CpuStats {
    /// Total CPU time, ns.
    pub usage_ns: u64,
    /// In user mode, ns.
    pub user_ns: u64,
    /// In kernel mode, ns.
    pub kernel_ns: u64,
    /// Per CPU total (v1 only), ns.
    pub per_cpu_ns: Vec<u64>,
    /// Per CPU in user mode (v1 only), ns.
    pub per_cpu_user_ns: Vec<u64>,
    /// Per CPU in kernel mode (v1 only), ns.
    pub per_cpu_kernel_ns: Vec<u64>,
    /// CFS bandwidth throttling.
    pub throttling: Throttling,
}

/// CFS bandwidth throttling.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Throttling {
    /// Enforcement periods elapsed.
    pub periods: u64,
    /// Periods in which the group was throttled.
    pub throttled_periods: u64,
    /// Total throttled time, ns.
    pub throttled_ns: u64,
}

/// cpuset in effect.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CpusetStats {
    /// CPU numbers.
    pub cpus: Vec<u16>,
    /// Memory nodes.
    pub mems: Vec<u16>,
}

/// One memory counter with its limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryEntry {
    /// Current usage, bytes.
    pub usage: u64,
    /// Peak usage, bytes (0 when the kernel does not track it).
    pub max_usage: u64,
    /// Limit, bytes.
    pub limit: u64,
    /// Times the limit was hit (v2: memory.events `max`).
    pub failcnt: u64,
}

/// Memory accounting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryStats {
    /// Memory.
    pub usage: MemoryEntry,
    /// Swap: memory+swap on v1 (memsw), swap alone on v2.
    pub swap: MemoryEntry,
    /// Kernel memory (v1 only).
    pub kernel: MemoryEntry,
    /// Kernel TCP buffers (v1 only).
    pub kernel_tcp: MemoryEntry,
    /// Page cache, bytes (v1 `cache`, v2 `file`).
    pub cache: u64,
    /// memory.stat, as is.
    pub stat: BTreeMap<String, u64>,
    /// memory.events on v2 (low, high, max, oom, oom_kill, ...); on v1 `oom_kill`.
    pub events: BTreeMap<String, u64>,
    /// v1 memory.oom_control: the OOM killer is disabled.
    pub oom_kill_disable: bool,
    /// v1 memory.oom_control: the group is under OOM now.
    pub under_oom: bool,
    /// OOM kills so far (both versions).
    pub oom_kills: u64,
    /// Hierarchical accounting (always on v2).
    pub use_hierarchy: bool,
}

/// pids controller.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PidsStats {
    /// Tasks in the cgroup.
    pub current: u64,
    /// pids.max, 0 when unlimited.
    pub limit: u64,
}

/// One block I/O counter (`254:0 Read 4096`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BlkioEntry {
    /// Device major.
    pub major: u64,
    /// Device minor.
    pub minor: u64,
    /// Read, Write, Sync, Async, Discard or Total.
    pub op: String,
    /// The value.
    pub value: u64,
}

/// Block I/O. On v2 (io.stat) only the bytes and operation counts are known.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BlkioStats {
    /// Bytes transferred.
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    /// Operations.
    pub io_serviced_recursive: Vec<BlkioEntry>,
    /// Queued operations (v1 CFQ/BFQ).
    pub io_queued_recursive: Vec<BlkioEntry>,
    /// Service time, ns (v1 CFQ/BFQ).
    pub io_service_time_recursive: Vec<BlkioEntry>,
    /// Wait time, ns (v1 CFQ/BFQ).
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    /// Merged operations (v1 CFQ/BFQ).
    pub io_merged_recursive: Vec<BlkioEntry>,
    /// Device time (v1 CFQ/BFQ).
    pub io_time_recursive: Vec<BlkioEntry>,
    /// Sectors (v1 CFQ/BFQ).
    pub sectors_recursive: Vec<BlkioEntry>,
}

/// Hugepages of one size.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HugetlbStats {
    /// Bytes in use.
    pub usage: u64,
    /// Peak bytes (v1 only).
    pub max_usage: u64,
    /// Allocations that failed on the limit.
    pub failcnt: u64,
    /// The limit, bytes.
    pub limit: u64,
}

/// Read the statistics of the container's cgroups. Fails when the cgroup is gone.
pub fn read(cg: &CgroupPaths) -> Result<Stats, CgroupError> {
    let Some(probe) = cg.procs_dir() else {
        return Err(CgroupError::NoCgroupFs(cg.path.clone().into()));
    };
    if !probe.is_dir() {
        return Err(CgroupError::Read(
            probe.clone(),
            std::io::Error::from_raw_os_error(c::ENOENT),
        ));
    }
    let mut s = Stats {
        mode: cg.mode,
        ..Stats::default()
    };
    if cg.mode == Mode::Unified {
        // The paths come from state.json: a damaged one is an error, not an abort of the
        // shim that serves the whole pod.
        let Some(d) = cg.dirs.get(UNIFIED) else {
            return Err(CgroupError::NoCgroupFs(cg.path.clone().into()));
        };
        v2_cpu(d, &mut s.cpu);
        s.cpuset = CpusetStats {
            cpus: parse_list(&read_str(&d.join("cpuset.cpus.effective"))),
            mems: parse_list(&read_str(&d.join("cpuset.mems.effective"))),
        };
        v2_memory(d, &mut s.memory);
        s.pids = pids(d);
        v2_io(d, &mut s.blkio);
        s.hugetlb = v2_hugetlb(d);
        return Ok(s);
    }
    if let Some(d) = cg.dirs.get("cpuacct") {
        v1_cpuacct(d, &mut s.cpu);
    }
    if let Some(d) = cg.dirs.get("cpu") {
        let st = read_kv(&d.join("cpu.stat"));
        s.cpu.throttling = Throttling {
            periods: get(&st, "nr_periods"),
            throttled_periods: get(&st, "nr_throttled"),
            throttled_ns: get(&st, "throttled_time"),
        };
    }
    if let Some(d) = cg.dirs.get("cpuset") {
        s.cpuset = CpusetStats {
            cpus: parse_list(&read_str(&d.join("cpuset.effective_cpus"))),
            mems: parse_list(&read_str(&d.join("cpuset.effective_mems"))),
        };
    }
    if let Some(d) = cg.dirs.get("memory") {
        v1_memory(d, &mut s.memory);
    }
    if let Some(d) = cg.dirs.get("pids") {
        s.pids = pids(d);
    }
    if let Some(d) = cg.dirs.get("blkio") {
        v1_blkio(d, &mut s.blkio);
    }
    if let Some(d) = cg.dirs.get("hugetlb") {
        s.hugetlb = v1_hugetlb(d);
    } else if let Some(d) = cg.dirs.get(UNIFIED) {
        // Hybrid host with hugetlb only in the unified hierarchy.
        s.hugetlb = v2_hugetlb(d);
    }
    Ok(s)
}

/// OOM kills recorded for the cgroup whose memory files are in `dir`: memory.events
/// `oom_kill` on v2, memory.oom_control `oom_kill` on v1 (kernel 4.13+).
pub fn oom_kills_in(dir: &Path) -> u64 {
    let ev = dir.join("memory.events");
    if ev.exists() {
        return get(&read_kv(&ev), "oom_kill");
    }
    get(&read_kv(&dir.join("memory.oom_control")), "oom_kill")
}

fn v1_cpuacct(d: &Path, c: &mut CpuStats) {
    c.usage_ns = read_u64(&d.join("cpuacct.usage"));
    c.per_cpu_ns = read_words(&d.join("cpuacct.usage_percpu"));
    c.per_cpu_user_ns = read_words(&d.join("cpuacct.usage_percpu_user"));
    c.per_cpu_kernel_ns = read_words(&d.join("cpuacct.usage_percpu_sys"));
    // cpuacct.stat counts USER_HZ ticks.
    let st = read_kv(&d.join("cpuacct.stat"));
    let ns_per_tick = 1_000_000_000 / clock_ticks();
    c.user_ns = get(&st, "user") * ns_per_tick;
    c.kernel_ns = get(&st, "system") * ns_per_tick;
}

fn clock_ticks() -> u64 {
    crate::sys::clock_ticks().unwrap_or(100)
}

fn v2_cpu(d: &Path, c: &mut CpuStats) {
    let st = read_kv(&d.join("cpu.stat"));
    c.usage_ns = get(&st, "usage_usec") * 1000;
    c.user_ns = get(&st, "user_usec") * 1000;
    c.kernel_ns = get(&st, "system_usec") * 1000;
    c.throttling = Throttling {
        periods: get(&st, "nr_periods"),
        throttled_periods: get(&st, "nr_throttled"),
        throttled_ns: get(&st, "throttled_usec") * 1000,
    };
}

fn v1_entry(d: &Path, prefix: &str) -> MemoryEntry {
    MemoryEntry {
        usage: read_u64(&d.join(format!("{prefix}.usage_in_bytes"))),
        max_usage: read_u64(&d.join(format!("{prefix}.max_usage_in_bytes"))),
        limit: read_u64(&d.join(format!("{prefix}.limit_in_bytes"))),
        failcnt: read_u64(&d.join(format!("{prefix}.failcnt"))),
    }
}

fn v1_memory(d: &Path, m: &mut MemoryStats) {
    m.usage = v1_entry(d, "memory");
    m.swap = v1_entry(d, "memory.memsw");
    m.kernel = v1_entry(d, "memory.kmem");
    m.kernel_tcp = v1_entry(d, "memory.kmem.tcp");
    m.stat = read_kv(&d.join("memory.stat"));
    m.cache = get(&m.stat, "cache");
    m.use_hierarchy = read_u64(&d.join("memory.use_hierarchy")) == 1;
    let oc = read_kv(&d.join("memory.oom_control"));
    m.oom_kill_disable = get(&oc, "oom_kill_disable") == 1;
    m.under_oom = get(&oc, "under_oom") == 1;
    m.oom_kills = get(&oc, "oom_kill");
    m.events.insert("oom_kill".into(), m.oom_kills);
}

fn v2_memory(d: &Path, m: &mut MemoryStats) {
    m.events = read_kv(&d.join("memory.events"));
    m.usage = MemoryEntry {
        usage: read_u64(&d.join("memory.current")),
        max_usage: read_u64(&d.join("memory.peak")),
        limit: read_u64(&d.join("memory.max")),
        failcnt: get(&m.events, "max"),
    };
    m.swap = MemoryEntry {
        usage: read_u64(&d.join("memory.swap.current")),
        max_usage: read_u64(&d.join("memory.swap.peak")),
        limit: read_u64(&d.join("memory.swap.max")),
        failcnt: get(&read_kv(&d.join("memory.swap.events")), "max"),
    };
    m.stat = read_kv(&d.join("memory.stat"));
    m.cache = get(&m.stat, "file");
    m.use_hierarchy = true;
    m.oom_kills = get(&m.events, "oom_kill");
}

fn pids(d: &Path) -> PidsStats {
    let max = read_u64(&d.join("pids.max"));
    PidsStats {
        current: read_u64(&d.join("pids.current")),
        limit: if max == u64::MAX { 0 } else { max },
    }
}

fn v1_blkio(d: &Path, b: &mut BlkioStats) {
    let f = |name: &str| parse_blkio(&read_str(&d.join(name)));
    b.io_service_bytes_recursive = f("blkio.io_service_bytes_recursive");
    b.io_serviced_recursive = f("blkio.io_serviced_recursive");
    if b.io_service_bytes_recursive.is_empty() && b.io_serviced_recursive.is_empty() {
        // No proportional-weight scheduler: the throttle layer still counts.
        b.io_service_bytes_recursive = f("blkio.throttle.io_service_bytes_recursive");
        b.io_serviced_recursive = f("blkio.throttle.io_serviced_recursive");
        if b.io_service_bytes_recursive.is_empty() {
            b.io_service_bytes_recursive = f("blkio.throttle.io_service_bytes");
            b.io_serviced_recursive = f("blkio.throttle.io_serviced");
        }
        return;
    }
    b.io_queued_recursive = f("blkio.io_queued_recursive");
    b.io_service_time_recursive = f("blkio.io_service_time_recursive");
    b.io_wait_time_recursive = f("blkio.io_wait_time_recursive");
    b.io_merged_recursive = f("blkio.io_merged_recursive");
    b.io_time_recursive = f("blkio.time_recursive");
    b.sectors_recursive = f("blkio.sectors_recursive");
}

/// `8:0 Read 4096` lines (and `8:0 4096` for time/sectors); `Total N` skipped.
pub fn parse_blkio(text: &str) -> Vec<BlkioEntry> {
    let mut v = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some((ma, mi)) = f.first().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (ma.parse(), mi.parse()) else {
            continue;
        };
        let (op, value) = match f.len() {
            3 => (f[1].to_string(), f[2].parse().unwrap_or(0)),
            2 => (String::new(), f[1].parse().unwrap_or(0)),
            _ => continue,
        };
        v.push(BlkioEntry {
            major,
            minor,
            op,
            value,
        });
    }
    v
}

fn v2_io(d: &Path, b: &mut BlkioStats) {
    for line in read_str(&d.join("io.stat")).lines() {
        let mut f = line.split_whitespace();
        let Some((ma, mi)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (ma.parse::<u64>(), mi.parse::<u64>()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let value = v.parse().unwrap_or(0);
            let (list, op) = match k {
                "rbytes" => (&mut b.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut b.io_service_bytes_recursive, "Write"),
                "dbytes" => (&mut b.io_service_bytes_recursive, "Discard"),
                "rios" => (&mut b.io_serviced_recursive, "Read"),
                "wios" => (&mut b.io_serviced_recursive, "Write"),
                "dios" => (&mut b.io_serviced_recursive, "Discard"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
}

/// Page sizes with a `hugetlb.<size>.<suffix>` file in `d`.
fn page_sizes(d: &Path, suffix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let size = n
                .strip_prefix("hugetlb.")?
                .strip_suffix(suffix)?
                .to_string();
            (!size.contains('.')).then_some(size)
        })
        .collect();
    v.sort();
    v
}

fn v1_hugetlb(d: &Path) -> BTreeMap<String, HugetlbStats> {
    page_sizes(d, ".usage_in_bytes")
        .into_iter()
        .map(|ps| {
            let f = |s: &str| read_u64(&d.join(format!("hugetlb.{ps}.{s}")));
            let st = HugetlbStats {
                usage: f("usage_in_bytes"),
                max_usage: f("max_usage_in_bytes"),
                failcnt: f("failcnt"),
                limit: f("limit_in_bytes"),
            };
            (ps, st)
        })
        .collect()
}

fn v2_hugetlb(d: &Path) -> BTreeMap<String, HugetlbStats> {
    page_sizes(d, ".current")
        .into_iter()
        .map(|ps| {
            let f = |s: &str| d.join(format!("hugetlb.{ps}.{s}"));
            let st = HugetlbStats {
                usage: read_u64(&f("current")),
                max_usage: 0,
                failcnt: get(&read_kv(&f("events")), "max"),
                limit: read_u64(&f("max")),
            };
            (ps, st)
        })
        .collect()
}

/// A cpuset list (`0-3,8`) as numbers.
pub fn parse_list(s: &str) -> Vec<u16> {
    let mut v = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    v.extend(a..=b);
                }
            }
            None => v.extend(part.parse::<u16>().ok()),
        }
    }
    v
}

fn read_str(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// A single number; `max` is `u64::MAX`; missing or garbage is 0.
fn read_u64(p: &Path) -> u64 {
    let s = read_str(p);
    let s = s.trim();
    if s == "max" {
        return u64::MAX;
    }
    s.parse().unwrap_or(0)
}

fn read_words(p: &Path) -> Vec<u64> {
    read_str(p)
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// `key value` lines.
pub fn read_kv(p: &Path) -> BTreeMap<String, u64> {
    read_str(p)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn get(m: &BTreeMap<String, u64>, k: &str) -> u64 {
    m.get(k).copied().unwrap_or(0)
}
