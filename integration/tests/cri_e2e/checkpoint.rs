//! Kubernetes checkpoint and readiness through CRI (issue 13, item 5).
//!
//! - `checkpoint-restore`: CheckpointContainer (the kubelet's container checkpoint API,
//!   what `crictl checkpoint --export` calls) of a running counter, for an ordinary pod
//!   (a pid namespace per container, host network) and a pod with a shared process
//!   namespace on the CNI bridge (the container's pid 1 is the pod's pause: criu must
//!   treat the pid and network namespaces as external). The container keeps running;
//!   the archive has runc's layout (criu's `dump.log` and `stats-dump` at the top level,
//!   the images under `checkpoint/`); a container created from the archive in the same
//!   pod resumes the counter from memory, in the pod's namespaces.
//! - `readiness`: a container annotated `io.github.runrs.notify=true` (the handler passes
//!   `io.github.runrs.*`, deploy/'s snippet): StartContainer returns only after its
//!   READY=1; one that never sends it fails StartContainer after the bound its
//!   `io.github.runrs.notify-timeout` sets, naming READY, and leaves nothing; without
//!   the annotation a container that sends nothing starts at once.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use runrs_cri_proto::v1 as cri;

use crate::pods::{sh_container, wait_for, Ctx, Net, IDLE, NS_CONTAINER, NS_NODE, RUNNING};

/// CRI `NamespaceMode::POD`.
const NS_POD: i32 = 0;

/// Why a scenario of this file does not run for `handler` on containerd `line`.
pub fn skip_reason(name: &str, handler: &str, line: &str) -> Option<&'static str> {
    match name {
        "checkpoint-restore" if line.starts_with("1.") => Some(
            "containerd 1.x's CRI answers CheckpointContainer with Unimplemented (it came in 2.0)",
        ),
        "readiness" if handler != "runrs" => {
            Some("runrs only: sd_notify readiness has no runc-shim equivalent")
        }
        _ => None,
    }
}

/// A shell counter kept in memory (the shell's variable), mirrored to /tmp/count
/// (written aside and renamed: a reader never sees it empty).
const COUNTER: &str = "trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); echo $i > /tmp/c; mv /tmp/c /tmp/count; sleep 0.1; done";

/// Checkpoint and restore in an ordinary pod and in one with a shared pid namespace.
pub fn checkpoint_restore(ctx: &Ctx) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("runrs-cri-checkpoint-")
        .tempdir()?;
    // CRI's restore pulls the image the archive names (name@digest): the image comes
    // from a registry on loopback, pulled through CRI as the kubelet does.
    let registry = Registry::start(ctx, dir.path())?;
    let image = registry.publish()?;
    one_checkpoint(ctx, dir.path(), &image, false).context("ordinary pod")?;
    one_checkpoint(ctx, dir.path(), &image, true).context("pod with a shared process namespace")
}

/// A private image registry (Debian's docker-registry) on a loopback port; dropping
/// it stops it and forgets its image names (the image stays under its own name).
struct Registry<'a> {
    ctx: &'a Ctx<'a>,
    child: Child,
    addr: String,
}

