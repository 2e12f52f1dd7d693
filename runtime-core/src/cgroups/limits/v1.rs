//! cgroup v1 (and hybrid) writers, in runc's order: cpuset, devices, memory, cpu,
//! pids, blkio, hugetlb, net_cls, net_prio, rdma, then `unified` keys on the cgroup2
//! side of a hybrid host.

use std::path::Path;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxNetwork, LinuxResources,
};

use super::{ignored, read_str, v2, Ctx};
use crate::cgroups::devices::{self, Policy};
use crate::cgroups::{write_field, CgroupError};
use crate::sys::c;

pub(super) fn apply(
    ctx: &Ctx<'_>,
    res: &LinuxResources,
    devices: Option<&Policy>,
) -> Result<(), CgroupError> {
    if let Some(c) = res.cpu() {
        cpuset(ctx, c)?;
    }
    if let Some(p) = devices {
        devices::v1::apply(ctx.v1_dir("devices", "devices")?, p)?;
    }
    if let Some(m) = res.memory() {
        memory(ctx, m)?;
    }
    if let Some(c) = res.cpu() {
        cpu(ctx, c)?;
    }
    if let Some(p) = res.pids() {
        if p.limit() != 0 {
            let d = ctx.v1_dir("pids", "pids.limit")?;
            let v = if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            };
            write_field("pids.limit", &d.join("pids.max"), &v)?;
        }
    }
    if let Some(b) = res.block_io() {
        blkio(ctx, b)?;
    }
    if let Some(h) = res.hugepage_limits() {
        hugetlb(ctx, h)?;
    }
    if let Some(n) = res.network() {
        network(ctx, n)?;
    }
    if let Some(r) = res.rdma() {
        if !r.is_empty() {
            let d = match ctx.cg.dirs.get("rdma") {
                Some(d) => d.clone(),
                None => ctx.unified_dir("rdma", "rdma")?,
            };
            v2::rdma(&d, r)?;
        }
    }
    if let Some(u) = res.unified() {
        if !u.is_empty() {
            v2::unified_keys(ctx, u)?;
        }
    }
    Ok(())
}

fn cpuset(ctx: &Ctx<'_>, c: &LinuxCpu) -> Result<(), CgroupError> {
    for (field, file, v) in [
        ("cpu.cpus", "cpuset.cpus", c.cpus()),
        ("cpu.mems", "cpuset.mems", c.mems()),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            let d = ctx.v1_dir("cpuset", field)?;
            write_field(field, &d.join(file), v)?;
        }
    }
    Ok(())
}

fn memory(ctx: &Ctx<'_>, m: &LinuxMemory) -> Result<(), CgroupError> {
    let set = m.limit().is_some()
        || m.swap().is_some()
        || m.reservation().is_some()
        || m.swappiness().is_some()
        || m.disable_oom_killer().is_some()
        || m.use_hierarchy().is_some();
    #[allow(deprecated)]
    if m.kernel().is_some() || m.kernel_tcp().is_some() {
        ignored(
            "memory.kernel",
            "kernel memory limits are deprecated (the kernel dropped them in 5.4)",
        );
    }
    if !set {
        return Ok(());
    }
    let d = ctx.v1_dir("memory", "memory")?;
    let limit = m.limit().unwrap_or(0);
    let mut swap = m.swap().unwrap_or(0);
    let memsw = d.join("memory.memsw.limit_in_bytes");
    if limit == -1 && swap == 0 && memsw.exists() {
        swap = -1;
    }
    if ctx.live && m.check_before_update() == Some(true) && limit > 0 {
        let usage = read_str(&d.join("memory.usage_in_bytes"))
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0);
        if usage >= limit {
            return Err(CgroupError::Resource {
                field: "memory.limit".into(),
                reason: format!(
                    "{limit} is not above the current usage {usage} (checkBeforeUpdate)"
                ),
            });
        }
    }
    // memsw must stay >= the limit at every step: raise memsw first when it grows.
    let swap_first = limit != 0
        && swap != 0
        && (swap == -1
            || read_str(&d.join("memory.limit_in_bytes"))
                .and_then(|s| s.parse::<i64>().ok())
                .is_some_and(|cur| cur < swap));
    if swap_first {
        set_swap(d, swap)?;
    }
    if limit != 0 {
        set_limit(d, limit)?;
    }
    if swap != 0 && !swap_first {
        set_swap(d, swap)?;
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        write_field(
            "memory.reservation",
            &d.join("memory.soft_limit_in_bytes"),
            &r.to_string(),
        )?;
    }
    if let Some(s) = m.swappiness() {
        write_field(
            "memory.swappiness",
            &d.join("memory.swappiness"),
            &s.to_string(),
        )?;
    }
    if let Some(off) = m.disable_oom_killer() {
        write_field(
            "memory.disableOOMKiller",
            &d.join("memory.oom_control"),
            if off { "1" } else { "0" },
        )?;
    }
    if let Some(h) = m.use_hierarchy() {
        write_field(
            "memory.useHierarchy",
            &d.join("memory.use_hierarchy"),
            if h { "1" } else { "0" },
        )
        .map_err(|e| match e {
            CgroupError::Limit { source, .. } if !h && source.raw_os_error() == Some(c::EINVAL) => {
                CgroupError::Resource {
                    field: "memory.useHierarchy".into(),
                    reason:
                        "this kernel always accounts memory hierarchically; false cannot be set"
                            .into(),
                }
            }
            e => e,
        })?;
    }
    Ok(())
}

