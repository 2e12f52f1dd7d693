//! The CRI scenarios. Each runs with handler `runc` (the reference) and `runrs`, under
//! the leak checker (tests/cri_e2e.rs).

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use integration::cri::{GATEWAY, SUBNET};
use runrs_cri_proto::v1 as cri;

use crate::pods::{
    cgroup_dir_of, read_cg, sh_container, shim_name, wait_for, Ctx, Net, EXITED, IDLE, RUNNING,
    SANDBOX_READY,
};

/// A scenario: name and body.
pub type Scenario = (&'static str, fn(&Ctx) -> Result<()>);

/// Every scenario, in order.
pub const SCENARIOS: &[Scenario] = &[
    ("hostnet-lifecycle", hostnet_lifecycle),
    ("exec-sync", exec_sync),
    ("stats-update", stats_update),
    ("reopen-log", reopen_log),
    ("stop-graceful-forced", stop_graceful_forced),
    ("cni-two-containers", cni_two_containers),
    ("propagation", propagation),
    ("containerd-restart", containerd_restart),
    ("checkpoint-restore", crate::checkpoint::checkpoint_restore),
    ("readiness", crate::checkpoint::readiness),
];

/// RunPodSandbox (host network), CreateContainer, StartContainer, ContainerStatus, the
/// container's output in its CRI log, StopContainer, RemoveContainer, StopPodSandbox,
/// RemovePodSandbox.
fn hostnet_lifecycle(ctx: &Ctx) -> Result<()> {
    let pod = ctx.run_pod(ctx.pod_config("hostnet", Net::Host, false))?;
    let st = pod.status()?;
    ensure!(st.state == SANDBOX_READY, "sandbox not ready: {st:?}");
    let id = pod.start(sh_container(
        "main",
        &format!("echo hello-from-cri; {IDLE}"),
    ))?;
    ctx.wait_state(&id, RUNNING, Duration::from_secs(10))?;
    // Host network: the container sees the host's interfaces (the same net namespace).
    let pid = ctx.pid(&id)?;
    ensure!(
        integration::proc::ns_link(&pid.to_string(), "net")?
            == integration::proc::ns_link("self", "net")?,
        "a host-network pod has its own network namespace"
    );
    let log = pod.log_dir().join("main.log");
    let text = wait_for(
        "the container's output in its log",
        Duration::from_secs(10),
        || {
            let t = fs::read_to_string(&log).unwrap_or_default();
            Ok((t.contains("hello-from-cri") && t.contains("ready")).then_some(t))
        },
    )?;
    // CRI log format: "<RFC3339 time> stdout F <line>".
    ensure!(
        text.lines()
            .any(|l| l.ends_with(" stdout F hello-from-cri")),
        "log lines are not in the CRI format: {text:?}"
    );
    ctx.stop(&id, 10)?;
    let st = ctx.wait_state(&id, EXITED, Duration::from_secs(10))?;
    ensure!(
        st.exit_code == 0,
        "exit code {} after SIGTERM",
        st.exit_code
    );
    ctx.remove(&id)?;
    ensure!(
        ctx.status(&id).is_err(),
        "ContainerStatus still answers after RemoveContainer"
    );
    pod.remove()
}

/// ExecSync: stdout, stderr, exit code, and the timeout.
fn exec_sync(ctx: &Ctx) -> Result<()> {
    let pod = ctx.run_pod(ctx.pod_config("exec", Net::Host, false))?;
    let id = pod.start(sh_container("main", IDLE))?;
    ctx.wait_state(&id, RUNNING, Duration::from_secs(10))?;
    let r = ctx.exec(&id, &["sh", "-c", "echo out; echo err >&2; exit 3"], 10)?;
    ensure!(
        r.stdout == b"out\n" && r.stderr == b"err\n" && r.exit_code == 3,
        "exec: stdout {:?} stderr {:?} exit {}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr),
        r.exit_code
    );
    // Large output is complete.
    let big = ctx.exec_ok(&id, &["sh", "-c", "seq 1 20000"])?;
    ensure!(
        big.lines().count() == 20000 && big.ends_with("20000\n"),
        "exec output truncated: {} lines",
        big.lines().count()
    );
    let t = Instant::now();
    let req = cri::ExecSyncRequest {
        container_id: id.clone(),
        cmd: vec!["sleep".into(), "30".into()],
        timeout: 1,
    };
    let res = ctx
        .cd
        .cri
        .rt_status("ExecSync", |mut c| async move { c.exec_sync(req).await })?;
    let took = t.elapsed();
    match res {
        Err(s) => ensure!(
            s.message().contains("timeout"),
            "ExecSync timeout: unexpected error {:?}: {}",
            s.code(),
            s.message()
        ),
        Ok(r) => bail!("ExecSync with a 1 s timeout of `sleep 30` returned {r:?}"),
    }
    ensure!(
        took < Duration::from_secs(15),
        "the exec timeout took {took:?}"
    );
    // The timed-out process is gone (killed), not left running in the container.
    wait_for(
        "the timed-out exec to be killed",
        Duration::from_secs(10),
        || {
            let ps = ctx.exec_ok(&id, &["ps", "-o", "args"])?;
            Ok((!ps.lines().any(|l| l.trim() == "sleep 30")).then_some(()))
        },
    )?;
    ctx.stop(&id, 10)?;
    ctx.remove(&id)?;
    pod.remove()
}

/// ContainerStats / ListContainerStats, and UpdateContainerResources seen in the
/// container's cgroup files on the host.
fn stats_update(ctx: &Ctx) -> Result<()> {
    let pod = ctx.run_pod(ctx.pod_config("stats", Net::Host, false))?;
    let mut cfg = sh_container("main", IDLE);
    cfg.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 512,
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = pod.start(cfg)?;
    ctx.wait_state(&id, RUNNING, Duration::from_secs(10))?;
    // Burn a little CPU so usage is not zero.
    ctx.exec_ok(
        &id,
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done",
        ],
    )?;
    let i = id.clone();
    let stats = ctx
        .cd
        .cri
        .rt("ContainerStats", |mut c| async move {
            c.container_stats(cri::ContainerStatsRequest { container_id: i })
                .await
        })?
        .stats
        .ok_or_else(|| anyhow!("ContainerStats: no stats"))?;
    let cpu = stats
        .cpu
        .as_ref()
        .and_then(|c| c.usage_core_nano_seconds.as_ref())
        .map_or(0, |v| v.value);
    let mem = stats
        .memory
        .as_ref()
        .and_then(|m| m.working_set_bytes.as_ref())
        .map_or(0, |v| v.value);
    ensure!(
        cpu > 0 && mem > 0,
        "ContainerStats: cpu {cpu} ns, working set {mem} bytes: {stats:?}"
    );
    let filter = cri::ContainerStatsFilter {
        pod_sandbox_id: pod.id.clone(),
        ..Default::default()
    };
    let list = ctx.cd.cri.rt("ListContainerStats", |mut c| async move {
        c.list_container_stats(cri::ListContainerStatsRequest {
            filter: Some(filter),
        })
        .await
    })?;
    ensure!(
        list.stats.len() == 1
            && list.stats[0].attributes.as_ref().map(|a| a.id.as_str()) == Some(id.as_str()),
        "ListContainerStats for the pod: {:?}",
        list.stats
    );

    let pid = ctx.pid(&id)?;
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let mem_dir = cgroup_dir_of(pid, "memory")?;
    let cpu_dir = cgroup_dir_of(pid, "cpu")?;
    let (mem_file, quota) = if v2 {
        ("memory.max", read_cg(&cpu_dir, "cpu.max")?)
    } else {
        (
            "memory.limit_in_bytes",
            read_cg(&cpu_dir, "cpu.cfs_quota_us")?,
        )
    };
    ensure!(
        read_cg(&mem_dir, mem_file)? == (64u64 << 20).to_string(),
        "memory limit at create: {}",
        read_cg(&mem_dir, mem_file)?
    );
    ensure!(quota.starts_with("50000"), "cpu quota at create: {quota}");
    let req = cri::UpdateContainerResourcesRequest {
        container_id: id.clone(),
        linux: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 96 << 20,
            cpu_period: 100_000,
            cpu_quota: 25_000,
            cpu_shares: 256,
            ..Default::default()
        }),
        ..Default::default()
    };
    ctx.cd
        .cri
        .rt("UpdateContainerResources", |mut c| async move {
            c.update_container_resources(req).await
        })?;
    ensure!(
        read_cg(&mem_dir, mem_file)? == (96u64 << 20).to_string(),
        "memory limit after update: {}",
        read_cg(&mem_dir, mem_file)?
    );
    let quota = if v2 {
        read_cg(&cpu_dir, "cpu.max")?
    } else {
        read_cg(&cpu_dir, "cpu.cfs_quota_us")?
    };
    ensure!(
        quota.starts_with("25000"),
        "cpu quota after update: {quota}"
    );
    if !v2 {
        ensure!(
            read_cg(&cpu_dir, "cpu.shares")? == "256",
            "cpu shares after update: {}",
            read_cg(&cpu_dir, "cpu.shares")?
        );
    }
    // containerd reports what it applied.
    let st = ctx
        .status(&id)?
        .status
        .ok_or_else(|| anyhow!("no status"))?;
    let applied = st
        .resources
        .and_then(|r| r.linux)
        .map(|l| l.memory_limit_in_bytes);
    ensure!(
        applied == Some(96 << 20),
        "ContainerStatus resources after update: {applied:?}"
    );
    ctx.stop(&id, 10)?;
    ctx.remove(&id)?;
    pod.remove()
}

