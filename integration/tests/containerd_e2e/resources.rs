//! Issue 4's containerd path: `ctr task metrics` shows memory, cpu and pids;
//! `ctr task pause` really stops a counter and `resume` restarts it (and `task ls`
//! shows PAUSED), SIGKILL stops a paused container and delete leaves no cgroup; a container that allocates past its memory limit is OOM-killed, exits
//! 137, and `ctr events` shows /tasks/oom before /tasks/exit.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use integration::containerd::{IMAGE, RUNC};

use crate::scenarios::Ctx;

const COUNTER: &str = "i=0; while :; do i=$((i+1)); echo $i > /counter; sleep 0.05; done";

fn counter(pid: i64) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/root/counter"))?;
    Ok(s.trim().parse().unwrap_or(0))
}

/// metrics and pause/resume on one running container.
pub fn metrics_pause(c: &Ctx<'_>) -> Result<()> {
    let id = c.id("pause");
    let ctr = &c.cd.ctr;
    ctr.ok([
        "run",
        "-d",
        "--runtime",
        c.runtime,
        IMAGE,
        &id,
        "sh",
        "-c",
        COUNTER,
    ])?;
    let r = (|| -> Result<()> {
        let pid = ctr.task(&id)?.context("task listed")?.pid;
        let deadline = Instant::now() + Duration::from_secs(10);
        while counter(pid).unwrap_or(0) < 2 {
            ensure!(Instant::now() < deadline, "the counter never started");
            thread::sleep(Duration::from_millis(20));
        }
        let m = ctr.ok(["task", "metrics", &id])?.stdout;
        for want in ["memory", "pids.current"] {
            ensure!(m.contains(want), "`ctr task metrics` lacks {want}: {m}");
        }
        ensure!(
            m.contains("cpuacct.usage") || m.contains("cpu.usage_usec"),
            "no cpu usage in metrics: {m}"
        );
        ctr.ok(["task", "pause", &id])?;
        let status = ctr.task(&id)?.context("task listed")?.status;
        ensure!(status == "PAUSED", "`task ls` after pause says {status}");
        let frozen = counter(pid)?;
        thread::sleep(Duration::from_millis(400));
        let later = counter(pid)?;
        ensure!(
            frozen == later,
            "the counter moved while paused: {frozen} -> {later}"
        );
        // Exec into a paused container is refused (runc too), with a reason for runrs.
        let out = ctr.run(
            ["task", "exec", "--exec-id", "in-paused", &id, "true"],
            None,
        )?;
        ensure!(
            !out.success(),
            "exec into a paused container succeeded: {out}"
        );
        ensure!(
            c.runtime == RUNC || out.stderr.contains("paused"),
            "the refusal should say the container is paused: {out}"
        );
        ctr.ok(["task", "resume", &id])?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while counter(pid)? <= later {
            ensure!(
                Instant::now() < deadline,
                "the counter did not move after resume"
            );
            thread::sleep(Duration::from_millis(20));
        }
        let status = ctr.task(&id)?.context("task listed")?.status;
        ensure!(status == "RUNNING", "`task ls` after resume says {status}");
        // SIGKILL reaches a paused container (it is thawed for it, as runc does).
        ctr.ok(["task", "pause", &id])?;
        ctr.ok(["task", "kill", "-s", "SIGKILL", &id])?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = ctr.task(&id)?.map(|t| t.status).unwrap_or_default();
            if status == "STOPPED" {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "a paused container did not stop on SIGKILL: {status}"
            );
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    })();
    ctr.force_remove(&id);
    let clean = c.assert_clean(&id);
    r.and(clean)
}

/// OOM: exit 137 and /tasks/oom before /tasks/exit.
pub fn oom(c: &Ctx<'_>) -> Result<()> {
    let id = c.id("oom");
    let out = c.cd.ctr.run(
        [
            "run",
            "--rm",
            "--runtime",
            c.runtime,
            "--memory-limit",
            "33554432",
            IMAGE,
            &id,
            "sh",
            "-c",
            "x=a; while :; do x=$x$x; done",
        ],
        None,
    )?;
    ensure!(
        out.code() == 137,
        "an OOM-killed container should exit 137: {out}"
    );
    // containerd 2.1's Go runc shim sometimes exits before forwarding TaskDelete (see
    // Ctx::task_events); for the reference the exit is enough, runrs must send both.
    let last = if c.runtime == RUNC {
        "/tasks/exit"
    } else {
        "/tasks/delete"
    };
    let ev = c
        .events
        .wait_task_event(&id, last, Duration::from_secs(10))?;
    let topics = integration::containerd::events::topics(&ev);
    let oom = topics.iter().position(|t| *t == "/tasks/oom");
    let exit = topics.iter().position(|t| *t == "/tasks/exit");
    ensure!(
        oom.is_some() && exit.is_some() && oom < exit,
        "expected /tasks/oom before /tasks/exit: {topics:?}"
    );
    c.assert_clean(&id)
}
