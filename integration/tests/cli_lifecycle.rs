//! kill, delete and start in every state (created, running, stopped), signal spellings,
//! `kill --all`, and the verbs on a container that does not exist.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use integration::config::{remove_namespace, set_args, sh};
use integration::{proc, Bundle, Runtime};

const T: Duration = Duration::from_secs(10);

/// A shell that reports SIGTERM (and exits 3) and otherwise runs until killed.
const TRAP_TERM: &str =
    "trap 'echo got-TERM; exit 3' TERM; echo ready; while true; do sleep 0.05; done";

/// Waits until the container's stdout (detached create) contains `needle`.
fn wait_stdout(b: &Bundle, needle: &str) -> Result<String> {
    let deadline = Instant::now() + T;
    loop {
        let out = b.stdout()?;
        if out.contains(needle) {
            return Ok(out);
        }
        if Instant::now() > deadline {
            bail!(
                "container {} did not print {needle:?}; stdout: {out:?}, stderr: {:?}",
                b.id(),
                b.stderr()?
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until cgroup.procs of the container has exactly `n` pids.
fn wait_procs(b: &Bundle, n: usize) -> Result<Vec<i32>> {
    let deadline = Instant::now() + T;
    loop {
        let procs = proc::cgroup_procs(b.cgroups_path())?.context("container cgroup is gone")?;
        if procs.len() == n {
            return Ok(procs);
        }
        if Instant::now() > deadline {
            bail!(
                "cgroup {} has {procs:?}, want {n} processes",
                b.cgroups_path()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_created_then_delete() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("lc-killcreated", |c| set_args(c, &["sleep", "30"]))?;
    rt.create(&b)?.ok()?;
    let pid = rt.state(b.id())?.pid;
    rt.kill(b.id(), "KILL")?.ok()?;
    let st = rt.wait_for_status(b.id(), "stopped", T)?;
    ensure!(st.pid == 0, "stopped pid: {}", st.raw);
    ensure!(
        !proc::pid_alive(pid),
        "init {pid} still alive after kill KILL"
    );
    // The process never ran: nothing was printed.
    ensure!(b.stdout()?.is_empty());
    rt.delete(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}

#[test]
fn delete_created_without_force() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("lc-delcreated", |c| sh(c, "echo must-not-run"))?;
    rt.create(&b)?.ok()?;
    let pid = rt.state(b.id())?.pid;
    ensure!(proc::pid_alive(pid));
    // runc deletes a created (never started) container without --force, killing its init.
    rt.delete(b.id())?.ok()?;
    ensure!(rt.list()?.is_empty());
    rt.assert_no_leftovers(&b)?;
    ensure!(!proc::pid_alive(pid), "init {pid} survived delete");
    ensure!(
        !b.stdout()?.contains("must-not-run"),
        "the process ran although never started"
    );
    Ok(())
}

#[test]
fn delete_running_needs_force() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("lc-delrunning", |c| set_args(c, &["sleep", "30"]))?;
    let pid = rt.create_and_start(&b)?.pid;
    let out = rt.delete(b.id())?.fails()?;
    out.stderr_mentions("running")?;
    ensure!(
        rt.state(b.id())?.status == "running",
        "failed delete changed the state"
    );
    ensure!(proc::pid_alive(pid));
    rt.delete_force(b.id())?.ok()?;
    ensure!(rt.list()?.is_empty());
    rt.assert_no_leftovers(&b)?;
    ensure!(!proc::pid_alive(pid), "init {pid} survived delete --force");
    Ok(())
}

#[test]
fn start_twice_and_start_stopped_fail() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("lc-start", |c| sh(c, TRAP_TERM))?;
    rt.create_and_start(&b)?;
    rt.start(b.id())?.fails()?.stderr_mentions("running")?;
    // pid 1 ignores SIGTERM until the trap is installed.
    wait_stdout(&b, "ready")?;
    rt.kill(b.id(), "TERM")?.ok()?;
    rt.wait_for_status(b.id(), "stopped", T)?;
    rt.start(b.id())?.fails()?.stderr_mentions("stopped")?;
    rt.delete(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}

#[test]
fn kill_and_delete_stopped() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("lc-stopped", |c| sh(c, "echo done"))?;
    rt.create_and_start(&b)?;
    let st = rt.wait_for_status(b.id(), "stopped", T)?;
    ensure!(st.pid == 0);
    ensure!(b.stdout()? == "done\n");
    let out = rt.kill(b.id(), "KILL")?.fails()?;
    out.stderr_mentions("not running")?;
    ensure!(rt.state(b.id())?.status == "stopped");
    rt.delete(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}

#[test]
fn kill_signal_spellings() -> Result<()> {
    let rt = Runtime::new()?;
    // (argument, is SIGTERM); None = no signal argument (the default is SIGTERM).
    let cases: [(Option<&str>, bool); 8] = [
        (Some("TERM"), true),
        (Some("SIGTERM"), true),
        (Some("15"), true),
        (Some("KILL"), false),
        (Some("SIGKILL"), false),
        (Some("9"), false),
        (Some("sigterm"), true),
        (None, true),
    ];
    for (sig, term) in cases {
        let b = Bundle::with_config("lc-sig", |c| sh(c, TRAP_TERM))?;
        rt.create_and_start(&b)?;
        wait_stdout(&b, "ready")?;
        let out = match sig {
            Some(s) => rt.kill(b.id(), s)?,
            None => rt.cli(["kill", b.id()])?,
        };
        out.ok().with_context(|| format!("kill {sig:?}"))?;
        rt.wait_for_status(b.id(), "stopped", T)
            .with_context(|| format!("kill {sig:?}"))?;
        let printed = b.stdout()?.contains("got-TERM");
        ensure!(
            printed == term,
            "kill {sig:?}: trap ran: {printed}, want {term}"
        );
        rt.delete(b.id())?.ok()?;
        rt.assert_no_leftovers(&b)?;
    }
    Ok(())
}

#[test]
fn kill_unknown_signal_fails() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("lc-badsig", |c| set_args(c, &["sleep", "30"]))?;
    rt.create_and_start(&b)?;
    for sig in ["SIGNOPE", "99"] {
        rt.kill(b.id(), sig)?.fails()?;
        ensure!(
            rt.state(b.id())?.status == "running",
            "kill {sig} changed the state"
        );
    }
    rt.kill(b.id(), "SIGNOPE")?.stderr_mentions("signal")?;
    rt.delete_force(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}

#[test]
fn kill_all_reaches_every_process() -> Result<()> {
    let rt = Runtime::new()?;
    // No pid namespace: killing init alone would leave its children running, so only
    // --all can stop them all.
    let b = Bundle::with_config("lc-killall", |c| {
        remove_namespace(c, "pid");
        sh(c, "sleep 30 & sleep 30 & exec sleep 31");
    })?;
    rt.create_and_start(&b)?;
    let procs = wait_procs(&b, 3)?;
    rt.cli(["kill", "--all", b.id(), "KILL"])?.ok()?;
    rt.wait_for_status(b.id(), "stopped", T)?;
    wait_procs(&b, 0)?;
    for p in procs {
        ensure!(
            !proc::pid_alive(i64::from(p)),
            "process {p} survived kill --all"
        );
    }
    rt.delete(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}

#[test]
fn kill_init_only_then_delete_cleans_the_cgroup() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("lc-killinit", |c| {
        remove_namespace(c, "pid");
        sh(c, "sleep 30 & sleep 30 & exec sleep 31");
    })?;
    let init = rt.create_and_start(&b)?.pid;
    let procs = wait_procs(&b, 3)?;
    rt.kill(b.id(), "KILL")?.ok()?;
    rt.wait_for_status(b.id(), "stopped", T)?;
    // Only init got the signal; its children are still in the cgroup.
    let left = wait_procs(&b, 2)?;
    ensure!(
        !left.contains(&(init as i32)),
        "init still listed: {left:?}"
    );
    // delete of a stopped container without its own pid namespace kills what is left.
    rt.delete(b.id())?.ok()?;
    for p in procs {
        ensure!(
            !proc::pid_alive(i64::from(p)),
            "process {p} survived delete"
        );
    }
    rt.assert_no_leftovers(&b)
}

#[test]
fn verbs_on_a_missing_container() -> Result<()> {
    let rt = Runtime::new()?;
    let id = "runrs-it-does-not-exist";
    for args in [
        vec!["state", id],
        vec!["start", id],
        vec!["kill", id, "KILL"],
        vec!["delete", id],
    ] {
        let out = rt.cli(&args)?.fails()?;
        out.stderr_mentions("does not exist")?;
    }
    // delete --force of a container that does not exist succeeds (runc: silently).
    rt.delete_force(id)?.ok()?;
    Ok(())
}

#[test]
fn hooks_get_only_their_stdio() -> Result<()> {
    // A hook is a host program: like runc (Go's exec passes only the descriptors it is
    // given), the runtime hands it the state on stdin, stdout and stderr, and none of
    // its own descriptors — here one its caller leaked to it without close-on-exec.
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;

    let rt = Runtime::new()?;
    let b = Bundle::new("hook-fds")?;
    let listing = b.host_dir("hook")?.join("fds");
    // `exec … >`: the shell keeps no descriptor of its own (a plain redirect would save
    // stdout on fd 10); ls then lists its own, 3 being the directory it reads.
    let script = format!("exec ls /proc/self/fd > {}", listing.display());
    b.configure(|c| {
        c["hooks"]["createRuntime"] =
            serde_json::json!([{ "path": "/bin/sh", "args": ["sh", "-c", script] }]);
    })?;
    let stray = std::fs::File::open("/dev/null")?;
    let raw = stray.as_raw_fd();
    let mut cmd = rt.command(["create", "--bundle"]);
    cmd.arg(b.path()).arg(b.id());
    // SAFETY: dup2 is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 42) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (out, err) = (b.path().join("create.out"), b.path().join("create.err"));
    integration::cmd::run_to_files(cmd, &out, &err, integration::cmd::CMD_TIMEOUT)?.ok()?;
    let mut fds: Vec<String> = std::fs::read_to_string(&listing)
        .with_context(|| format!("the hook did not run ({})", listing.display()))?
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    fds.sort();
    rt.delete_force(b.id())?.ok()?;
    ensure!(
        fds == ["0", "1", "2", "3"],
        "the hook should have only stdin, stdout and stderr open (and ls its directory, 3), \
         it had {fds:?}"
    );
    rt.assert_no_leftovers(&b)
}