/// ReopenContainerLog: after the log file is moved away, the container's output goes
/// to a new file at the log path.
fn reopen_log(ctx: &Ctx) -> Result<()> {
    let pod = ctx.run_pod(ctx.pod_config("reopen", Net::Host, false))?;
    let id = pod.start(sh_container(
        "main",
        "trap 'exit 0' TERM; i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.1; done",
    ))?;
    let log = pod.log_dir().join("main.log");
    wait_for("output in the log", Duration::from_secs(10), || {
        Ok(fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("line-")
            .then_some(()))
    })?;
    let rotated = pod.log_dir().join("main.log.1");
    fs::rename(&log, &rotated)?;
    let i = id.clone();
    ctx.cd.cri.rt("ReopenContainerLog", |mut c| async move {
        c.reopen_container_log(cri::ReopenContainerLogRequest { container_id: i })
            .await
    })?;
    wait_for(
        "output in the reopened log",
        Duration::from_secs(10),
        || {
            Ok(fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("line-")
                .then_some(()))
        },
    )?;
    ensure!(
        fs::read_to_string(&rotated)?.contains("line-"),
        "the rotated file lost its lines"
    );
    ctx.stop(&id, 10)?;
    ctx.remove(&id)?;
    pod.remove()
}

/// StopContainer: a container that exits on SIGTERM stops at once with its exit code;
/// one that ignores it is killed when the grace period ends (137).
fn stop_graceful_forced(ctx: &Ctx) -> Result<()> {
    let pod = ctx.run_pod(ctx.pod_config("stop", Net::Host, false))?;
    let graceful = pod.start(sh_container(
        "graceful",
        "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done",
    ))?;
    let stubborn = pod.start(sh_container(
        "stubborn",
        "trap '' TERM; echo ready; while true; do sleep 0.1; done",
    ))?;
    ctx.wait_state(&graceful, RUNNING, Duration::from_secs(10))?;
    ctx.wait_state(&stubborn, RUNNING, Duration::from_secs(10))?;
    ctx.wait_log(&pod, "graceful", "ready")?;
    ctx.wait_log(&pod, "stubborn", "ready")?;
    let t = Instant::now();
    ctx.stop(&graceful, 30)?;
    let took = t.elapsed();
    let st = ctx.wait_state(&graceful, EXITED, Duration::from_secs(5))?;
    ensure!(
        st.exit_code == 7 && took < Duration::from_secs(5),
        "graceful stop: exit {} after {took:?}",
        st.exit_code
    );
    ensure!(
        fs::read_to_string(pod.log_dir().join("graceful.log"))?.contains("got-term"),
        "the container did not see SIGTERM"
    );
    let t = Instant::now();
    ctx.stop(&stubborn, 2)?;
    let took = t.elapsed();
    let st = ctx.wait_state(&stubborn, EXITED, Duration::from_secs(5))?;
    ensure!(
        st.exit_code == 137
            && took >= Duration::from_millis(1900)
            && took < Duration::from_secs(10),
        "forced stop: exit {} after {took:?} (grace 2 s)",
        st.exit_code
    );
    ctx.remove(&graceful)?;
    ctx.remove(&stubborn)?;
    pod.remove()
}

