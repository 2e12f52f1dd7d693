//! Scenario 8: CloseIO → EOF, talking to the shim directly over ttrpc (ctr never sends CloseIO);
//! on the way, the RPCs ctr has no command for: Update, and Stats/Pause/Resume.
//!
//! The test plays containerd: it makes the bundle (busybox rootfs, config.json from
//! `<runtime> spec`, `wc -c` as the process) and the stdio fifos, runs the shim's `start`
//! with an address where nothing listens and TTRPC_ADDRESS pointing nowhere (events
//! cannot be delivered: the shim must cope), then Create, Start, writes into the stdin
//! fifo, CloseIO, and expects `wc` to see EOF, exit 0 and print the byte count. Delete
//! and Shutdown must then end the shim and leave nothing behind. The same test runs
//! against containerd-shim-runc-v2 to validate it.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use containerd_shim_protos::api;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::shim::oci;
use containerd_shim_protos::ttrpc::{self, context};
use containerd_shim_protos::{Client, TaskClient};
use integration::cmd::{host, run_capture, CMD_TIMEOUT};
use integration::containerd::host::{self as chost, TaskTarget};
use integration::containerd::{shim_state_root, NAMESPACE, RUNC, RUNRS};
use nix::sys::stat::Mode;
use serde_json::json;

/// Bytes written into the container's stdin (more than a pipe buffer).
const PAYLOAD: usize = 100_000;

/// A ttrpc context with a deadline.
fn ctx(secs: i64) -> context::Context {
    context::with_timeout(secs * 1_000_000_000)
}

/// What the test sets up as containerd would: bundle, fifos, addresses.
struct Rig<'a> {
    bin: &'a Path,
    id: String,
    bundle: PathBuf,
    stdin: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
    /// containerd's address (`-address`): nothing listens there.
    address: PathBuf,
    /// TTRPC_ADDRESS, for events: nothing listens there either.
    ttrpc: PathBuf,
    /// The socket the shim binds (derived from address, namespace and id).
    socket: PathBuf,
}

impl<'a> Rig<'a> {
    /// The rig of shim `bin` for container `id` in `bundle`, its fifos and sockets named
    /// in `tmp` (nothing is created).
    fn new(bin: &'a Path, tmp: &Path, id: String, bundle: PathBuf) -> Result<Rig<'a>> {
        let address = tmp.join("containerd.sock");
        Ok(Rig {
            bin,
            socket: chost::shim_socket(&address, NAMESPACE, &id)?,
            id,
            stdin: tmp.join("stdin"),
            stdout: tmp.join("stdout"),
            stderr: tmp.join("stderr"),
            ttrpc: tmp.join("containerd.sock.ttrpc"),
            address,
            bundle,
        })
    }

    /// The shim command line as containerd runs it, for `action`.
    fn command(&self, action: &str) -> Command {
        let mut cmd = Command::new(self.bin);
        cmd.args(["-namespace", NAMESPACE, "-address"])
            .arg(&self.address)
            .args(["-publish-binary", "x", "-id", &self.id]);
        if action == "delete" {
            cmd.arg("-bundle").arg(&self.bundle);
        }
        cmd.arg(action)
            .current_dir(&self.bundle)
            .env("TTRPC_ADDRESS", &self.ttrpc);
        cmd
    }
}

/// Cleans up after a failed run the way containerd would: SIGKILL the shim, run its
/// `delete`, remove its socket and the container's cgroup.
struct Cleanup<'a> {
    rig: &'a Rig<'a>,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for pid in chost::shim_pids(&self.rig.id) {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
        let _ = run_capture(self.rig.command("delete"), None, CMD_TIMEOUT);
        let _ = fs::remove_file(&self.rig.socket);
        if let Ok(mounts) = integration::proc::cgroup_mounts() {
            let cg = format!("/{NAMESPACE}/{}", self.rig.id);
            for m in mounts {
                if let Some(d) = integration::proc::cgroup_dir(&m, &cg) {
                    let _ = fs::remove_dir(d);
                }
            }
        }
    }
}

