//! runc parity around the container's cgroup (issue 16): a pre-existing frozen or
//! non-empty cgroup, a memory limit below what init needs, exec into a paused
//! container and into a sub-cgroup. Validated against runc with
//! `RUNRS_TEST_RUNTIME=/usr/sbin/runc`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use integration::config::{set_args, sh};
use integration::{proc, Bundle, Runtime};

/// The directories of cgroup `path` in every hierarchy but cpuset (a new cpuset cgroup
/// takes no tasks until cpus and mems are set), made if missing.
fn make_cgroup(path: &str) -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for m in proc::cgroup_mounts()? {
        if m.has_super_option("cpuset") {
            continue;
        }
        if let Some(d) = proc::cgroup_dir(&m, path) {
            std::fs::create_dir_all(&d).with_context(|| format!("mkdir {}", d.display()))?;
            dirs.push(d);
        }
    }
    Ok(dirs)
}

/// Freezes (or thaws) cgroup `path`: the v1 freezer, else cgroup.freeze of cgroup2.
fn freeze(path: &str, frozen: bool) -> Result<()> {
    for m in proc::cgroup_mounts()? {
        let Some(d) = proc::cgroup_dir(&m, path) else {
            continue;
        };
        if m.has_super_option("freezer") {
            let v = if frozen { "FROZEN" } else { "THAWED" };
            return std::fs::write(d.join("freezer.state"), v).context("freezer.state");
        }
        if m.fstype == "cgroup2" && d.join("cgroup.freeze").exists() {
            let v = if frozen { "1" } else { "0" };
            return std::fs::write(d.join("cgroup.freeze"), v).context("cgroup.freeze");
        }
    }
    anyhow::bail!("no freezer for {path}")
}

/// Issue 16: a frozen pre-existing cgroup is refused at create ("container's cgroup
/// unexpectedly frozen", runc); runrs' init froze in it and `create` never returned.
#[test]
fn a_frozen_cgroup_is_refused() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("par-frozen", |c| set_args(c, &["true"]))?;
    make_cgroup(b.cgroups_path())?;
    freeze(b.cgroups_path(), true)?;
    let out = rt.create(&b)?;
    freeze(b.cgroups_path(), false)?;
    let out = out.fails()?;
    ensure!(out.stderr.contains("frozen"), "stderr: {out}");
    ensure!(
        !rt.root().join(b.id()).exists(),
        "a state dir was left: {out}"
    );
    integration::bundle::scrub_cgroup(b.cgroups_path());
    rt.assert_no_leftovers(&b)
}

/// Issue 16: a cgroup that already holds a process is used with a warning (runc 1.1:
/// "container's cgroup is not empty: 1 process(es) found"); runrs refused it. The
/// process that was there is not the container's: it survives the container's end.
#[test]
fn a_non_empty_cgroup_is_used_with_a_warning() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("par-busycg", |c| sh(c, "echo inside=ok"))?;
    let mut foreign = std::process::Command::new("sleep").arg("60").spawn()?;
    let moved = make_cgroup(b.cgroups_path()).and_then(|dirs| {
        for d in dirs {
            std::fs::write(d.join("cgroup.procs"), foreign.id().to_string())
                .with_context(|| format!("move into {}", d.display()))?;
        }
        Ok(())
    });
    let out = moved.and_then(|()| rt.run(&b, b"", integration::cmd::CMD_TIMEOUT));
    let alive = foreign.try_wait()?.is_none();
    let _ = foreign.kill();
    let _ = foreign.wait();
    let out = out?;
    ensure!(out.success(), "run in a non-empty cgroup: {out}");
    ensure!(out.stdout.contains("inside=ok"), "output: {out}");
    ensure!(out.stderr.contains("not empty"), "no warning: {out}");
    ensure!(
        alive,
        "the process that was in the cgroup was killed: {out}"
    );
    std::thread::sleep(Duration::from_millis(50));
    integration::bundle::scrub_cgroup(b.cgroups_path());
    rt.assert_no_leftovers(&b)
}

/// Issue 16: a memory limit below what init needs (1 byte) fails create with an error
/// that names the memory limit and its value (runc: "unable to set memory limit to 1
/// (current usage: ...)"); runrs said only "init exited before the container was
/// created". Nothing is left behind.
#[test]
fn a_memory_limit_below_what_init_needs_is_named() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("par-mem1", |c| {
        set_args(c, &["true"]);
        c["linux"]["resources"]["memory"] = serde_json::json!({ "limit": 1 });
    })?;
    let out = rt.create(&b)?.fails()?;
    let msg = out.stderr.to_lowercase();
    let names_it = msg.match_indices("memory limit").any(|(i, m)| {
        msg[i + m.len()..]
            .split_whitespace()
            .take(2)
            .any(|w| w == "1")
    });
    ensure!(
        names_it,
        "the error does not name the memory limit 1: {out}"
    );
    rt.assert_no_leftovers(&b)
}
