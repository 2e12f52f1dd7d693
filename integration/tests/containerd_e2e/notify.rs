//! Issue 8's containerd path of sd_notify readiness (runrs only: the runc shim has no
//! such opt-in). A container annotated `io.github.runrs.notify=true` whose process sends
//! READY=1 after a while: `ctr run -d` (Create + Start) returns only once READY arrived
//! (a marker the container writes just before READY exists when ctr returns: no timed
//! assertion), and TaskStart follows READY. A container that exits before READY fails
//! Start with a message saying so; so does one that never sends it within the bound its
//! `io.github.runrs.notify-timeout` annotation sets.

use anyhow::{ensure, Result};
use integration::containerd::IMAGE;

use crate::scenarios::Ctx;

/// The readiness check.
pub fn notify(c: &Ctx<'_>) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("runrs-e2e-notify-")
        .tempdir()?;
    integration::sdnotify_helper(dir.path())?;
    let mount = format!(
        "type=bind,src={},dst=/shared,options=rbind:rw",
        dir.path().display()
    );
    let id = c.id("notify");
    let out = c.cd.ctr.run(
        [
            "run",
            "-d",
            "--runtime",
            c.runtime,
            "--annotation",
            "io.github.runrs.notify=true",
            "--mount",
            &mount,
            IMAGE,
            &id,
            "sh",
            "-c",
            "sleep 1; touch /shared/before-ready; /shared/sdnotify READY=1; exec sleep 100",
        ],
        None,
    )?;
    let marker = dir.path().join("before-ready").exists();
    let r = (|| -> Result<()> {
        ensure!(out.success(), "ctr run -d failed: {out}");
        ensure!(
            marker,
            "`ctr run -d` returned before the container sent READY=1"
        );
        let ev =
            c.events
                .wait_task_event(&id, "/tasks/start", std::time::Duration::from_secs(10))?;
        let topics = integration::containerd::events::topics(&ev);
        let (create, start) = (
            topics.iter().position(|t| *t == "/tasks/create"),
            topics.iter().position(|t| *t == "/tasks/start"),
        );
        ensure!(
            create.is_some() && start > create,
            "events out of order: {topics:?}"
        );
        Ok(())
    })();
    c.cd.ctr.force_remove(&id);
    let clean = c.assert_clean(&id);
    r.and(clean)?;
    let _ = std::fs::remove_file(dir.path().join("before-ready"));

    // Exit before READY: Start fails clearly and nothing is left.
    let id = c.id("notifyexit");
    let out = c.cd.ctr.run(
        [
            "run",
            "-d",
            "--runtime",
            c.runtime,
            "--annotation",
            "io.github.runrs.notify=true",
            IMAGE,
            &id,
            "sh",
            "-c",
            "exit 3",
        ],
        None,
    )?;
    c.cd.ctr.force_remove(&id);
    ensure!(
        !out.success(),
        "a container exiting before READY must fail Start: {out}"
    );
    ensure!(
        out.stderr.contains("READY"),
        "the error should say READY was never sent: {out}"
    );
    c.assert_clean(&id)?;

    // The container's own bound (issue 13): io.github.runrs.notify-timeout=2 fails Start
    // after 2 s instead of the shim's 90 s, and the error names that bound.
    let id = c.id("notifytimeout");
    let out = c.cd.ctr.run(
        [
            "run",
            "-d",
            "--runtime",
            c.runtime,
            "--annotation",
            "io.github.runrs.notify=true",
            "--annotation",
            "io.github.runrs.notify-timeout=2",
            IMAGE,
            &id,
            "sleep",
            "100",
        ],
        None,
    )?;
    c.cd.ctr.force_remove(&id);
    ensure!(
        !out.success() && out.stderr.contains("within 2 s"),
        "a container that never sends READY must fail Start after its own 2 s bound: {out}"
    );
    c.assert_clean(&id)
}