/// Run `drive` (which returns the shim's pid after its Shutdown) with [`Cleanup`] armed;
/// then the shim must exit and leave nothing behind. On failure the error carries the
/// shim's log.
fn checked(
    rig: &Rig<'_>,
    runtime: &str,
    log_r: &mut File,
    drive: impl FnOnce() -> Result<u32>,
) -> Result<()> {
    let mut cleanup = Cleanup { rig, armed: true };
    let result = drive().and_then(|shim_pid| {
        chost::wait_gone(shim_pid as i32, Duration::from_secs(15))
            .context("the shim should exit after Shutdown")?;
        TaskTarget {
            id: rig.id.clone(),
            cgroups_path: format!("/{NAMESPACE}/{}", rig.id),
            bundle: rig.bundle.clone(),
            state_root: shim_state_root(runtime, NAMESPACE),
            socket: rig.socket.clone(),
            bundle_removed: false,
        }
        .assert_clean(Duration::from_secs(5))
    });
    match result {
        Ok(()) => {
            cleanup.armed = false;
            Ok(())
        }
        Err(e) => Err(anyhow!(
            "{e:#}\n--- shim log (the bundle's `log` fifo) ---\n{}",
            drain(log_r).unwrap_or_default().trim_end()
        )),
    }
}

fn mkfifo(p: &Path) -> Result<()> {
    nix::unistd::mkfifo(p, Mode::from_bits_truncate(0o600))
        .with_context(|| format!("mkfifo {}", p.display()))
}

fn nonblocking_reader(p: &Path) -> Result<File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)
        .with_context(|| format!("open {}", p.display()))
}

/// Reads what is in a non-blocking fifo now.
fn drain(f: &mut File) -> Result<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("read a fifo"),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// A bundle for `wc -c` on the busybox rootfs, config.json from `<runtime> spec`.
fn make_bundle(bundle: &Path, id: &str) -> Result<()> {
    fs::create_dir(bundle)?;
    let rootfs = integration::rootfs::busybox_rootfs()?;
    host(
        "cp",
        &[
            "-a",
            &rootfs.to_string_lossy(),
            &bundle.join("rootfs").to_string_lossy(),
        ],
    )?;
    let mut spec = Command::new(integration::runtime_path()?);
    spec.arg("spec").arg("--bundle").arg(bundle);
    run_capture(spec, None, CMD_TIMEOUT)?
        .ok()
        .context("generate config.json with `spec`")?;
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&fs::read(&cfg_path)?)?;
    cfg["process"]["terminal"] = json!(false);
    cfg["process"]["args"] = json!(["wc", "-c"]);
    cfg["linux"]["cgroupsPath"] = json!(format!("/{NAMESPACE}/{id}"));
    fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg)?)?;
    Ok(())
}

/// The whole scenario against shim binary `bin` (`runtime` names its state root).
pub fn closeio(bin: &Path, runtime: &str, short: &str) -> Result<()> {
    let id = format!("runrs-e2e-closeio-{short}-{}", std::process::id());
    let tmp = tempfile::Builder::new()
        .prefix("runrs-e2e-closeio-")
        .tempdir()?;
    let bundle = tmp.path().join(&id);
    make_bundle(&bundle, &id)?;
    let rig = Rig::new(bin, tmp.path(), id, bundle)?;
    for p in [&rig.stdin, &rig.stdout, &rig.stderr] {
        mkfifo(p)?;
    }
    let mut out_r = nonblocking_reader(&rig.stdout)?;
    let mut err_r = nonblocking_reader(&rig.stderr)?;
    // The shim logs to the bundle's `log` fifo, which containerd creates and reads (the
    // Go shim does not start without it).
    let log = rig.bundle.join("log");
    mkfifo(&log)?;
    let mut log_r = nonblocking_reader(&log)?;

    checked(&rig, runtime, &mut log_r, || {
        drive(&rig, &mut out_r, &mut err_r)
    })
}

