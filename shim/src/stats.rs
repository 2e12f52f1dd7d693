//! runtime-core's cgroup statistics as containerd's metrics messages: cgroup v1
//! `io.containerd.cgroups.v1.Metrics` on v1 and hybrid hosts (as containerd-shim-runc-v2
//! reports there), `io.containerd.cgroups.v2.Metrics` on unified hosts.

use std::collections::BTreeMap;

use containerd_shim_protos::cgroups::metrics as v1;
use containerd_shim_protos::cgroups_v2::metrics as v2;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use runtime_core::CgroupMode as Mode;
use runtime_core::{BlkioEntry, Stats};

use crate::events::to_any;

fn get(m: &BTreeMap<String, u64>, k: &str) -> u64 {
    m.get(k).copied().unwrap_or(0)
}

/// The metrics Any for Stats.
pub fn to_metrics(s: &Stats) -> Any {
    match s.mode {
        Mode::Unified => to_any(&v2_metrics(s)),
        _ => to_any(&v1_metrics(s)),
    }
}

fn blkio(list: &[BlkioEntry]) -> Vec<v1::BlkIOEntry> {
    list.iter()
        .map(|e| v1::BlkIOEntry {
            op: e.op.clone(),
            major: e.major,
            minor: e.minor,
            value: e.value,
            ..Default::default()
        })
        .collect()
}

fn entry(e: &runtime_core::MemoryEntry) -> v1::MemoryEntry {
    v1::MemoryEntry {
        limit: e.limit,
        usage: e.usage,
        max: e.max_usage,
        failcnt: e.failcnt,
        ..Default::default()
    }
}

