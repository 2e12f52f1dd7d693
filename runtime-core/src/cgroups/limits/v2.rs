//! cgroup v2 writers (runc libcontainer/cgroups/fs2): cpuset, memory, cpu (weight from
//! shares, cpu.max, burst, idle), pids, io, hugetlb, rdma, the device filter, and the
//! `unified` key/values last so they override what the OCI fields wrote.

use std::collections::HashMap;
use std::path::Path;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxRdma, LinuxResources,
};

use super::{conv, ignored, read_str, Ctx};
use crate::cgroups::devices::{bpf, Policy};
use crate::cgroups::{write_field, CgroupError};
use crate::sys::c;

pub(super) fn apply(
    ctx: &Ctx<'_>,
    res: &LinuxResources,
    devices: Option<&Policy>,
) -> Result<(), CgroupError> {
    let unified = res.unified().as_ref();
    let overridden = |k: &str| unified.is_some_and(|u| u.contains_key(k));
    if let Some(c) = res.cpu() {
        for (field, file, v) in [
            ("cpu.cpus", "cpuset.cpus", c.cpus()),
            ("cpu.mems", "cpuset.mems", c.mems()),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                let d = ctx.unified_dir("cpuset", field)?;
                write_field(field, &d.join(file), v)?;
            }
        }
    }
    if let Some(p) = devices {
        let d = ctx.unified_dir("cgroup", "devices")?;
        bpf::install(&d, p).map_err(CgroupError::DeviceFilter)?;
    }
    if let Some(m) = res.memory() {
        memory(ctx, m)?;
    }
    if let Some(c) = res.cpu() {
        cpu(ctx, c, overridden("cpu.weight"))?;
    }
    if let Some(p) = res.pids() {
        if p.limit() != 0 {
            let d = ctx.unified_dir("pids", "pids.limit")?;
            let v = if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            };
            write_field("pids.limit", &d.join("pids.max"), &v)?;
        }
    }
    if let Some(b) = res.block_io() {
        io(ctx, b)?;
    }
    if let Some(h) = res.hugepage_limits() {
        if !h.is_empty() {
            hugetlb(&ctx.unified_dir("hugetlb", "hugepageLimits")?, h, "max")?;
        }
    }
    if let Some(n) = res.network() {
        if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            ignored("network", "cgroup v2 has no net_cls/net_prio controllers");
        }
    }
    if let Some(r) = res.rdma() {
        if !r.is_empty() {
            rdma(&ctx.unified_dir("rdma", "rdma")?, r)?;
        }
    }
    if let Some(u) = unified {
        unified_keys(ctx, u)?;
    }
    Ok(())
}