/// start → Connect → Create → Start → stdin → CloseIO → Wait → Delete → Shutdown;
/// returns the shim's pid.
fn drive(rig: &Rig<'_>, out_r: &mut File, err_r: &mut File) -> Result<u32> {
    let id = rig.id.clone();
    let out = run_capture(rig.command("start"), None, CMD_TIMEOUT)?;
    ensure!(out.success(), "the shim's `start` failed: {out}");
    let want = format!("unix://{}", rig.socket.display());
    ensure!(
        out.stdout.trim() == want,
        "`start` should print the bare address {want:?}: {out}"
    );

    let task = TaskClient::new(
        Client::connect(&want).with_context(|| format!("connect to the shim at {want}"))?,
    );
    let rpc = |what: &str, e: ttrpc::Error| anyhow::anyhow!("{what}: {e:?}");
    let shim_pid = task
        .connect(
            ctx(10),
            &api::ConnectRequest {
                id: id.clone(),
                ..Default::default()
            },
        )
        .map_err(|e| rpc("Connect", e))?
        .shim_pid;
    ensure!(shim_pid > 0, "Connect returned no shim pid");

    let created = task
        .create(
            ctx(30),
            &api::CreateTaskRequest {
                id: id.clone(),
                bundle: rig.bundle.to_string_lossy().into_owned(),
                stdin: rig.stdin.to_string_lossy().into_owned(),
                stdout: rig.stdout.to_string_lossy().into_owned(),
                stderr: rig.stderr.to_string_lossy().into_owned(),
                terminal: false,
                ..Default::default()
            },
        )
        .map_err(|e| rpc("Create", e))?;
    ensure!(created.pid > 0, "Create returned no pid");
    let state = |task: &TaskClient| {
        task.state(
            ctx(10),
            &api::StateRequest {
                id: id.clone(),
                ..Default::default()
            },
        )
        .map_err(|e| rpc("State", e))
    };
    let s = state(&task)?;
    ensure!(
        s.status.enum_value() == Ok(api::Status::CREATED),
        "State after Create: {s:?}"
    );
    let started = task
        .start(
            ctx(30),
            &api::StartRequest {
                id: id.clone(),
                ..Default::default()
            },
        )
        .map_err(|e| rpc("Start", e))?;
    ensure!(
        started.pid == created.pid,
        "Start pid {} != Create pid {}",
        started.pid,
        created.pid
    );

    resources(&task, &id)?;

    // The shim holds the fifo open for reading, so this open does not block; ENXIO
    // would mean it does not.
    let mut w = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&rig.stdin)
        .context("open the stdin fifo for writing (does the shim read it?)")?;
    nix::fcntl::fcntl(
        &w,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )?;
    let line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyz\n";
    let mut data = Vec::with_capacity(PAYLOAD);
    while data.len() < PAYLOAD {
        let n = line.len().min(PAYLOAD - data.len());
        data.extend_from_slice(&line[..n]);
    }
    w.write_all(&data).context("write into the stdin fifo")?;
    // Closing our end is not EOF for the container (a client may reopen the fifo):
    // only CloseIO is.
    drop(w);
    task.close_io(
        ctx(10),
        &api::CloseIORequest {
            id: id.clone(),
            stdin: true,
            ..Default::default()
        },
    )
    .map_err(|e| rpc("CloseIO", e))?;
    let waited = task
        .wait(
            ctx(20),
            &api::WaitRequest {
                id: id.clone(),
                ..Default::default()
            },
        )
        .map_err(|e| rpc("Wait (did the process get EOF on stdin after CloseIO?)", e))?;
    let printed = drain(out_r)?;
    let errors = drain(err_r)?;
    ensure!(
        waited.exit_status == 0,
        "`wc -c` should exit 0, Wait says {}; stderr {errors:?}",
        waited.exit_status
    );
    ensure!(
        printed.trim() == PAYLOAD.to_string(),
        "`wc -c` should count {PAYLOAD} bytes, printed {printed:?} (stderr {errors:?})"
    );
    let s = state(&task)?;
    ensure!(
        s.status.enum_value() == Ok(api::Status::STOPPED) && s.exit_status == 0,
        "State after the exit: {s:?}"
    );
    let deleted = task
        .delete(
            ctx(30),
            &api::DeleteRequest {
                id: id.clone(),
                ..Default::default()
            },
        )
        .map_err(|e| rpc("Delete", e))?;
    ensure!(
        deleted.exit_status == 0 && deleted.pid == created.pid,
        "Delete should report pid {} status 0: {deleted:?}",
        created.pid
    );
    // The shim may close the connection before the reply arrives.
    if let Err(e) = task.shutdown(
        ctx(10),
        &api::ShutdownRequest {
            id: id.clone(),
            ..Default::default()
        },
    ) {
        if !format!("{e:?}").to_lowercase().contains("closed") {
            bail!("Shutdown: {e:?}");
        }
    }
    Ok(shim_pid)
}

