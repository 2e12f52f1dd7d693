//! `checkpoint` and `restore` with CRIU: a counter container is checkpointed (it stops
//! and is deleted, like runc) and restored under a new id, twice in a row, resuming from
//! the value it had (an append-only log of the counter stays consecutive) with its
//! stdout on the new pipes; `--leave-running` keeps the original going; an established
//! loopback TCP connection needs `--tcp-established` and survives the restore; failure
//! paths (criu missing, image dir not writable, pre-dump without soft-dirty tracking,
//! lazy pages without a page server, a corrupt image, a directory that is no image)
//! leave a running container as it was and nothing of a failed restore behind.
//!
//! criu comes from `$RUNRS_E2E_DIR/install-criu.sh` (Debian's 3.17 cannot dump on this
//! kernel); the tests skip, with the reason printed, only when it cannot be installed.
//! The containers' stdio are pipes, as containerd's shim gives them: a file outside the
//! container cannot be checkpointed.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use integration::config::{add_mount, sh};
use integration::leaks::{assert_gone, Target};
use integration::{proc, rootfs, Bundle, Runtime};
use serde_json::json;

const T: Duration = Duration::from_secs(20);

/// runrs names the cause of a failed checkpoint or restore (criu's log errors, the
/// missing feature); runc 1.1 often says only "criu failed: type NOTIFY". Checks of
/// that wording apply to runrs alone, the failure itself to both.
fn explains(out: &str, keyword: &str) -> Result<()> {
    if integration::runtime_name() == "runrs" {
        ensure!(
            out.to_lowercase().contains(&keyword.to_lowercase()),
            "the error does not mention {keyword:?}: {out}"
        );
    }
    Ok(())
}

/// Installs criu once per test process (the script is idempotent and serialised
/// across processes); false, with the reason printed, if that fails.
fn criu_ready() -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let r = READY.get_or_init(|| {
        let script = rootfs::e2e_dir().join("install-criu.sh");
        if !script.exists() {
            // No installer here (RUNRS_E2E_DIR elsewhere): a criu that works will do.
            let works = Command::new("criu")
                .arg("check")
                .output()
                .is_ok_and(|o| o.status.success());
            return if works {
                Ok(())
            } else {
                Err(format!(
                    "{} not found (set RUNRS_E2E_DIR) and no working criu in PATH",
                    script.display()
                ))
            };
        }
        std::fs::create_dir_all(rootfs::cache_dir()).map_err(|e| e.to_string())?;
        let out = Command::new("flock")
            .arg(rootfs::cache_dir().join("criu.lock"))
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run {}: {e}", script.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "criu cannot be installed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .chain(String::from_utf8_lossy(&out.stderr).lines())
                    .last()
                    .unwrap_or_default()
            ))
        }
    });
    match r {
        Ok(()) => true,
        Err(e) => {
            integration::skip(e);
            false
        }
    }
}