fn memory(ctx: &Ctx<'_>, m: &LinuxMemory) -> Result<(), CgroupError> {
    if m.swappiness().is_some() {
        ignored(
            "memory.swappiness",
            "cgroup v2 has no per-cgroup swappiness",
        );
    }
    if m.disable_oom_killer() == Some(true) {
        ignored(
            "memory.disableOOMKiller",
            "cgroup v2 cannot disable the OOM killer",
        );
    }
    #[allow(deprecated)]
    if m.kernel().is_some() || m.kernel_tcp().is_some() {
        ignored(
            "memory.kernel",
            "kernel memory limits are deprecated and absent on cgroup v2",
        );
    }
    let limit = m.limit().unwrap_or(0);
    let swap = m.swap().unwrap_or(0);
    let reservation = m.reservation().unwrap_or(0);
    if limit == 0 && swap == 0 && reservation == 0 {
        return Ok(());
    }
    let d = ctx.unified_dir("memory", "memory")?;
    if ctx.live && m.check_before_update() == Some(true) && limit > 0 {
        let usage = read_str(&d.join("memory.current"))
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
    let swap_max =
        conv::memory_swap_to_v2(swap, limit).map_err(|reason| CgroupError::Resource {
            field: "memory.swap".into(),
            reason,
        })?;
    if let Some(v) = swap_max {
        let file = d.join("memory.swap.max");
        if file.exists() {
            write_field("memory.swap", &file, &v)?;
        } else if v != "max" && v != "0" {
            return Err(CgroupError::Resource {
                field: "memory.swap".into(),
                reason: "this kernel does not account swap (no memory.swap.max)".into(),
            });
        }
    }
    if let Some(v) = conv::num_to_str(limit) {
        write_field("memory.limit", &d.join("memory.max"), &v).map_err(|e| match e {
            CgroupError::Limit { source, .. } if source.raw_os_error() == Some(c::EBUSY) => {
                CgroupError::Resource {
                    field: "memory.limit".into(),
                    reason: format!(
                        "unable to set the memory limit to {limit} (current usage: {})",
                        read_str(&d.join("memory.current")).unwrap_or_default()
                    ),
                }
            }
            e => e,
        })?;
    }
    if let Some(v) = conv::num_to_str(reservation) {
        write_field("memory.reservation", &d.join("memory.low"), &v)?;
    }
    Ok(())
}

fn cpu(ctx: &Ctx<'_>, c: &LinuxCpu, weight_overridden: bool) -> Result<(), CgroupError> {
    if c.realtime_runtime().is_some_and(|r| r != 0) || c.realtime_period().is_some_and(|p| p != 0) {
        return Err(CgroupError::Resource {
            field: "cpu.realtimeRuntime".into(),
            reason: "cgroup v2 has no realtime bandwidth control (cpu.rt_runtime_us is v1 only)"
                .into(),
        });
    }
    let shares = c.shares().unwrap_or(0);
    let (quota, period) = (c.quota().unwrap_or(0), c.period().unwrap_or(0));
    if shares == 0 && quota == 0 && period == 0 && c.burst().is_none() && c.idle().is_none() {
        return Ok(());
    }
    let d = ctx.unified_dir("cpu", "cpu")?;
    if c.idle() == Some(0) {
        write_field("cpu.idle", &d.join("cpu.idle"), "0")?;
    }
    if shares != 0 && !weight_overridden {
        let w = conv::cpu_shares_to_weight(shares);
        write_field("cpu.shares", &d.join("cpu.weight"), &w.to_string())?;
    }
    let mut burst_failed = None;
    if let Some(b) = c.burst() {
        if let Err(e) = write_field("cpu.burst", &d.join("cpu.max.burst"), &b.to_string()) {
            if quota == 0 {
                return Err(e);
            }
            burst_failed = Some(b);
        }
    }
    if let Some(v) = conv::cpu_max(quota, period) {
        write_field("cpu.quota", &d.join("cpu.max"), &v)?;
    }
    if let Some(b) = burst_failed {
        write_field("cpu.burst", &d.join("cpu.max.burst"), &b.to_string())?;
    }
    if c.idle() == Some(1) {
        write_field("cpu.idle", &d.join("cpu.idle"), "1")?;
    }
    Ok(())
}

fn io(ctx: &Ctx<'_>, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let throttles = [
        (
            "blockIO.throttleReadBpsDevice",
            "rbps",
            b.throttle_read_bps_device(),
        ),
        (
            "blockIO.throttleWriteBpsDevice",
            "wbps",
            b.throttle_write_bps_device(),
        ),
        (
            "blockIO.throttleReadIOPSDevice",
            "riops",
            b.throttle_read_iops_device(),
        ),
        (
            "blockIO.throttleWriteIOPSDevice",
            "wiops",
            b.throttle_write_iops_device(),
        ),
    ];
    let any = b.weight().is_some_and(|w| w != 0)
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || throttles
            .iter()
            .any(|t| t.2.as_ref().is_some_and(|v| !v.is_empty()));
    if b.leaf_weight().is_some_and(|w| w != 0) {
        ignored("blockIO.leafWeight", "cgroup v2 has no leaf weights");
    }
    if !any {
        return Ok(());
    }
    let d = ctx.unified_dir("io", "blockIO")?;
    let bfq = d.join("io.bfq.weight").exists();
    let no_weight = |field: &str| CgroupError::Resource {
        field: field.into(),
        reason:
            "no io.bfq.weight or io.weight in this cgroup (no BFQ scheduler or io.cost support)"
                .into(),
    };
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        if bfq {
            write_field("blockIO.weight", &d.join("io.bfq.weight"), &w.to_string())?;
        } else if d.join("io.weight").exists() {
            let v = conv::blkio_weight_to_io_weight(w);
            write_field(
                "blockIO.weight",
                &d.join("io.weight"),
                &format!("default {v}"),
            )?;
        } else {
            return Err(no_weight("blockIO.weight"));
        }
    }
    for wd in b.weight_device().iter().flatten() {
        let Some(w) = wd.weight() else { continue };
        let dev = format!("{}:{}", wd.major(), wd.minor());
        if bfq {
            write_field(
                "blockIO.weightDevice",
                &d.join("io.bfq.weight"),
                &format!("{dev} {w}"),
            )?;
        } else if d.join("io.weight").exists() {
            let v = conv::blkio_weight_to_io_weight(w);
            write_field(
                "blockIO.weightDevice",
                &d.join("io.weight"),
                &format!("{dev} {v}"),
            )?;
        } else {
            return Err(no_weight("blockIO.weightDevice"));
        }
    }
    for (field, key, list) in throttles {
        for t in list.iter().flatten() {
            let rate = if t.rate() == 0 {
                "max".to_string()
            } else {
                t.rate().to_string()
            };
            let line = format!("{}:{} {key}={rate}", t.major(), t.minor());
            write_field(field, &d.join("io.max"), &line)?;
        }
    }
    Ok(())
}

