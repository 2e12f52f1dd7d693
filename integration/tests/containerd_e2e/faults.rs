//! Faults through containerd (issue 17): kill -9 of a container's init, of an exec'd
//! process, of a shim serving a group of containers, of the shim during Create (a
//! createRuntime hook holds Create open), of containerd while tasks run (and of an init
//! while containerd is down); SIGSTOP/SIGCONT of the shim while its container runs and
//! exits. Each one ends with nothing of its containers left, and the runner checks that
//! nothing new is on the host (integration::leaks).

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use integration::cmd::{run_capture, CmdOutput};
use integration::containerd::ctr::CTR_TIMEOUT;
use integration::containerd::events::describe;
use integration::containerd::{host, IMAGE, NAMESPACE, RUNC};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::scenarios::{Ctx, GONE, TRAP_LOOP};

/// Sends `sig` to host process `pid`.
pub fn signal(pid: i64, sig: Signal) -> Result<()> {
    let raw = i32::try_from(pid).context("pid out of range")?;
    kill(Pid::from_raw(raw), sig).with_context(|| format!("kill -{sig} {pid}"))
}

/// A ctr command running in a thread; `join` returns its output.
pub struct Background(thread::JoinHandle<Result<CmdOutput>>);

impl Background {
    /// Starts `ctr args…` with stdin from /dev/null.
    pub fn ctr(c: &Ctx<'_>, args: &[&str]) -> Self {
        let cmd = c.cd.ctr.command(args);
        Self(thread::spawn(move || run_capture(cmd, None, CTR_TIMEOUT)))
    }

    /// Waits for the command (it has a deadline of its own).
    pub fn join(self) -> Result<CmdOutput> {
        self.0
            .join()
            .map_err(|_| anyhow::anyhow!("the ctr thread panicked"))?
    }
}

/// Polls `cond` every 20 ms until it holds, or fails with `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !cond() {
        ensure!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// `ctr run -d --runtime <rt> <extra…> busybox <id> sh -c TRAP_LOOP`, waited until the
/// shell has set its SIGTERM trap; returns the init's host pid.
pub fn run_trap(c: &Ctx<'_>, id: &str, extra: &[&str]) -> Result<i64> {
    let mut args = vec!["run", "-d", "--runtime", c.runtime];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[IMAGE, id, "sh", "-c", TRAP_LOOP]);
    c.cd.ctr.ok(args)?;
    let task =
        c.cd.ctr
            .task(id)?
            .with_context(|| format!("`ctr task ls` does not list {id}"))?;
    ensure!(
        task.status == "RUNNING" && task.pid > 0,
        "expected {id} RUNNING: {task:?}"
    );
    let ready = Path::new("/proc")
        .join(task.pid.to_string())
        .join("root/trap-ready");
    wait_for("the container's shell sets its trap", GONE, || {
        ready.exists()
    })?;
    Ok(task.pid)
}

/// SIGTERM, STOPPED, `task delete` reporting 143, `container rm`.
fn stop_and_remove(c: &Ctx<'_>, id: &str) -> Result<()> {
    let ctr = &c.cd.ctr;
    ctr.ok(["task", "kill", "-s", "SIGTERM", id])?;
    c.wait_status(id, "STOPPED", GONE)?;
    let del = ctr.ok(["task", "delete", id])?;
    ensure!(
        del.stderr.contains("exit code 143"),
        "`ctr task delete` should report exit code 143: {del}"
    );
    ctr.ok(["container", "rm", id])?;
    Ok(())
}

/// The parent pid of host process `pid`.
fn ppid(pid: i64) -> Result<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.split(' ').nth(1))
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("parse /proc/{pid}/stat: {stat}"))
}

/// kill -9 of the container's init: the task stops with 137, delete reports it, the
/// events say so, nothing is left.
pub fn init_kill9(c: &Ctx<'_>) -> Result<()> {
    let id = c.id("initkill9");
    let g = c.guard(&id);
    let pid = run_trap(c, &id, &[])?;
    signal(pid, Signal::SIGKILL)?;
    c.wait_status(&id, "STOPPED", GONE)?;
    let del = c.cd.ctr.ok(["task", "delete", &id])?;
    ensure!(
        del.stderr.contains("exit code 137"),
        "`ctr task delete` should report exit code 137 after kill -9 of the init: {del}"
    );
    c.cd.ctr.ok(["container", "rm", &id])?;
    c.assert_clean(&id)?;
    c.task_events(&id, pid, 137)?;
    g.disarm();
    Ok(())
}