/// The memory limit file of the container's cgroup (v1 memory.limit_in_bytes or v2
/// memory.max), wherever the memory controller is mounted.
fn memory_limit_file(id: &str) -> Result<PathBuf> {
    let path = format!("/{NAMESPACE}/{id}");
    for m in integration::proc::cgroup_mounts()? {
        let Some(d) = integration::proc::cgroup_dir(&m, &path) else {
            continue;
        };
        for f in ["memory.limit_in_bytes", "memory.max"] {
            if d.join(f).exists() {
                return Ok(d.join(f));
            }
        }
    }
    bail!("no memory cgroup for {path}")
}

/// Update (ctr has no `task update`), Stats, Pause and Resume on the running task.
fn resources(task: &TaskClient, id: &str) -> Result<()> {
    let rpc = |what: &str, e: ttrpc::Error| anyhow::anyhow!("{what}: {e:?}");
    let limit: u64 = 64 << 20;
    let res = json!({"memory": {"limit": limit}});
    task.update(
        ctx(10),
        &api::UpdateTaskRequest {
            id: id.to_string(),
            resources: Some(
                containerd_shim_protos::protobuf::well_known_types::any::Any {
                    type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
                        .into(),
                    value: serde_json::to_vec(&res)?,
                    ..Default::default()
                },
            )
            .into(),
            ..Default::default()
        },
    )
    .map_err(|e| rpc("Update", e))?;
    let file = memory_limit_file(id)?;
    let seen = fs::read_to_string(&file)?;
    ensure!(
        seen.trim() == limit.to_string(),
        "after Update, {} holds {seen:?}, not {limit}",
        file.display()
    );
    let stats = task
        .stats(
            ctx(10),
            &api::StatsRequest {
                id: id.to_string(),
                ..Default::default()
            },
        )
        .map_err(|e| rpc("Stats", e))?;
    let any = stats.stats.as_ref().context("Stats returned no metrics")?;
    use containerd_shim_protos::protobuf::Message;
    match any.type_url.rsplit('/').next().unwrap_or_default() {
        "io.containerd.cgroups.v1.Metrics" => {
            let m =
                containerd_shim_protos::cgroups::metrics::Metrics::parse_from_bytes(&any.value)?;
            ensure!(m.pids.current >= 1, "v1 metrics without pids: {m:?}");
            ensure!(
                m.memory.usage.limit == limit,
                "v1 metrics memory limit: {:?}",
                m.memory.usage
            );
        }
        "io.containerd.cgroups.v2.Metrics" => {
            let m =
                containerd_shim_protos::cgroups_v2::metrics::Metrics::parse_from_bytes(&any.value)?;
            ensure!(m.pids.current >= 1, "v2 metrics without pids: {m:?}");
            ensure!(
                m.memory.usage_limit == limit,
                "v2 metrics memory limit: {:?}",
                m.memory
            );
        }
        other => bail!("Stats: unexpected metrics type {other:?}"),
    }
    let status = |task: &TaskClient| -> Result<api::Status> {
        let s = task
            .state(
                ctx(10),
                &api::StateRequest {
                    id: id.to_string(),
                    ..Default::default()
                },
            )
            .map_err(|e| rpc("State", e))?;
        s.status
            .enum_value()
            .map_err(|v| anyhow!("unknown status {v}"))
    };
    task.pause(
        ctx(10),
        &api::PauseRequest {
            id: id.to_string(),
            ..Default::default()
        },
    )
    .map_err(|e| rpc("Pause", e))?;
    ensure!(status(task)? == api::Status::PAUSED, "State after Pause");
    task.resume(
        ctx(10),
        &api::ResumeRequest {
            id: id.to_string(),
            ..Default::default()
        },
    )
    .map_err(|e| rpc("Resume", e))?;
    ensure!(status(task)? == api::Status::RUNNING, "State after Resume");
    Ok(())
}