/// hugetlb.<size>.<limit> (and .rsvd.<limit> when the kernel has it) in `d`: `limit` is
/// "max" on the unified hierarchy, "limit_in_bytes" in the v1 controller.
pub(super) fn hugetlb(
    d: &Path,
    limits: &[LinuxHugepageLimit],
    limit: &str,
) -> Result<(), CgroupError> {
    for l in limits {
        let ps = l.page_size();
        let file = d.join(format!("hugetlb.{ps}.{limit}"));
        if !file.exists() {
            return Err(CgroupError::Resource {
                field: "hugepageLimits".into(),
                reason: format!(
                    "page size {ps} is not supported by this kernel (no {})",
                    file.display()
                ),
            });
        }
        let v = l.limit().to_string();
        write_field("hugepageLimits", &file, &v)?;
        let rsvd = d.join(format!("hugetlb.{ps}.rsvd.{limit}"));
        if rsvd.exists() {
            write_field("hugepageLimits", &rsvd, &v)?;
        }
    }
    Ok(())
}

/// rdma.max lines (`mlx5_0 hca_handle=2 hca_object=max`), v1 and v2 alike.
pub(super) fn rdma(d: &Path, r: &HashMap<String, LinuxRdma>) -> Result<(), CgroupError> {
    let mut devs: Vec<_> = r.iter().collect();
    devs.sort_by(|a, b| a.0.cmp(b.0));
    for (dev, l) in devs {
        let mut line = dev.clone();
        if let Some(h) = l.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = l.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        if line != *dev {
            write_field("rdma", &d.join("rdma.max"), &line)?;
        }
    }
    Ok(())
}

/// `unified` key/values, on v2 or on the cgroup2 side of a hybrid host (where each
/// key's controller must live in the unified hierarchy).
pub(super) fn unified_keys(ctx: &Ctx<'_>, u: &HashMap<String, String>) -> Result<(), CgroupError> {
    let mut keys: Vec<_> = u.iter().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in keys {
        let field = format!("unified.{k}");
        let controller = k.split('.').next().unwrap_or_default();
        let d = ctx.unified_dir(controller, &field)?;
        let file = d.join(k);
        if !file.exists() {
            return Err(CgroupError::Resource {
                field,
                reason: format!("no such cgroup file {}", file.display()),
            });
        }
        write_field(&field, &file, v)?;
    }
    Ok(())
}