/// A pod on the CNI bridge with two containers: B reaches A's server on localhost, the
/// host reaches it on the pod IP, and one shim process serves the whole pod.
fn cni_two_containers(ctx: &Ctx) -> Result<()> {
    let before: Vec<i32> = ctx.cd.shims().into_iter().map(|(p, _)| p).collect();
    let pod = ctx.run_pod(ctx.pod_config("cni", Net::Cni, false))?;
    let st = pod.status()?;
    let ip = st.network.map(|n| n.ip).unwrap_or_default();
    let prefix = SUBNET.trim_end_matches("0/24");
    ensure!(
        ip.starts_with(prefix) && ip != GATEWAY,
        "pod IP {ip:?} is not in {SUBNET}"
    );
    let a = pod.start(sh_container(
        "server",
        "mkdir -p /www && echo hello-from-a > /www/index.html && exec httpd -f -p 8080 -h /www",
    ))?;
    let b = pod.start(sh_container("client", IDLE))?;
    ctx.wait_state(&a, RUNNING, Duration::from_secs(10))?;
    ctx.wait_state(&b, RUNNING, Duration::from_secs(10))?;
    let mut last = String::new();
    let got = wait_for(
        "B to reach A on localhost:8080",
        Duration::from_secs(10),
        || {
            let r = ctx.exec(
                &b,
                // (not `-T`: busybox-static's wget segfaults with it)
                &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"],
                10,
            )?;
            last = format!(
                "exit {}: {}",
                r.exit_code,
                String::from_utf8_lossy(&r.stderr)
            );
            Ok((r.exit_code == 0).then(|| String::from_utf8_lossy(&r.stdout).into_owned()))
        },
    )
    .with_context(|| {
        let diag = ctx
            .exec(&b, &["sh", "-c", "ps; ip addr; netstat -ltn"], 10)
            .map(|r| {
                format!(
                    "{} {}",
                    String::from_utf8_lossy(&r.stdout),
                    String::from_utf8_lossy(&r.stderr)
                )
            })
            .unwrap_or_default();
        format!(
            "last wget: {last}; A's log: {:?}; in B: {diag}",
            fs::read_to_string(pod.log_dir().join("server.log")).unwrap_or_default()
        )
    })?;
    ensure!(got == "hello-from-a\n", "B got {got:?} from A");
    let mut s = TcpStream::connect_timeout(
        &format!("{ip}:8080").parse().context("pod address")?,
        Duration::from_secs(5),
    )
    .with_context(|| format!("connect to the pod at {ip}:8080 from the host"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    ensure!(
        resp.contains("hello-from-a"),
        "host got {resp:?} from the pod"
    );
    // One shim for the sandbox and both containers.
    let shims: Vec<(i32, String)> = ctx
        .cd
        .shims()
        .into_iter()
        .filter(|(p, _)| !before.contains(p))
        .collect();
    ensure!(
        shims.len() == 1 && shims[0].1 == shim_name(ctx.handler),
        "shims serving the pod: {shims:?}, want one {}",
        shim_name(ctx.handler)
    );
    // StopPodSandbox stops the running containers itself.
    pod.remove()?;
    ensure!(
        ctx.status(&a).is_err() && ctx.status(&b).is_err(),
        "containers still known after RemovePodSandbox"
    );
    Ok(())
}

/// A host mount made shared (what the kubelet requires for Bidirectional), removed on
/// drop with everything stacked on it.
struct SharedDir(std::path::PathBuf);

impl SharedDir {
    fn new(path: std::path::PathBuf) -> Result<Self> {
        use nix::mount::{mount, MsFlags};
        fs::create_dir_all(&path)?;
        mount(
            Some(&path),
            &path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("bind {}", path.display()))?;
        let d = SharedDir(path);
        mount(
            None::<&str>,
            &d.0,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .with_context(|| format!("make {} shared", d.0.display()))?;
        for sub in ["in", "fromhost"] {
            fs::create_dir_all(d.0.join(sub))?;
        }
        Ok(d)
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        for p in [self.0.join("in"), self.0.join("fromhost"), self.0.clone()] {
            while nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH).is_ok() {}
        }
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Mount propagation Private / HostToContainer / Bidirectional: a tmpfs mounted in the
/// container under each mount, and one mounted on the host under each source after the
/// container started; who sees what.
fn propagation(ctx: &Ctx) -> Result<()> {
    let base = ctx.cd.dir.join(format!("prop-{}", ctx.handler));
    let dirs = [
        ("private", 0, SharedDir::new(base.join("private"))?),
        ("h2c", 1, SharedDir::new(base.join("h2c"))?),
        ("bidi", 2, SharedDir::new(base.join("bidi"))?),
    ];
    let pod = ctx.run_pod(ctx.pod_config("prop", Net::Host, true))?;
    let mut cfg = sh_container(
        "main",
        "for d in private h2c bidi; do mount -t tmpfs -o size=1m tmpfs /mnt/$d/in && \
         echo from-container > /mnt/$d/in/marker || exit 1; done; echo mounted; \
         trap 'exit 0' TERM; while true; do sleep 0.1; done",
    );
    cfg.mounts = dirs
        .iter()
        .map(|(name, prop, d)| cri::Mount {
            container_path: format!("/mnt/{name}"),
            host_path: d.0.to_string_lossy().into_owned(),
            propagation: *prop,
            ..Default::default()
        })
        .collect();
    cfg.linux = Some(cri::LinuxContainerConfig {
        security_context: Some(cri::LinuxContainerSecurityContext {
            privileged: true,
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = pod.start(cfg)?;
    ctx.wait_state(&id, RUNNING, Duration::from_secs(10))?;
    let log = pod.log_dir().join("main.log");
    wait_for("the container's mounts", Duration::from_secs(10), || {
        Ok(fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("mounted")
            .then_some(()))
    })?;
    // Host side mounts, after the container started.
    for (_, _, d) in &dirs {
        nix::mount::mount(
            Some("tmpfs"),
            &d.0.join("fromhost"),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=1m"),
        )
        .context("host tmpfs")?;
        fs::write(d.0.join("fromhost/marker"), "from-host\n")?;
    }
    let mut wrong = Vec::new();
    for (name, _, d) in &dirs {
        let on_host = fs::read_to_string(d.0.join("in/marker")).is_ok();
        let inside = ctx
            .exec(&id, &["cat", &format!("/mnt/{name}/fromhost/marker")], 10)?
            .exit_code
            == 0;
        let (want_host, want_inside) = match *name {
            "private" => (false, false),
            "h2c" => (false, true),
            _ => (true, true),
        };
        if on_host != want_host || inside != want_inside {
            wrong.push(format!(
                "{name}: container mount seen on host {on_host} (want {want_host}), \
                 host mount seen inside {inside} (want {want_inside})"
            ));
        }
    }
    ctx.stop(&id, 10)?;
    ctx.remove(&id)?;
    pod.remove()?;
    drop(dirs);
    ensure!(wrong.is_empty(), "{}", wrong.join("; "));
    Ok(())
}

/// containerd restarted (SIGTERM, start) with two pods running: afterwards both pods
/// are ready, their containers run and answer ExecSync, the same shims serve them, and
/// they stop and are removed normally.
fn containerd_restart(ctx: &Ctx) -> Result<()> {
    let before: Vec<i32> = ctx.cd.shims().into_iter().map(|(p, _)| p).collect();
    let p1 = ctx.run_pod(ctx.pod_config("restart-host", Net::Host, false))?;
    let p2 = ctx.run_pod(ctx.pod_config("restart-cni", Net::Cni, false))?;
    let c1 = p1.start(sh_container("main", IDLE))?;
    let c2 = p2.start(sh_container("main", IDLE))?;
    ctx.wait_state(&c1, RUNNING, Duration::from_secs(10))?;
    ctx.wait_state(&c2, RUNNING, Duration::from_secs(10))?;
    let pids = (ctx.pid(&c1)?, ctx.pid(&c2)?);
    let mut shims: Vec<i32> = ctx
        .cd
        .shims()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| !before.contains(p))
        .collect();
    shims.sort_unstable();
    ensure!(shims.len() == 2, "want one shim per pod, found {shims:?}");

    ctx.cd.stop()?;
    ctx.cd.start()?;

    let mut after: Vec<i32> = ctx
        .cd
        .shims()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| !before.contains(p))
        .collect();
    after.sort_unstable();
    ensure!(
        after == shims,
        "shims before the restart {shims:?}, after {after:?}"
    );
    for p in [&p1, &p2] {
        let st = p.status()?;
        ensure!(
            st.state == SANDBOX_READY,
            "pod {} not ready after the restart: {st:?}",
            p.id
        );
    }
    ensure!(
        ctx.state(&c1)? == RUNNING && ctx.state(&c2)? == RUNNING,
        "containers not running after the restart"
    );
    ensure!(
        (ctx.pid(&c1)?, ctx.pid(&c2)?) == pids,
        "container pids changed across the restart"
    );
    for c in [&c1, &c2] {
        ensure!(
            ctx.exec_ok(c, &["echo", "alive"])? == "alive\n",
            "ExecSync after the restart"
        );
    }
    // Still manageable: a new container in a restored pod, then the normal teardown.
    let c3 = p1.start(sh_container("late", IDLE))?;
    ctx.wait_state(&c3, RUNNING, Duration::from_secs(10))?;
    for c in [&c1, &c3, &c2] {
        ctx.stop(c, 10)?;
        ctx.wait_state(c, EXITED, Duration::from_secs(10))?;
        ctx.remove(c)?;
    }
    p1.remove()?;
    p2.remove()
}
