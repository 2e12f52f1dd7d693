//! Merging an update into a container's resources, as `runc update` does: every field
//! the update sets replaces the old value, everything else is kept. Following runc,
//! a value of 0 for a limit means "not set" (it never clears a limit: use -1 for
//! unlimited where the field allows it). Per-device and per-key lists are merged by
//! device / page size / interface / key.

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxNetwork, LinuxPids, LinuxResources,
    LinuxThrottleDevice, LinuxWeightDevice,
};

/// `old` with everything `patch` sets.
pub fn merge(old: &LinuxResources, patch: &LinuxResources) -> LinuxResources {
    let mut out = old.clone();
    if let Some(d) = patch.devices() {
        out.set_devices(Some(d.clone()));
    }
    if let Some(p) = patch.memory() {
        out.set_memory(Some(memory(old.memory().unwrap_or_default(), p)));
    }
    if let Some(p) = patch.cpu() {
        out.set_cpu(Some(cpu(old.cpu().clone().unwrap_or_default(), p)));
    }
    if let Some(p) = patch.pids().filter(|p| p.limit() != 0) {
        let mut n = LinuxPids::default();
        n.set_limit(p.limit());
        out.set_pids(Some(n));
    }
    if let Some(p) = patch.block_io() {
        out.set_block_io(Some(block_io(
            old.block_io().clone().unwrap_or_default(),
            p,
        )));
    }
    if let Some(p) = patch.hugepage_limits() {
        let mut v = old.hugepage_limits().clone().unwrap_or_default();
        for l in p {
            match v.iter_mut().find(|o| o.page_size() == l.page_size()) {
                Some(o) => *o = l.clone(),
                None => v.push(l.clone()),
            }
        }
        out.set_hugepage_limits(Some(v));
    }
    if let Some(p) = patch.network() {
        out.set_network(Some(network(old.network().clone().unwrap_or_default(), p)));
    }
    if let Some(p) = patch.rdma() {
        let mut m = old.rdma().clone().unwrap_or_default();
        for (dev, l) in p {
            let e = m.entry(dev.clone()).or_default();
            if let Some(h) = l.hca_handles() {
                *e.hca_handles_mut() = Some(h);
            }
            if let Some(o) = l.hca_objects() {
                *e.hca_objects_mut() = Some(o);
            }
        }
        out.set_rdma(Some(m));
    }
    if let Some(p) = patch.unified() {
        let mut m = old.unified().clone().unwrap_or_default();
        m.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())));
        out.set_unified(Some(m));
    }
    out
}

fn nz_i(v: Option<i64>) -> Option<i64> {
    v.filter(|v| *v != 0)
}

fn nz_u(v: Option<u64>) -> Option<u64> {
    v.filter(|v| *v != 0)
}

#[allow(deprecated)]
fn memory(mut m: LinuxMemory, p: &LinuxMemory) -> LinuxMemory {
    if let Some(v) = nz_i(p.limit()) {
        m.set_limit(Some(v));
    }
    if let Some(v) = nz_i(p.reservation()) {
        m.set_reservation(Some(v));
    }
    if let Some(v) = nz_i(p.swap()) {
        m.set_swap(Some(v));
    } else if p.limit() == Some(-1) {
        // Unlimited memory without a swap setting lifts the swap limit too (runc's
        // setMemoryAndSwap): `update --memory -1` while a swap limit is set.
        m.set_swap(Some(-1));
    }
    if let Some(v) = nz_i(p.kernel()) {
        m.set_kernel(Some(v));
    }
    if let Some(v) = nz_i(p.kernel_tcp()) {
        m.set_kernel_tcp(Some(v));
    }
    if let Some(v) = p.swappiness() {
        m.set_swappiness(Some(v));
    }
    if let Some(v) = p.disable_oom_killer() {
        m.set_disable_oom_killer(Some(v));
    }
    if let Some(v) = p.use_hierarchy() {
        m.set_use_hierarchy(Some(v));
    }
    // A per-request flag, not a property of the container.
    m.set_check_before_update(p.check_before_update());
    m
}

fn cpu(mut c: LinuxCpu, p: &LinuxCpu) -> LinuxCpu {
    if let Some(v) = nz_u(p.shares()) {
        c.set_shares(Some(v));
    }
    if let Some(v) = nz_i(p.quota()) {
        c.set_quota(Some(v));
    }
    if let Some(v) = nz_u(p.period()) {
        c.set_period(Some(v));
    }
    if let Some(v) = p.burst() {
        c.set_burst(Some(v));
    }
    if let Some(v) = p.idle() {
        c.set_idle(Some(v));
    }
    if let Some(v) = nz_i(p.realtime_runtime()) {
        c.set_realtime_runtime(Some(v));
    }
    if let Some(v) = nz_u(p.realtime_period()) {
        c.set_realtime_period(Some(v));
    }
    if let Some(v) = p.cpus().as_ref().filter(|v| !v.is_empty()) {
        c.set_cpus(Some(v.clone()));
    }
    if let Some(v) = p.mems().as_ref().filter(|v| !v.is_empty()) {
        c.set_mems(Some(v.clone()));
    }
    c
}