/// Pipes for a container's stdio: we keep stdin's write end and drain stdout+stderr.
struct Io {
    child: Option<[OwnedFd; 3]>,
    _stdin: OwnedFd,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Io {
    fn new() -> Result<Self> {
        let (in_r, in_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let err_w = out_w.try_clone()?;
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::File::from(out_r);
            let mut buf = [0u8; 4096];
            while let Ok(n) = f.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
        });
        Ok(Io {
            child: Some([in_r, out_w, err_w]),
            _stdin: in_w,
            out,
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// The numbers after "tick " in what the container printed here.
    fn ticks(&self) -> Vec<u64> {
        self.text()
            .lines()
            .filter_map(|l| l.strip_prefix("tick ")?.trim().parse().ok())
            .collect()
    }
}

/// Runs a verb that leaves a container behind (`run -d`, `restore -d`) with `io` as its
/// (and the container's) stdio; fails with what it printed.
fn detached(rt: &Runtime, args: &[&str], io: &mut Io) -> Result<()> {
    let [i, o, e] = io.child.take().context("Io used twice")?;
    let mut cmd = rt.command(args);
    cmd.stdin(Stdio::from(i))
        .stdout(Stdio::from(o))
        .stderr(Stdio::from(e));
    let mut child = cmd.spawn().with_context(|| format!("spawn {args:?}"))?;
    drop(cmd);
    let deadline = Instant::now() + T;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("{args:?} did not finish in {T:?}: {}", io.text());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    ensure!(
        status.success(),
        "{args:?} failed ({status}): {}",
        io.text()
    );
    Ok(())
}

/// Polls `f` until it returns Some, for up to T.
fn wait_for<V>(what: &str, mut f: impl FnMut() -> Result<Option<V>>) -> Result<V> {
    let deadline = Instant::now() + T;
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The complete lines of an append-only log of numbers.
fn numbers(path: &Path) -> Result<Vec<u64>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .lines()
        .map(|l| l.trim().parse().with_context(|| format!("line {l:?}")))
        .collect()
}

/// Fails unless `v` is 1, 2, 3, … (a restart from 1 or a lost or repeated value shows).
fn ensure_consecutive(v: &[u64], what: &str) -> Result<()> {
    for (i, n) in v.iter().enumerate() {
        ensure!(
            *n == i as u64 + 1,
            "{what} is not consecutive at line {}: {v:?}",
            i + 1
        );
    }
    Ok(())
}

/// Waits until the log at `path` has a value of at least `min`; returns the log.
fn wait_log(path: &Path, min: u64) -> Result<Vec<u64>> {
    wait_for(&format!("{} to reach {min}", path.display()), || {
        let v = numbers(path)?;
        Ok(v.last().is_some_and(|l| *l >= min).then_some(v))
    })
}

/// A container counting in /data/log (a bind-mounted host dir) and on stdout.
fn counter(name: &str) -> Result<(Bundle, PathBuf)> {
    let b = Bundle::new(name)?;
    let data = b.host_dir("data")?;
    let src = data.to_string_lossy().into_owned();
    b.configure(|c| {
        sh(
            c,
            "i=0; while :; do i=$((i+1)); echo $i >> /data/log; echo tick $i; sleep 0.1; done",
        );
        add_mount(c, "/data", "bind", &src, &["rbind", "rw"]);
    })?;
    Ok((b, data.join("log")))
}

fn target<'a>(rt: &'a Runtime, b: &'a Bundle, id: &'a str) -> Target<'a> {
    Target {
        root: rt.root(),
        id,
        bundle: b.path(),
        cgroups_path: b.cgroups_path(),
    }
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Checkpoints `id` into `img` (the container stops and is deleted), checking that.
fn checkpoint_stops(rt: &Runtime, b: &Bundle, id: &str, img: &Path) -> Result<()> {
    let pid = rt.state(id)?.pid;
    rt.cli(["checkpoint", "--image-path", &path_arg(img), id])?
        .ok()?;
    ensure!(
        !proc::pid_alive(pid),
        "init {pid} still runs after checkpoint"
    );
    ensure!(
        rt.list()?.iter().all(|s| s.id != id),
        "checkpointed container {id} still listed: {:?}",
        rt.list()?
    );
    assert_gone(&target(rt, b, id))?;
    for f in ["inventory.img", "descriptors.json"] {
        ensure!(img.join(f).exists(), "{f} missing in {}", img.display());
    }
    Ok(())
}

/// Restores `img` as `id` with fresh pipes and waits until the counter went on from
/// `last` (the value at checkpoint) on the log and on the new stdout.
fn restore_resumes(rt: &Runtime, b: &Bundle, log: &Path, img: &Path, id: &str) -> Result<Io> {
    let last = *numbers(log)?.last().context("empty log")?;
    let mut io = Io::new()?;
    let bundle = path_arg(b.path());
    detached(
        rt,
        &[
            "restore",
            "-d",
            "--image-path",
            &path_arg(img),
            "--bundle",
            &bundle,
            id,
        ],
        &mut io,
    )?;
    let st = rt.state(id)?;
    ensure!(st.status == "running", "restored state: {}", st.raw);
    ensure!(
        proc::pid_alive(st.pid),
        "restored init {} is not alive",
        st.pid
    );
    let v = wait_log(log, last + 3)?;
    ensure_consecutive(&v, "the counter log after restore")?;
    // The restored shell writes to the new pipe, and goes on from where it was.
    let ticks = wait_for("ticks on the new stdout", || {
        let t = io.ticks();
        Ok((!t.is_empty()).then_some(t))
    })?;
    ensure!(
        ticks.iter().all(|t| *t > last),
        "the restored counter printed {ticks:?}, want values after {last}"
    );
    Ok(io)
}

#[test]
fn checkpoint_stops_and_restore_resumes_twice() -> Result<()> {
    if !criu_ready() {
        return Ok(());
    }
    let rt = Runtime::new()?;
    let (b, log) = counter("criu-counter")?;
    let mut io = Io::new()?;
    let bundle = path_arg(b.path());
    detached(&rt, &["run", "-d", "--bundle", &bundle, b.id()], &mut io)?;
    wait_log(&log, 5)?;

    let img1 = b.path().join("img1");
    checkpoint_stops(&rt, &b, b.id(), &img1)?;
    let id2 = format!("{}-r1", b.id());
    let _io2 = restore_resumes(&rt, &b, &log, &img1, &id2)?;

    // The restored container checkpoints and restores again.
    let img2 = b.path().join("img2");
    checkpoint_stops(&rt, &b, &id2, &img2)?;
    let id3 = format!("{}-r2", b.id());
    let _io3 = restore_resumes(&rt, &b, &log, &img2, &id3)?;

    rt.delete_force(&id3)?.ok()?;
    for id in [b.id(), &id2, &id3] {
        assert_gone(&target(&rt, &b, id))?;
    }
    Ok(())
}

#[test]
fn leave_running_keeps_the_original() -> Result<()> {
    if !criu_ready() {
        return Ok(());
    }
    let rt = Runtime::new()?;
    let (b, log) = counter("criu-leave")?;
    let mut io = Io::new()?;
    let bundle = path_arg(b.path());
    detached(&rt, &["run", "-d", "--bundle", &bundle, b.id()], &mut io)?;
    wait_log(&log, 3)?;
    let pid = rt.state(b.id())?.pid;
    let img = b.path().join("img");
    rt.cli([
        "checkpoint",
        "--leave-running",
        "--image-path",
        &path_arg(&img),
        b.id(),
    ])?
    .ok()?;
    ensure!(img.join("inventory.img").exists(), "no image written");
    let st = rt.state(b.id())?;
    ensure!(
        st.status == "running" && st.pid == pid,
        "after --leave-running: {}",
        st.raw
    );
    let last = *numbers(&log)?.last().context("empty log")?;
    let v = wait_log(&log, last + 3)?;
    ensure_consecutive(&v, "the counter log")?;
    rt.delete_force(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}

/// Issue 16: the `org.criu.config` annotation names a CRIU configuration file that
/// checkpoint and restore hand to criu (runc 1.1 does; runrs ignored it). Its
/// `log-file` overrides the runtime's log name, which shows in the image directory.
#[test]
fn the_criu_config_annotation_reaches_criu() -> Result<()> {
    if !criu_ready() {
        return Ok(());
    }
    let rt = Runtime::new()?;
    let (b, log) = counter("criu-conf")?;
    let conf = b.path().join("criu.conf");
    std::fs::write(&conf, "log-file custom-dump.log\n")?;
    let conf_arg = path_arg(&conf);
    b.configure(|c| c["annotations"] = json!({ "org.criu.config": conf_arg }))?;
    let mut io = Io::new()?;
    let bundle = path_arg(b.path());
    detached(&rt, &["run", "-d", "--bundle", &bundle, b.id()], &mut io)?;
    wait_log(&log, 3)?;
    let img = b.path().join("img");
    checkpoint_stops(&rt, &b, b.id(), &img)?;
    ensure!(
        img.join("custom-dump.log").exists(),
        "criu did not log to the configured file: {:?}",
        std::fs::read_dir(&img)?
            .flatten()
            .map(|e| e.file_name())
            .collect::<Vec<_>>()
    );
    std::fs::write(&conf, "log-file custom-restore.log\n")?;
    let id2 = format!("{}-r", b.id());
    let _io2 = restore_resumes(&rt, &b, &log, &img, &id2)?;
    ensure!(
        img.join("custom-restore.log").exists(),
        "criu's restore did not log to the configured file"
    );
    rt.delete_force(&id2)?.ok()?;
    for id in [b.id(), &id2] {
        assert_gone(&target(&rt, &b, id))?;
    }
    Ok(())
}

#[test]
fn established_tcp_needs_tcp_established() -> Result<()> {
    if !criu_ready() {
        return Ok(());
    }
    let rt = Runtime::new()?;
    let b = Bundle::new("criu-tcp")?;
    let data = b.host_dir("data")?;
    let src = path_arg(&data);
    b.configure(|c| {
        // A server and a client on the container's own loopback; the server logs what
        // it receives (its stdin must not hit EOF, or busybox nc quits). lo is brought
        // up by the test (CAP_NET_ADMIN).
        sh(
            c,
            "busybox ip link set lo up; \
             sleep 1000000 | busybox nc -l -p 5000 > /data/recv & \
             while :; do (i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done) | busybox nc 127.0.0.1 5000; sleep 0.1; done",
        );
        add_mount(c, "/data", "bind", &src, &["rbind", "rw"]);
        for set in ["bounding", "effective", "permitted"] {
            if let Some(a) = c["process"]["capabilities"][set].as_array_mut() {
                a.push(json!("CAP_NET_ADMIN"));
            }
        }
    })?;
    let recv = data.join("recv");
    let mut io = Io::new()?;
    let bundle = path_arg(b.path());
    detached(&rt, &["run", "-d", "--bundle", &bundle, b.id()], &mut io)?;
    wait_log(&recv, 3)?;

    let img = b.path().join("img");
    let out = rt
        .cli(["checkpoint", "--image-path", &path_arg(&img), b.id()])?
        .fails()?;
    explains(&out.stderr, "tcp-established")?;
    // The failed checkpoint left the container and its connection alone.
    ensure!(rt.state(b.id())?.status == "running");
    let last = *numbers(&recv)?.last().context("empty")?;
    wait_log(&recv, last + 2)?;

    let out = rt.cli([
        "checkpoint",
        "--tcp-established",
        "--image-path",
        &path_arg(&img),
        b.id(),
    ])?;
    if !out.success() && out.stderr.contains("Can't get 1:16 opt") {
        // CRIU before 4.2 asks inet sockets for SO_PASSCRED, which Linux 6.16+ refuses
        // (checkpoint-restore/criu#2718): no criu of this machine can dump them.
        integration::skip(
            "the installed criu cannot dump TCP sockets on this kernel (SO_PASSCRED on inet sockets, fixed in CRIU 4.2)",
        );
        ensure!(rt.state(b.id())?.status == "running");
        rt.delete_force(b.id())?.ok()?;
        return rt.assert_no_leftovers(&b);
    }
    out.ok()?;
    ensure!(rt.list()?.is_empty(), "checkpointed container still listed");
    let last = *numbers(&recv)?.last().context("empty")?;
    let id2 = format!("{}-r", b.id());
    let mut io2 = Io::new()?;
    detached(
        &rt,
        &[
            "restore",
            "-d",
            "--tcp-established",
            "--image-path",
            &path_arg(&img),
            "--bundle",
            &bundle,
            &id2,
        ],
        &mut io2,
    )?;
    // The same connection goes on: the server keeps logging consecutive numbers.
    let v = wait_log(&recv, last + 3)?;
    ensure_consecutive(&v, "the data received over the restored connection")?;
    rt.delete_force(&id2)?.ok()?;
    assert_gone(&target(&rt, &b, &id2))?;
    rt.assert_no_leftovers(&b)
}

/// A read-only tmpfs, unmounted on drop.
struct ReadOnlyDir(PathBuf);

impl ReadOnlyDir {
    fn new(p: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&p)?;
        nix::mount::mount(
            Some("tmpfs"),
            &p,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .with_context(|| format!("mount a read-only tmpfs on {}", p.display()))?;
        Ok(ReadOnlyDir(p))
    }
}

impl Drop for ReadOnlyDir {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn soft_dirty_supported() -> bool {
    Command::new("criu")
        .args(["check", "--feature", "mem_dirty_track"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn checkpoint_failures_leave_the_container_running() -> Result<()> {
    if !criu_ready() {
        return Ok(());
    }
    let rt = Runtime::new()?;
    let (b, log) = counter("criu-ckfail")?;
    let mut io = Io::new()?;
    let bundle = path_arg(b.path());
    detached(&rt, &["run", "-d", "--bundle", &bundle, b.id()], &mut io)?;
    wait_log(&log, 2)?;
    let pid = rt.state(b.id())?.pid;
    let img = path_arg(&b.path().join("img"));

    let out = rt
        .cli([
            "--criu",
            "/nonexistent/criu",
            "checkpoint",
            "--image-path",
            &img,
            b.id(),
        ])?
        .fails()?;
    out.stderr_mentions("/nonexistent/criu")?;
    explains(&out.stderr, "criu not found")?;
    let out = rt
        .cli([
            "--criu",
            "runrs-no-such-criu",
            "checkpoint",
            "--image-path",
            &img,
            b.id(),
        ])?
        .fails()?;
    out.stderr_mentions("runrs-no-such-criu")?;

    let ro = ReadOnlyDir::new(b.path().join("ro"))?;
    let out = rt
        .cli(["checkpoint", "--image-path", &path_arg(&ro.0), b.id()])?
        .fails()?;
    out.stderr_mentions("read-only")?;
    explains(&out.stderr, "not writable")?;
    drop(ro);

    let out = rt.cli(["checkpoint", "--pre-dump", "--image-path", &img, b.id()])?;
    if soft_dirty_supported() {
        out.ok()?;
    } else {
        explains(&out.fails()?.stderr, "soft-dirty")?;
    }
    // runc 1.1 starts a lazy dump anyway and waits for a page client forever.
    if integration::runtime_name() == "runrs" {
        let out = rt
            .cli(["checkpoint", "--lazy-pages", "--image-path", &img, b.id()])?
            .fails()?;
        explains(&out.stderr, "page-server")?;
    }

    // Nothing of that touched the container.
    let st = rt.state(b.id())?;
    ensure!(
        st.status == "running" && st.pid == pid,
        "after failed checkpoints: {}",
        st.raw
    );
    let last = *numbers(&log)?.last().context("empty log")?;
    ensure_consecutive(&wait_log(&log, last + 2)?, "the counter log")?;
    rt.delete_force(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}

#[test]
fn failed_restores_leave_nothing_behind() -> Result<()> {
    if !criu_ready() {
        return Ok(());
    }
    let rt = Runtime::new()?;
    let (b, log) = counter("criu-rsfail")?;
    let mut io = Io::new()?;
    let bundle = path_arg(b.path());
    detached(&rt, &["run", "-d", "--bundle", &bundle, b.id()], &mut io)?;
    wait_log(&log, 2)?;
    let img = b.path().join("img");
    checkpoint_stops(&rt, &b, b.id(), &img)?;
    let id2 = format!("{}-r", b.id());
    let restore = |img: &Path, globals: &[&str]| -> Result<String> {
        let mut args: Vec<String> = globals.iter().map(|s| s.to_string()).collect();
        args.extend(
            [
                "restore",
                "-d",
                "--image-path",
                &path_arg(img),
                "--bundle",
                &bundle,
                &id2,
            ]
            .map(String::from),
        );
        let mut io = Io::new()?;
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        match detached(&rt, &argv, &mut io) {
            Ok(()) => bail!("restore {args:?} succeeded"),
            Err(_) => {
                assert_gone(&target(&rt, &b, &id2))?;
                ensure!(rt.list()?.is_empty(), "listed after a failed restore");
                Ok(io.text())
            }
        }
    };

    let out = restore(&b.host_dir("not-an-image")?, &[])?;
    explains(&out, "not a checkpoint image")?;
    let out = restore(&img, &["--criu", "/nonexistent/criu"])?;
    ensure!(out.contains("/nonexistent/criu"), "{out}");
    explains(&out, "criu not found")?;

    // A corrupt image: every task's core image overwritten with garbage.
    let bad = b.path().join("img-corrupt");
    integration::cmd::host("cp", &["-a", &path_arg(&img), &path_arg(&bad)])?;
    let mut n = 0;
    for e in std::fs::read_dir(&bad)? {
        let p = e?.path();
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.starts_with("core-") && name.ends_with(".img") {
            std::fs::write(&p, b"\x01\x02\x03\x04 this is not a criu image")?;
            n += 1;
        }
    }
    ensure!(n > 0, "no core-*.img in {}", bad.display());
    let out = restore(&bad, &[])?;
    explains(&out, "criu RESTORE failed")?;

    // The intact image still restores after all that.
    let _io = restore_resumes(&rt, &b, &log, &img, &id2)?;
    rt.delete_force(&id2)?.ok()?;
    assert_gone(&target(&rt, &b, &id2))
}