/// kill -9 of an exec'd process: its `ctr task exec` ends with 137 and containerd
/// publishes its exit; the container runs on, takes another exec, and its `task ps` no
/// longer lists the killed process.
pub fn exec_kill9(c: &Ctx<'_>) -> Result<()> {
    let id = c.id("execkill9");
    let g = c.guard(&id);
    let ctr = &c.cd.ctr;
    let init = run_trap(c, &id, &[])?;
    let exec = Background::ctr(
        c,
        &["task", "exec", "--exec-id", "victim", &id, "sleep", "31.25"],
    );
    let mut victim = None;
    wait_for("the exec'd `sleep` appears in `ctr task ps`", GONE, || {
        victim = ctr.task_pids(&id).ok().and_then(|pids| {
            pids.into_iter()
                .find(|&p| p != init && host::cmdline(p as i32).join(" ") == "sleep 31.25")
        });
        victim.is_some()
    })?;
    let victim = victim.context("no victim")?;
    signal(victim, Signal::SIGKILL)?;
    let out = exec.join()?;
    ensure!(
        out.code() == 137,
        "`ctr task exec` of a process killed with SIGKILL should exit 137: {out}"
    );
    let ev = c.events.wait_task_event(&id, "/tasks/exit", GONE)?;
    ensure!(
        ev.iter().any(|e| e.topic == "/tasks/exit"
            && e.str("id") == "victim"
            && e.int("pid") == victim
            && e.int("exit_status") == 137),
        "no /tasks/exit for exec victim (pid {victim}, status 137):\n{}",
        describe(&ev)
    );

    let task = ctr.task(&id)?.context("the task is gone")?;
    ensure!(
        task.status == "RUNNING" && task.pid == init,
        "the container should run on with init {init}: {task:?}"
    );
    let after = ctr.ok([
        "task",
        "exec",
        "--exec-id",
        "after",
        &id,
        "echo",
        "still-here",
    ])?;
    ensure!(
        after.stdout == "still-here\n",
        "a new exec should work: {after}"
    );
    // `task ps` lists the init and its loop's short-lived `sleep 0.1`, never the victim.
    let pids = ctr.task_pids(&id)?;
    ensure!(
        pids.contains(&init) && !pids.contains(&victim),
        "`ctr task ps` should list the init {init} and not the killed {victim}: {pids:?}"
    );
    stop_and_remove(c, &id)?;
    c.assert_clean(&id)?;
    g.disarm();
    Ok(())
}