fn block_io(mut b: LinuxBlockIo, p: &LinuxBlockIo) -> LinuxBlockIo {
    if let Some(v) = p.weight().filter(|v| *v != 0) {
        b.set_weight(Some(v));
    }
    if let Some(v) = p.leaf_weight().filter(|v| *v != 0) {
        b.set_leaf_weight(Some(v));
    }
    if let Some(list) = p.weight_device() {
        let mut v: Vec<LinuxWeightDevice> = b.weight_device().clone().unwrap_or_default();
        for d in list {
            match v
                .iter_mut()
                .find(|o| (o.major(), o.minor()) == (d.major(), d.minor()))
            {
                Some(o) => *o = *d,
                None => v.push(*d),
            }
        }
        b.set_weight_device(Some(v));
    }
    let throttle = |old: &Option<Vec<LinuxThrottleDevice>>,
                    new: &Option<Vec<LinuxThrottleDevice>>| {
        let Some(new) = new else { return old.clone() };
        let mut v = old.clone().unwrap_or_default();
        for d in new {
            match v
                .iter_mut()
                .find(|o| (o.major(), o.minor()) == (d.major(), d.minor()))
            {
                Some(o) => *o = *d,
                None => v.push(*d),
            }
        }
        Some(v)
    };
    let rb = throttle(b.throttle_read_bps_device(), p.throttle_read_bps_device());
    let wb = throttle(b.throttle_write_bps_device(), p.throttle_write_bps_device());
    let ri = throttle(b.throttle_read_iops_device(), p.throttle_read_iops_device());
    let wi = throttle(
        b.throttle_write_iops_device(),
        p.throttle_write_iops_device(),
    );
    b.set_throttle_read_bps_device(rb);
    b.set_throttle_write_bps_device(wb);
    b.set_throttle_read_iops_device(ri);
    b.set_throttle_write_iops_device(wi);
    b
}

fn network(mut n: LinuxNetwork, p: &LinuxNetwork) -> LinuxNetwork {
    if let Some(v) = p.class_id() {
        n.set_class_id(Some(v));
    }
    if let Some(list) = p.priorities() {
        let mut v = n.priorities().clone().unwrap_or_default();
        for i in list {
            match v.iter_mut().find(|o| o.name() == i.name()) {
                Some(o) => *o = i.clone(),
                None => v.push(i.clone()),
            }
        }
        n.set_priorities(Some(v));
    }
    n
}

#[cfg(test)]
mod tests {
    use super::merge;
    use oci_spec::runtime::LinuxResources;

    fn res(j: &str) -> LinuxResources {
        serde_json::from_str(j).expect("resources json")
    }

    #[test]
    fn update_keeps_what_it_does_not_set() {
        let old = res(
            r#"{"memory":{"limit":100,"swap":200},"cpu":{"quota":5000,"period":10000,"cpus":"0"},
                "pids":{"limit":10},"unified":{"memory.high":"90"},
                "blockIO":{"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":10}]},
                "devices":[{"allow":false,"access":"rwm"}]}"#,
        );
        let patch = res(
            r#"{"memory":{"limit":300,"reservation":0},"cpu":{"quota":2000,"cpus":""},
                "pids":{"limit":0},"unified":{"pids.max":"5"},
                "blockIO":{"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":20},{"major":8,"minor":16,"rate":5}]}}"#,
        );
        let m = merge(&old, &patch);
        let mem = m.memory().expect("memory");
        assert_eq!(
            (mem.limit(), mem.swap(), mem.reservation()),
            (Some(300), Some(200), None)
        );
        let cpu = m.cpu().as_ref().expect("cpu");
        assert_eq!((cpu.quota(), cpu.period()), (Some(2000), Some(10000)));
        assert_eq!(cpu.cpus().as_deref(), Some("0"));
        assert_eq!(m.pids().expect("pids").limit(), 10);
        let u = m.unified().as_ref().expect("unified");
        assert_eq!(u.len(), 2);
        let t = m
            .block_io()
            .as_ref()
            .and_then(|b| b.throttle_read_bps_device().clone())
            .expect("throttle");
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].rate(), 20);
        assert_eq!(m.devices().as_ref().map(Vec::len), Some(1));
    }
}