fn set_limit(d: &Path, limit: i64) -> Result<(), CgroupError> {
    let file = d.join("memory.limit_in_bytes");
    write_field("memory.limit", &file, &limit.to_string()).map_err(|e| match e {
        CgroupError::Limit { source, .. } if source.raw_os_error() == Some(c::EBUSY) => {
            let usage = read_str(&d.join("memory.usage_in_bytes")).unwrap_or_default();
            let peak = read_str(&d.join("memory.max_usage_in_bytes")).unwrap_or_default();
            CgroupError::Resource {
                field: "memory.limit".into(),
                reason: format!(
                    "unable to set the memory limit to {limit} (current usage: {usage}, peak usage: {peak})"
                ),
            }
        }
        CgroupError::Limit { source, .. }
            if source.raw_os_error() == Some(c::EINVAL)
                && memsw_below(d, limit) =>
        {
            CgroupError::Resource {
                field: "memory.limit".into(),
                reason: format!(
                    "{limit} exceeds the memory+swap limit ({}); raise memory.swap too",
                    read_str(&d.join("memory.memsw.limit_in_bytes")).unwrap_or_default()
                ),
            }
        }
        e => e,
    })
}

fn memsw_below(d: &Path, limit: i64) -> bool {
    read_str(&d.join("memory.memsw.limit_in_bytes"))
        .and_then(|s| s.parse::<i64>().ok())
        .is_some_and(|sw| limit == -1 || sw < limit)
}

fn set_swap(d: &Path, swap: i64) -> Result<(), CgroupError> {
    let file = d.join("memory.memsw.limit_in_bytes");
    if !file.exists() {
        return Err(CgroupError::Resource {
            field: "memory.swap".into(),
            reason: "this kernel does not account swap (no memory.memsw.limit_in_bytes; boot with swapaccount=1)".into(),
        });
    }
    write_field("memory.swap", &file, &swap.to_string())
}

fn cpu(ctx: &Ctx<'_>, c: &LinuxCpu) -> Result<(), CgroupError> {
    let any = c.shares().is_some_and(|s| s != 0)
        || c.quota().is_some_and(|q| q != 0)
        || c.period().is_some_and(|p| p != 0)
        || c.burst().is_some()
        || c.idle().is_some()
        || c.realtime_runtime().is_some_and(|r| r != 0)
        || c.realtime_period().is_some_and(|p| p != 0);
    if !any {
        return Ok(());
    }
    let d = ctx.v1_dir("cpu", "cpu")?;
    // An idle group refuses shares: leave idle first, enter it last.
    if c.idle() == Some(0) {
        write_field("cpu.idle", &d.join("cpu.idle"), "0")?;
    }
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        write_field("cpu.shares", &d.join("cpu.shares"), &s.to_string())?;
        let got = read_str(&d.join("cpu.shares")).unwrap_or_default();
        if got != s.to_string() {
            return Err(CgroupError::Resource {
                field: "cpu.shares".into(),
                reason: format!("the kernel set {got} instead of {s} (allowed range 2-262144)"),
            });
        }
    }
    // Period and quota depend on each other (and burst on quota): on EINVAL, retry
    // after the other one is written, as runc does.
    let period = c.period().filter(|p| *p != 0);
    let quota = c.quota().filter(|q| *q != 0);
    let mut period_failed = None;
    if let Some(p) = period {
        if let Err(e) = write_field("cpu.period", &d.join("cpu.cfs_period_us"), &p.to_string()) {
            if quota.is_none() {
                return Err(e);
            }
            period_failed = Some(p);
        }
    }
    let mut burst_failed = None;
    if let Some(b) = c.burst() {
        if let Err(e) = write_field("cpu.burst", &d.join("cpu.cfs_burst_us"), &b.to_string()) {
            if quota.is_none() {
                return Err(e);
            }
            burst_failed = Some(b);
        }
    }
    if let Some(q) = quota {
        write_field("cpu.quota", &d.join("cpu.cfs_quota_us"), &q.to_string())?;
        if let Some(p) = period_failed {
            write_field("cpu.period", &d.join("cpu.cfs_period_us"), &p.to_string())?;
        }
        if let Some(b) = burst_failed {
            write_field("cpu.burst", &d.join("cpu.cfs_burst_us"), &b.to_string())?;
        }
    }
    let rt_period = c.realtime_period().filter(|p| *p != 0);
    let rt_runtime = c.realtime_runtime().filter(|r| *r != 0);
    let mut rt_failed = None;
    if let Some(p) = rt_period {
        if let Err(e) = write_field(
            "cpu.realtimePeriod",
            &d.join("cpu.rt_period_us"),
            &p.to_string(),
        ) {
            if rt_runtime.is_none() {
                return Err(e);
            }
            rt_failed = Some(p);
        }
    }
    if let Some(r) = rt_runtime {
        write_field(
            "cpu.realtimeRuntime",
            &d.join("cpu.rt_runtime_us"),
            &r.to_string(),
        )?;
        if let Some(p) = rt_failed {
            write_field(
                "cpu.realtimePeriod",
                &d.join("cpu.rt_period_us"),
                &p.to_string(),
            )?;
        }
    }
    if c.idle() == Some(1) {
        write_field("cpu.idle", &d.join("cpu.idle"), "1")?;
    }
    Ok(())
}