fn v1_metrics(s: &Stats) -> v1::Metrics {
    let st = &s.memory.stat;
    let m = v1::MemoryStat {
        cache: s.memory.cache,
        rss: get(st, "rss"),
        rss_huge: get(st, "rss_huge"),
        mapped_file: get(st, "mapped_file"),
        dirty: get(st, "dirty"),
        writeback: get(st, "writeback"),
        pg_pg_in: get(st, "pgpgin"),
        pg_pg_out: get(st, "pgpgout"),
        pg_fault: get(st, "pgfault"),
        pg_maj_fault: get(st, "pgmajfault"),
        inactive_anon: get(st, "inactive_anon"),
        active_anon: get(st, "active_anon"),
        inactive_file: get(st, "inactive_file"),
        active_file: get(st, "active_file"),
        unevictable: get(st, "unevictable"),
        hierarchical_memory_limit: get(st, "hierarchical_memory_limit"),
        hierarchical_swap_limit: get(st, "hierarchical_memsw_limit"),
        total_cache: get(st, "total_cache"),
        total_rss: get(st, "total_rss"),
        total_rss_huge: get(st, "total_rss_huge"),
        total_mapped_file: get(st, "total_mapped_file"),
        total_dirty: get(st, "total_dirty"),
        total_writeback: get(st, "total_writeback"),
        total_pg_pg_in: get(st, "total_pgpgin"),
        total_pg_pg_out: get(st, "total_pgpgout"),
        total_pg_fault: get(st, "total_pgfault"),
        total_pg_maj_fault: get(st, "total_pgmajfault"),
        total_inactive_anon: get(st, "total_inactive_anon"),
        total_active_anon: get(st, "total_active_anon"),
        total_inactive_file: get(st, "total_inactive_file"),
        total_active_file: get(st, "total_active_file"),
        total_unevictable: get(st, "total_unevictable"),
        usage: Some(entry(&s.memory.usage)).into(),
        swap: Some(entry(&s.memory.swap)).into(),
        kernel: Some(entry(&s.memory.kernel)).into(),
        kernel_tcp: Some(entry(&s.memory.kernel_tcp)).into(),
        ..Default::default()
    };
    v1::Metrics {
        hugetlb: s
            .hugetlb
            .iter()
            .map(|(size, h)| v1::HugetlbStat {
                usage: h.usage,
                max: h.max_usage,
                failcnt: h.failcnt,
                pagesize: size.clone(),
                ..Default::default()
            })
            .collect(),
        pids: Some(v1::PidsStat {
            current: s.pids.current,
            limit: s.pids.limit,
            ..Default::default()
        })
        .into(),
        cpu: Some(v1::CPUStat {
            usage: Some(v1::CPUUsage {
                total: s.cpu.usage_ns,
                kernel: s.cpu.kernel_ns,
                user: s.cpu.user_ns,
                per_cpu: s.cpu.per_cpu_ns.clone(),
                ..Default::default()
            })
            .into(),
            throttling: Some(v1::Throttle {
                periods: s.cpu.throttling.periods,
                throttled_periods: s.cpu.throttling.throttled_periods,
                throttled_time: s.cpu.throttling.throttled_ns,
                ..Default::default()
            })
            .into(),
            ..Default::default()
        })
        .into(),
        memory: Some(m).into(),
        blkio: Some(v1::BlkIOStat {
            io_service_bytes_recursive: blkio(&s.blkio.io_service_bytes_recursive),
            io_serviced_recursive: blkio(&s.blkio.io_serviced_recursive),
            io_queued_recursive: blkio(&s.blkio.io_queued_recursive),
            io_service_time_recursive: blkio(&s.blkio.io_service_time_recursive),
            io_wait_time_recursive: blkio(&s.blkio.io_wait_time_recursive),
            io_merged_recursive: blkio(&s.blkio.io_merged_recursive),
            io_time_recursive: blkio(&s.blkio.io_time_recursive),
            sectors_recursive: blkio(&s.blkio.sectors_recursive),
            ..Default::default()
        })
        .into(),
        memory_oom_control: Some(v1::MemoryOomControl {
            oom_kill_disable: u64::from(s.memory.oom_kill_disable),
            under_oom: u64::from(s.memory.under_oom),
            oom_kill: s.memory.oom_kills,
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

fn v2_metrics(s: &Stats) -> v2::Metrics {
    let st = &s.memory.stat;
    let mut io: BTreeMap<(u64, u64), v2::IOEntry> = BTreeMap::new();
    for (list, bytes) in [
        (&s.blkio.io_service_bytes_recursive, true),
        (&s.blkio.io_serviced_recursive, false),
    ] {
        for e in list {
            let x = io.entry((e.major, e.minor)).or_insert_with(|| v2::IOEntry {
                major: e.major,
                minor: e.minor,
                ..Default::default()
            });
            match (e.op.as_str(), bytes) {
                ("Read", true) => x.rbytes = e.value,
                ("Write", true) => x.wbytes = e.value,
                ("Read", false) => x.rios = e.value,
                ("Write", false) => x.wios = e.value,
                _ => {}
            }
        }
    }
    let ev = &s.memory.events;
    v2::Metrics {
        pids: Some(v2::PidsStat {
            current: s.pids.current,
            limit: s.pids.limit,
            ..Default::default()
        })
        .into(),
        cpu: Some(v2::CPUStat {
            usage_usec: s.cpu.usage_ns / 1000,
            user_usec: s.cpu.user_ns / 1000,
            system_usec: s.cpu.kernel_ns / 1000,
            nr_periods: s.cpu.throttling.periods,
            nr_throttled: s.cpu.throttling.throttled_periods,
            throttled_usec: s.cpu.throttling.throttled_ns / 1000,
            ..Default::default()
        })
        .into(),
        memory: Some(v2::MemoryStat {
            anon: get(st, "anon"),
            file: get(st, "file"),
            kernel_stack: get(st, "kernel_stack"),
            slab: get(st, "slab"),
            sock: get(st, "sock"),
            shmem: get(st, "shmem"),
            file_mapped: get(st, "file_mapped"),
            file_dirty: get(st, "file_dirty"),
            file_writeback: get(st, "file_writeback"),
            anon_thp: get(st, "anon_thp"),
            inactive_anon: get(st, "inactive_anon"),
            active_anon: get(st, "active_anon"),
            inactive_file: get(st, "inactive_file"),
            active_file: get(st, "active_file"),
            unevictable: get(st, "unevictable"),
            slab_reclaimable: get(st, "slab_reclaimable"),
            slab_unreclaimable: get(st, "slab_unreclaimable"),
            pgfault: get(st, "pgfault"),
            pgmajfault: get(st, "pgmajfault"),
            usage: s.memory.usage.usage,
            usage_limit: s.memory.usage.limit,
            swap_usage: s.memory.swap.usage,
            swap_limit: s.memory.swap.limit,
            max_usage: s.memory.usage.max_usage,
            swap_max_usage: s.memory.swap.max_usage,
            ..Default::default()
        })
        .into(),
        io: Some(v2::IOStat {
            usage: io.into_values().collect(),
            ..Default::default()
        })
        .into(),
        hugetlb: s
            .hugetlb
            .iter()
            .map(|(size, h)| v2::HugeTlbStat {
                current: h.usage,
                max: h.limit,
                failcnt: h.failcnt,
                pagesize: size.clone(),
                ..Default::default()
            })
            .collect(),
        memory_events: Some(v2::MemoryEvents {
            low: get(ev, "low"),
            high: get(ev, "high"),
            max: get(ev, "max"),
            oom: get(ev, "oom"),
            oom_kill: get(ev, "oom_kill"),
            oom_group_kill: get(ev, "oom_group_kill"),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_version_by_mode() {
        let mut s = Stats::default();
        s.pids.current = 3;
        assert_eq!(to_metrics(&s).type_url, "io.containerd.cgroups.v1.Metrics");
        s.mode = Mode::Unified;
        s.blkio.io_service_bytes_recursive.push(BlkioEntry {
            major: 8,
            minor: 0,
            op: "Read".into(),
            value: 42,
        });
        let any = to_metrics(&s);
        assert_eq!(any.type_url, "io.containerd.cgroups.v2.Metrics");
        let m = <v2::Metrics as containerd_shim_protos::protobuf::Message>::parse_from_bytes(
            &any.value,
        )
        .expect("decode");
        assert_eq!(m.pids.current, 3);
        assert_eq!(m.io.usage[0].rbytes, 42);
    }
}