impl<'a> Registry<'a> {
    fn start(ctx: &'a Ctx<'a>, dir: &Path) -> Result<Registry<'a>> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        let cfg = dir.join("registry.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.join("registry").display()
            ),
        )?;
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| {
                format!("start {REGISTRY} (apt-get install docker-registry: the deps stage does)")
            })?;
        let r = Registry { ctx, child, addr };
        wait_for("the registry to listen", Duration::from_secs(10), || {
            Ok(TcpStream::connect(&r.addr).is_ok().then_some(()))
        })?;
        Ok(r)
    }

    /// Pushes the test image to the registry and pulls it back through CRI
    /// (PullImage): CRI then knows it by its repo digest. Returns its name.
    fn publish(&self) -> Result<String> {
        let ctx = self.ctx;
        let name = format!("{}/runrs/busybox:latest", self.addr);
        ctx.cd.ctr.ok([
            "images",
            "tag",
            "--force",
            integration::containerd::IMAGE,
            &name,
        ])?;
        ctx.cd.ctr.ok(["images", "push", "--plain-http", &name])?;
        ctx.cd.ctr.ok(["images", "rm", &name])?;
        let n = name.clone();
        ctx.cd.cri.img("PullImage", |mut c| async move {
            c.pull_image(cri::PullImageRequest {
                image: Some(cri::ImageSpec {
                    image: n,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
        })?;
        Ok(name)
    }
}

impl Drop for Registry<'_> {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Its names (tag and repo digest): a later pull of the same image from another
        // registry would otherwise be reported with this one's digest name.
        let ctr = &self.ctx.cd.ctr;
        if let Ok(out) = ctr.ok(["images", "ls", "-q"]) {
            let prefix = format!("{}/", self.addr);
            let names: Vec<&str> = out
                .stdout
                .lines()
                .filter(|l| l.starts_with(&prefix))
                .collect();
            if !names.is_empty() {
                let _ = ctr.ok(["images", "rm"].into_iter().chain(names));
            }
        }
    }
}

/// Debian's registry binary.
const REGISTRY: &str = "/usr/bin/docker-registry";

fn one_checkpoint(ctx: &Ctx, dir: &Path, image: &str, shared: bool) -> Result<()> {
    let (name, net, pid) = if shared {
        ("cp-shared", Net::Cni, NS_POD)
    } else {
        ("cp", Net::Host, NS_CONTAINER)
    };
    let mut pc = ctx.pod_config(name, net, false);
    if let Some(ns) = pc
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
        .and_then(|s| s.namespace_options.as_mut())
    {
        ns.pid = pid;
    }
    let pod = ctx.run_pod(pc)?;
    let with_pid_mode = |mut cfg: cri::ContainerConfig| {
        let linux = cfg.linux.get_or_insert_with(Default::default);
        linux.security_context = Some(cri::LinuxContainerSecurityContext {
            namespace_options: Some(cri::NamespaceOption {
                network: if net == Net::Host { NS_NODE } else { NS_POD },
                pid,
                ..Default::default()
            }),
            ..Default::default()
        });
        cfg
    };
    let mut cfg = with_pid_mode(sh_container("counter", COUNTER));
    cfg.image = Some(cri::ImageSpec {
        image: image.into(),
        ..Default::default()
    });
    let id = pod.start(cfg)?;
    ctx.wait_state(&id, RUNNING, Duration::from_secs(10))?;
    let count = |id: &str| -> Result<u64> {
        let s = ctx.exec_ok(id, &["cat", "/tmp/count"])?;
        s.trim()
            .parse()
            .with_context(|| format!("/tmp/count holds {s:?}"))
    };
    wait_for("the counter to pass 20", Duration::from_secs(20), || {
        Ok((count(&id)? >= 20).then_some(()))
    })?;
    let pid1 = ctx.exec_ok(&id, &["cat", "/proc/1/cmdline"])?;
    ensure!(
        pid1.contains("pause") == shared,
        "pid 1 of the container is {pid1:?} (shared process namespace: {shared})"
    );

    let archive = dir.join(format!("{name}-{}.tar", ctx.handler));
    let req = cri::CheckpointContainerRequest {
        container_id: id.clone(),
        location: archive.to_string_lossy().into_owned(),
        timeout: 60,
    };
    ctx.cd.cri.rt("CheckpointContainer", |mut c| async move {
        c.checkpoint_container(req).await
    })?;
    let at = count(&id).context("the container after CheckpointContainer")?;
    ensure!(
        ctx.state(&id)? == RUNNING,
        "CheckpointContainer stopped the container (the kubelet's checkpoint leaves it running)"
    );
    check_layout(&archive)?;

    ctx.stop(&id, 10)?;
    ctx.remove(&id)?;
    let mut cfg = with_pid_mode(sh_container("restored", COUNTER));
    cfg.image = Some(cri::ImageSpec {
        image: archive.to_string_lossy().into_owned(),
        ..Default::default()
    });
    cfg.command.clear();
    let rid = pod
        .start(cfg)
        .context("create and start from the archive")?;
    ctx.wait_state(&rid, RUNNING, Duration::from_secs(20))?;
    // Restored from memory: the count goes on from where it was (a fresh start counts
    // from 1 again, below `at` for seconds).
    let first = count(&rid)?;
    ensure!(
        first >= at.saturating_sub(5),
        "restored counter reads {first}, the checkpoint was taken at {at}: not restored"
    );
    wait_for(
        "the restored counter to go on",
        Duration::from_secs(10),
        || Ok((count(&rid)? > first).then_some(())),
    )?;
    let pid1 = ctx.exec_ok(&rid, &["cat", "/proc/1/cmdline"])?;
    ensure!(
        pid1.contains("pause") == shared,
        "pid 1 of the restored container is {pid1:?} (shared process namespace: {shared})"
    );
    ctx.stop(&rid, 10)?;
    ctx.remove(&rid)?;
    pod.remove()
}

/// runc's archive layout, where checkpointctl and the kubelet's tools look.
fn check_layout(archive: &Path) -> Result<()> {
    let out = Command::new("tar")
        .arg("-tf")
        .arg(archive)
        .output()
        .context("run tar -tf")?;
    ensure!(
        out.status.success(),
        "tar -tf {}: {}",
        archive.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let list = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = list.lines().map(|l| l.trim_start_matches("./")).collect();
    let has = |n: &str| names.contains(&n);
    let mut missing: Vec<&str> = [
        "dump.log",
        "stats-dump",
        "spec.dump",
        "config.dump",
        "checkpoint/inventory.img",
    ]
    .into_iter()
    .filter(|n| !has(n))
    .collect();
    for misplaced in ["checkpoint/dump.log", "checkpoint/stats-dump"] {
        if has(misplaced) {
            missing.push(misplaced);
        }
    }
    if !missing.is_empty() {
        bail!("checkpoint archive layout: missing or misplaced {missing:?}; it holds {names:?}");
    }
    Ok(())
}

/// sd_notify readiness through CRI, with and without READY=1.
pub fn readiness(ctx: &Ctx) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("runrs-cri-notify-")
        .tempdir()?;
    integration::sdnotify_helper(dir.path())?;
    let pod = ctx.run_pod(ctx.pod_config("ready", Net::Host, false))?;
    let notify = |script: &str, timeout: Option<&str>| {
        let mut cfg = sh_container("ready", script);
        cfg.annotations
            .insert("io.github.runrs.notify".into(), "true".into());
        if let Some(t) = timeout {
            cfg.annotations
                .insert("io.github.runrs.notify-timeout".into(), t.into());
        }
        cfg.mounts = vec![cri::Mount {
            container_path: "/shared".into(),
            host_path: dir.path().to_string_lossy().into_owned(),
            ..Default::default()
        }];
        cfg
    };
    let marker = dir.path().join("before-ready");

    // READY=1 after a while: StartContainer returns after it (the marker the container
    // writes just before READY exists when it returns: no timed assertion).
    let id = pod.start(notify(
        "sleep 1; touch /shared/before-ready; /shared/sdnotify READY=1; exec sleep 100",
        None,
    ))?;
    ensure!(
        marker.exists(),
        "StartContainer returned before the container sent READY=1"
    );
    ctx.wait_state(&id, RUNNING, Duration::from_secs(5))?;
    ctx.stop(&id, 0)?;
    ctx.remove(&id)?;

    // Never READY within its own 2 s bound: StartContainer fails, naming READY.
    let id = pod.create(notify("exec sleep 100", Some("2")))?;
    let i = id.clone();
    let res = ctx.cd.cri.rt_status("StartContainer", |mut c| async move {
        c.start_container(cri::StartContainerRequest { container_id: i })
            .await
    })?;
    match res {
        Ok(_) => bail!("StartContainer succeeded although the container never sent READY=1"),
        Err(s) => ensure!(
            s.message().contains("READY"),
            "StartContainer error does not say READY was never sent: {}",
            s.message()
        ),
    }
    ctx.remove(&id)?;

    // No annotation: a container that sends nothing starts as usual.
    let mut cfg = sh_container("plain", IDLE);
    cfg.mounts = notify("", None).mounts;
    let id = pod.start(cfg)?;
    ctx.wait_state(&id, RUNNING, Duration::from_secs(10))
        .map_err(|e| anyhow!("a container without the annotation: {e:#}"))?;
    ctx.stop(&id, 10)?;
    ctx.remove(&id)?;
    pod.remove()
}