fn blkio(ctx: &Ctx<'_>, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let any = b.weight().is_some_and(|w| w != 0)
        || b.leaf_weight().is_some_and(|w| w != 0)
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || b.throttle_read_bps_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || b.throttle_write_bps_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || b.throttle_read_iops_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || b.throttle_write_iops_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty());
    if !any {
        return Ok(());
    }
    let d = ctx.v1_dir("blkio", "blockIO")?;
    // CFQ's blkio.weight is gone since 5.0; BFQ names its files differently (as runc).
    let (weight_file, weight_dev_file) = if d.join("blkio.weight").exists() {
        ("blkio.weight", "blkio.weight_device")
    } else {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    };
    let no_weight = |field: &str| {
        CgroupError::Resource {
        field: field.into(),
        reason: "this kernel's blkio controller has no proportional weight (neither blkio.weight nor blkio.bfq.weight: the device's I/O scheduler is not BFQ)".into(),
    }
    };
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        if !d.join(weight_file).exists() {
            return Err(no_weight("blockIO.weight"));
        }
        write_field("blockIO.weight", &d.join(weight_file), &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        write_field(
            "blockIO.leafWeight",
            &d.join("blkio.leaf_weight"),
            &w.to_string(),
        )?;
    }
    for wd in b.weight_device().iter().flatten() {
        let dev = format!("{}:{}", wd.major(), wd.minor());
        if let Some(w) = wd.weight() {
            if !d.join(weight_dev_file).exists() {
                return Err(no_weight("blockIO.weightDevice"));
            }
            write_field(
                "blockIO.weightDevice",
                &d.join(weight_dev_file),
                &format!("{dev} {w}"),
            )?;
        }
        if let Some(w) = wd.leaf_weight() {
            write_field(
                "blockIO.weightDevice",
                &d.join("blkio.leaf_weight_device"),
                &format!("{dev} {w}"),
            )?;
        }
    }
    for (field, file, list) in [
        (
            "blockIO.throttleReadBpsDevice",
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "blockIO.throttleWriteBpsDevice",
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "blockIO.throttleReadIOPSDevice",
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "blockIO.throttleWriteIOPSDevice",
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ] {
        for t in list.iter().flatten() {
            let line = format!("{}:{} {}", t.major(), t.minor(), t.rate());
            write_field(field, &d.join(file), &line)?;
        }
    }
    Ok(())
}

/// Hugepage limits: the v1 hugetlb controller, or the unified one on a hybrid host
/// that has hugetlb only there.
fn hugetlb(ctx: &Ctx<'_>, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
    if limits.is_empty() {
        return Ok(());
    }
    match ctx.cg.dirs.get("hugetlb") {
        Some(d) => v2::hugetlb(d, limits, "limit_in_bytes"),
        None => v2::hugetlb(
            &ctx.unified_dir("hugetlb", "hugepageLimits")?,
            limits,
            "max",
        ),
    }
}

fn network(ctx: &Ctx<'_>, n: &LinuxNetwork) -> Result<(), CgroupError> {
    if let Some(id) = n.class_id() {
        let d = ctx.v1_dir("net_cls", "network.classID")?;
        write_field(
            "network.classID",
            &d.join("net_cls.classid"),
            &id.to_string(),
        )?;
    }
    for p in n.priorities().iter().flatten() {
        let d = ctx.v1_dir("net_prio", "network.priorities")?;
        write_field(
            "network.priorities",
            &d.join("net_prio.ifpriomap"),
            &format!("{} {}", p.name(), p.priority()),
        )?;
    }
    Ok(())
}