/// The shims this scenario runs against: runc's (validation) and the one under test.
pub fn shims(runrs: &Path) -> Vec<(&'static str, &'static str, PathBuf)> {
    vec![
        (
            "runc",
            RUNC,
            PathBuf::from("/usr/bin/containerd-shim-runc-v2"),
        ),
        ("runrs", RUNRS, runrs.to_path_buf()),
    ]
}

/// The counter the restore-from-path check's container writes (in its rootfs, which is
/// a directory of the bundle, so the host reads it directly).
fn read_counter(bundle: &Path) -> Option<u64> {
    fs::read_to_string(bundle.join("rootfs/tmp/n"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Issue 14 item 9, played as containerd does for a runtime not named
/// `io.containerd.runc.*` (so containerd neither stops the task nor translates the
/// restore path): Checkpoint with CheckpointOptions `exit` and `image_path` must stop the
/// task, and a new task whose create options name that image as `CriuImagePath`
/// (containerd's `WithRestoreImagePath`) must come back from it at Start, not fresh.
/// runrs only: containerd-shim-runc-v2 leaves CriuImagePath to containerd.
pub fn restore_from_path(bin: &Path, runtime: &str) -> Result<()> {
    let id = format!("runrs-e2e-restorepath-{}", std::process::id());
    let tmp = tempfile::Builder::new()
        .prefix("runrs-e2e-restorepath-")
        .tempdir()?;
    let bundle = tmp.path().join(&id);
    make_bundle(&bundle, &id)?;
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&fs::read(&cfg_path)?)?;
    cfg["process"]["args"] = json!([
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i > /tmp/n.new; mv /tmp/n.new /tmp/n; sleep 0.1; done"
    ]);
    cfg["root"]["readonly"] = json!(false);
    fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg)?)?;
    let rig = Rig::new(bin, tmp.path(), id, bundle)?;
    for p in [&rig.stdout, &rig.stderr] {
        mkfifo(p)?;
    }
    let _out_r = nonblocking_reader(&rig.stdout)?;
    let _err_r = nonblocking_reader(&rig.stderr)?;
    let log = rig.bundle.join("log");
    mkfifo(&log)?;
    let mut log_r = nonblocking_reader(&log)?;
    let image = tmp.path().join("image");
    checked(&rig, runtime, &mut log_r, || restore_drive(&rig, &image))
}

fn any_of(type_url: &str, m: &dyn containerd_shim_protos::protobuf::MessageDyn) -> Result<Any> {
    Ok(Any {
        type_url: type_url.into(),
        value: m.write_to_bytes_dyn()?,
        ..Default::default()
    })
}

