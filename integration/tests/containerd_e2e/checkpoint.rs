//! Issue 7 through containerd: `ctr task checkpoint` of a runrs task puts a checkpoint
//! image in containerd's content store and the shim publishes /tasks/checkpointed (containerd does not);
//! `ctr container checkpoint --task` + `ctr container restore --live` bring a counter
//! back from where it was (it continues, it does not restart).
//! runrs only: runc 1.1.5 cannot checkpoint on this host (its criu settings need
//! iptables, which is not installed), so there is no reference run.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use integration::containerd::IMAGE;

use crate::scenarios::Ctx;

const COUNTER: &str = "i=0; while :; do i=$((i+1)); echo $i > /counter; sleep 0.05; done";

fn counter(pid: i64) -> Result<u64> {
    Ok(
        std::fs::read_to_string(format!("/proc/{pid}/root/counter"))?
            .trim()
            .parse()
            .unwrap_or(0),
    )
}

fn running_pid(c: &Ctx<'_>, id: &str) -> Result<i64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(t) = c.cd.ctr.task(id)? {
            if t.status == "RUNNING" && counter(t.pid).unwrap_or(0) > 2 {
                return Ok(t.pid);
            }
        }
        ensure!(Instant::now() < deadline, "{id} did not run its counter");
        thread::sleep(Duration::from_millis(20));
    }
}

/// The check.
pub fn checkpoint(c: &Ctx<'_>) -> Result<()> {
    let ctr = &c.cd.ctr;
    let id = c.id("ckpt");
    let image = format!("runrs-e2e-checkpoint-{}", std::process::id());
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
        running_pid(c, &id)?;
        // 1. ctr task checkpoint: an image in the content store, /tasks/checkpointed.
        let out = ctr.ok(["task", "checkpoint", &id])?;
        let reference = out.stdout.trim().to_string();
        ensure!(
            reference.contains("checkpoint"),
            "ctr task checkpoint printed {out}"
        );
        let images = ctr.ok(["image", "ls", "-q"])?.stdout;
        ensure!(
            images.lines().any(|l| l == reference),
            "{reference} not in the content store: {images}"
        );
        c.events
            .wait_task_event(&id, "/tasks/checkpointed", Duration::from_secs(10))?;
        // --sync: containerd must have collected this image's blobs before the next
        // checkpoint. Otherwise it writes the identical spec blob again, gets "already
        // exists", and `ctr container checkpoint` silently drops the task from the index
        // (restore then fails with "media type not found"; seen on 1.7, 1 run in 8).
        ctr.ok(["image", "rm", "--sync", &reference])?;
        // 2. Container checkpoint with its task, then restore it live.
        ctr.ok(["container", "checkpoint", "--task", "--rw", &id, &image])?;
        let pid = running_pid(c, &id)?;
        let at_checkpoint = counter(pid)?;
        ctr.force_remove(&id);
        ctr.ok(["container", "restore", "--live", "--rw", &id, &image])
            .context("ctr container restore --live")?;
        let pid = running_pid(c, &id)?;
        let resumed = counter(pid)?;
        ensure!(
            resumed >= at_checkpoint,
            "the restored counter restarted: {resumed} < {at_checkpoint} (value when checkpointed)"
        );
        // It keeps counting.
        let deadline = Instant::now() + Duration::from_secs(10);
        while counter(pid)? <= resumed {
            ensure!(
                Instant::now() < deadline,
                "the restored counter does not move"
            );
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    })();
    ctr.force_remove(&id);
    let _ = ctr.run(["image", "rm", &image], None);
    let clean = c.assert_clean(&id);
    r.and(clean)
}