/// kill -9 of a shim that serves two containers (runc's grouping annotation, as CRI's
/// sandbox id does for a pod): containerd cleans up both.
pub fn shim_kill9_group(c: &Ctx<'_>) -> Result<()> {
    let a = c.id("groupa");
    let b = c.id("groupb");
    let group = format!("{a}-group");
    let ga = c.guard(&a);
    let gb = c.guard(&b);
    let ctr = &c.cd.ctr;
    let annotation = format!("io.containerd.runc.v2.group={group}");
    let extra = ["--null-io", "--annotation", &annotation];
    let pid_a = run_trap(c, &a, &extra)?;
    let pid_b = run_trap(c, &b, &extra)?;
    let shims = host::shim_pids(&a);
    ensure!(
        shims.len() == 1 && host::shim_pids(&b).is_empty(),
        "expected one shim (started for {a}) serving the group, found {shims:?} for {a} and {:?} for {b}",
        host::shim_pids(&b)
    );
    let shim = i64::from(shims[0]);
    for pid in [pid_a, pid_b] {
        ensure!(
            ppid(pid)? == shim,
            "init {pid} should be a child of the group's shim {shim}, its parent is {}",
            ppid(pid)?
        );
    }
    signal(shim, Signal::SIGKILL)?;

    let socket = host::shim_socket(&c.cd.address(), NAMESPACE, &group)?;
    for (id, pid) in [(&a, pid_a), (&b, pid_b)] {
        let target = c.target(id)?;
        let state_dir = target.state_root.join(id);
        let deadline = Instant::now() + GONE;
        loop {
            let listed = ctr.task(id)?;
            let alive = integration::proc::pid_alive(pid);
            let cgroup = integration::proc::cgroup_procs(&target.cgroups_path)?;
            let state = state_dir.exists();
            if listed.is_none() && !alive && cgroup.is_none() && !state {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "{GONE:?} after the group's shim was killed, {id}: `ctr task ls` row {listed:?}, \
                     init {pid} alive: {alive}, cgroup procs {cgroup:?}, state dir exists: {state}"
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        ctr.ok(["container", "rm", id])?;
        let ev = c.events.wait_task_event(id, "/tasks/exit", GONE)?;
        ensure!(
            ev.iter().any(|e| e.topic == "/tasks/exit"
                && e.int("pid") == pid
                && e.int("exit_status") == 137),
            "containerd should publish /tasks/exit with pid {pid} and status 137 for {id}:\n{}",
            describe(&ev)
        );
    }
    // As in shim-kill9: a SIGKILLed shim cannot remove its socket; runc's shim (run
    // first on this containerd) sets what is expected.
    if socket.exists() {
        let runc_left = c.reference.kill9_socket_left.get();
        if c.runtime != RUNC && runc_left == Some(false) {
            bail!(
                "the killed group shim's socket {} is left behind; with runc's shim it is removed",
                socket.display()
            );
        }
        let _ = std::fs::remove_file(&socket);
    }
    for id in [&a, &b] {
        let mut t = c.target(id)?;
        t.socket = socket.clone();
        t.assert_clean(GONE)?;
    }
    ga.disarm();
    gb.disarm();
    Ok(())
}

/// SIGSTOP of the shim while its container runs, for long enough that the container
/// exits meanwhile, then SIGCONT: ctr still gets the output and the exit code, and
/// nothing is left.
pub fn shim_stop_cont(c: &Ctx<'_>) -> Result<()> {
    let id = c.id("stopcont");
    let g = c.guard(&id);
    let run = Background::ctr(
        c,
        &[
            "run",
            "--rm",
            "--runtime",
            c.runtime,
            IMAGE,
            &id,
            "sh",
            "-c",
            "sleep 1; echo done; exit 5",
        ],
    );
    let mut shims = Vec::new();
    wait_for("the shim of the running task", GONE, || {
        shims = host::shim_pids(&id);
        !shims.is_empty()
            && c.cd
                .ctr
                .task(&id)
                .ok()
                .flatten()
                .is_some_and(|t| t.status == "RUNNING")
    })?;
    ensure!(shims.len() == 1, "expected one shim for {id}: {shims:?}");
    let shim = i64::from(shims[0]);
    signal(shim, Signal::SIGSTOP)?;
    thread::sleep(Duration::from_secs(2));
    signal(shim, Signal::SIGCONT)?;
    let out = run.join()?;
    ensure!(
        out.code() == 5 && out.stdout == "done\n",
        "after SIGSTOP/SIGCONT of the shim, ctr should print \"done\" and exit 5: {out}"
    );
    c.assert_clean(&id)?;
    g.disarm();
    Ok(())
}

/// kill -9 of containerd while two tasks run; one init is killed while containerd is
/// down. The restarted containerd still manages both: the live one takes an exec,
/// pause/resume, SIGTERM (143) and delete; the dead one is STOPPED and its delete
/// reports 137 (containerd 1.6), or containerd cleaned it up while loading (1.7, 2.x).
pub fn containerd_restart(c: &Ctx<'_>) -> Result<()> {
    let a = c.id("restarta");
    let b = c.id("restartb");
    let ga = c.guard(&a);
    let gb = c.guard(&b);
    let ctr = &c.cd.ctr;
    let pid_a = run_trap(c, &a, &[])?;
    // No fifos for the one that dies: on 1.7 and 2.x containerd removes its task, and
    // only a ctr that deletes the task removes the task's fifo dir.
    let pid_b = run_trap(c, &b, &["--null-io"])?;

    c.cd.kill9()?;
    signal(pid_b, Signal::SIGKILL)?;
    wait_for(
        "the init killed while containerd is down exits",
        GONE,
        || !integration::proc::pid_alive(pid_b),
    )?;
    c.cd.restart()?;
    c.events.reconnect()?;

    // containerd 1.6 lists the dead task STOPPED; 1.7 and 2.x take a shim whose
    // `Pids` is empty for one that never ran a task (containerd#6860) and clean it up
    // while loading. Expect what runc's shim (run first) got on this containerd.
    let b_row = ctr.task(&b)?;
    let b_listed = b_row.is_some();
    if c.runtime == RUNC {
        c.reference.restart_dead_listed.set(Some(b_listed));
    } else if let Some(want) = c.reference.restart_dead_listed.get() {
        ensure!(
            b_listed == want,
            "after the restart, the task whose init died while containerd was down is {}listed \
             ({b_row:?}); with runc's shim it is {}listed",
            if b_listed { "" } else { "not " },
            if want { "" } else { "not " },
        );
    }
    c.wait_status(&a, "RUNNING", GONE)?;
    let task = ctr.task(&a)?.context("task a listed")?;
    ensure!(
        task.pid == pid_a,
        "{a} has a new pid after the restart: {task:?}"
    );

    let out = ctr.ok([
        "task",
        "exec",
        "--exec-id",
        "after",
        &a,
        "echo",
        "reconnected",
    ])?;
    ensure!(
        out.stdout == "reconnected\n",
        "exec after the restart: {out}"
    );
    ctr.ok(["task", "pause", &a])?;
    c.wait_status(&a, "PAUSED", GONE)?;
    ctr.ok(["task", "resume", &a])?;
    c.wait_status(&a, "RUNNING", GONE)?;
    stop_and_remove(c, &a)?;

    if b_listed {
        c.wait_status(&b, "STOPPED", GONE)?;
        let del = ctr.ok(["task", "delete", &b])?;
        ensure!(
            del.stderr.contains("exit code 137"),
            "the init killed while containerd was down: `ctr task delete` should report 137: {del}"
        );
    }
    ctr.ok(["container", "rm", &b])?;
    c.assert_clean(&a)?;
    c.assert_clean(&b)?;
    ga.disarm();
    gb.disarm();
    Ok(())
}