fn restore_drive(rig: &Rig<'_>, image: &Path) -> Result<u32> {
    let id = rig.id.clone();
    let out = run_capture(rig.command("start"), None, CMD_TIMEOUT)?;
    ensure!(out.success(), "the shim's `start` failed: {out}");
    let address = format!("unix://{}", rig.socket.display());
    let task = TaskClient::new(
        Client::connect(&address).with_context(|| format!("connect to the shim at {address}"))?,
    );
    let rpc = |what: &str, e: ttrpc::Error| anyhow::anyhow!("{what}: {e:?}");
    let shim_pid = task
        .connect(
            ctx(10),
            &api::ConnectRequest {
                id: id.clone(),
                ..Default::default()
            },
        )
        .map_err(|e| rpc("Connect", e))?
        .shim_pid;
    let create = |options: Option<Any>| -> Result<u32> {
        let mut req = api::CreateTaskRequest {
            id: id.clone(),
            bundle: rig.bundle.to_string_lossy().into_owned(),
            stdout: rig.stdout.to_string_lossy().into_owned(),
            stderr: rig.stderr.to_string_lossy().into_owned(),
            ..Default::default()
        };
        if let Some(o) = options {
            req.options = containerd_shim_protos::protobuf::MessageField::some(o);
        }
        let created = task.create(ctx(30), &req).map_err(|e| rpc("Create", e))?;
        task.start(
            ctx(60),
            &api::StartRequest {
                id: id.clone(),
                ..Default::default()
            },
        )
        .map_err(|e| rpc("Start", e))?;
        Ok(created.pid)
    };
    let wait = || -> Result<u32> {
        Ok(task
            .wait(
                ctx(20),
                &api::WaitRequest {
                    id: id.clone(),
                    ..Default::default()
                },
            )
            .map_err(|e| rpc("Wait", e))?
            .exit_status)
    };
    let delete = || -> Result<()> {
        task.delete(
            ctx(30),
            &api::DeleteRequest {
                id: id.clone(),
                ..Default::default()
            },
        )
        .map_err(|e| rpc("Delete", e))?;
        Ok(())
    };

    create(None)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while read_counter(&rig.bundle).unwrap_or(0) < 10 {
        ensure!(
            std::time::Instant::now() < deadline,
            "the counter did not reach 10"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // CheckpointOptions as containerd's runc client options carry them: exit after the
    // dump, into image_path (not the request's path).
    let mut co = oci::CheckpointOptions::new();
    co.exit = true;
    co.image_path = image.to_string_lossy().into_owned();
    task.checkpoint(
        ctx(60),
        &api::CheckpointTaskRequest {
            id: id.clone(),
            path: rig
                .bundle
                .join("unused-checkpoint-path")
                .to_string_lossy()
                .into_owned(),
            options: containerd_shim_protos::protobuf::MessageField::some(any_of(
                "containerd.runc.v1.CheckpointOptions",
                &co,
            )?),
            ..Default::default()
        },
    )
    .map_err(|e| rpc("Checkpoint", e))?;
    ensure!(
        image.join("inventory.img").is_file(),
        "no criu image in {} after Checkpoint",
        image.display()
    );
    ensure!(
        !rig.bundle.join("unused-checkpoint-path").exists(),
        "the image went to the request's path, not image_path"
    );
    // `exit`: the task stops at the checkpoint.
    wait()?;
    let at_checkpoint = read_counter(&rig.bundle).unwrap_or(0);
    delete()?;

    // The same id again, restored from the image named in the create options.
    let mut o = oci::Options::new();
    o.criu_image_path = image.to_string_lossy().into_owned();
    create(Some(any_of("containerd.runc.v1.Options", &o)?))?;
    std::thread::sleep(Duration::from_millis(300));
    let first = read_counter(&rig.bundle).unwrap_or(0);
    ensure!(
        first >= at_checkpoint,
        "the task started fresh instead of restoring: counter {first} < {at_checkpoint} (at the checkpoint)"
    );
    task.kill(
        ctx(10),
        &api::KillRequest {
            id: id.clone(),
            signal: 9,
            ..Default::default()
        },
    )
    .map_err(|e| rpc("Kill", e))?;
    wait()?;
    delete()?;
    if let Err(e) = task.shutdown(
        ctx(10),
        &api::ShutdownRequest {
            id: id.clone(),
            ..Default::default()
        },
    ) {
        if !format!("{e:?}").to_lowercase().contains("closed") {
            bail!("Shutdown: {e:?}");
        }
    }
    Ok(shim_pid)
}
