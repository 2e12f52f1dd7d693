//! runc parity around the container's cgroup (issue 16): a pre-existing frozen or
//! non-empty cgroup, a memory limit below what init needs, exec into a paused
//! container and into a sub-cgroup. Validated against runc with
//! `RUNRS_TEST_RUNTIME=/usr/sbin/runc`.

use std::io::Read;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

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

/// Issue 16: `exec --ignore-paused` into a paused container is accepted (runc): the
/// process joins the frozen cgroup, stays frozen, and runs once the container is
/// resumed. runrs refused it as without the flag.
#[test]
fn exec_ignore_paused_runs_once_resumed() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("par-ignpaused", |c| set_args(c, &["sleep", "60"]))?;
    rt.create_and_start(&b)?;
    rt.cli(["pause", b.id()])?.ok()?;
    let mut cmd = rt.command(["exec", "--ignore-paused", b.id(), "echo", "exec=ok"]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    let waited_while_paused = child.try_wait()?.is_none();
    let resumed = rt.cli(["resume", b.id()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut out)?;
    }
    if let Some(mut s) = child.stderr.take() {
        s.read_to_string(&mut err)?;
    }
    resumed?.ok()?;
    ensure!(
        waited_while_paused,
        "exec finished while the container was paused: {status:?} {out} {err}"
    );
    ensure!(
        status.is_some_and(|s| s.success()) && out.contains("exec=ok"),
        "exec --ignore-paused: {status:?} stdout {out:?} stderr {err:?}"
    );
    rt.delete_force(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}

/// The path of the /proc/<pid>/cgroup line for `controller` ("" for cgroup2).
fn cgroup_of<'a>(text: &'a str, controller: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        let hit = if controller.is_empty() {
            ctrls.is_empty()
        } else {
            ctrls.split(',').any(|c| c == controller)
        };
        hit.then_some(path)
    })
}

/// Issue 16: `exec --cgroup <sub>` runs the process in the existing sub-cgroup `<sub>`
/// of the container's cgroup in every hierarchy, `--cgroup <ctrl>:<sub>` only in that
/// controller's (runc 1.1); a sub-cgroup that does not exist fails the exec. runrs had
/// no `--cgroup`.
#[test]
fn exec_cgroup_joins_a_sub_cgroup() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("par-execcg", |c| set_args(c, &["sleep", "60"]))?;
    rt.create_and_start(&b)?;
    let mut v2_only = true;
    for m in proc::cgroup_mounts()? {
        v2_only &= m.fstype == "cgroup2";
        let Some(d) = proc::cgroup_dir(&m, b.cgroups_path()).filter(|d| d.is_dir()) else {
            continue;
        };
        let sub = d.join("sub");
        std::fs::create_dir(&sub).with_context(|| format!("mkdir {}", sub.display()))?;
        if m.has_super_option("cpuset") {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                std::fs::write(sub.join(f), std::fs::read_to_string(d.join(f))?.trim())?;
            }
        }
    }
    let all = rt
        .cli([
            "exec",
            "--cgroup",
            "sub",
            b.id(),
            "cat",
            "/proc/self/cgroup",
        ])?
        .ok()?;
    let ctrls: &[&str] = if v2_only { &[""] } else { &["memory", "pids"] };
    for ctrl in ctrls {
        ensure!(
            cgroup_of(&all.stdout, ctrl).is_some_and(|p| p.ends_with("/sub")),
            "--cgroup sub: {ctrl:?} not in the sub-cgroup: {all}"
        );
    }
    if !v2_only {
        let one = rt
            .cli([
                "exec",
                "--cgroup",
                "memory:sub",
                b.id(),
                "cat",
                "/proc/self/cgroup",
            ])?
            .ok()?;
        ensure!(
            cgroup_of(&one.stdout, "memory").is_some_and(|p| p.ends_with("/sub"))
                && cgroup_of(&one.stdout, "pids").is_some_and(|p| !p.ends_with("/sub")),
            "--cgroup memory:sub: {one}"
        );
    }
    rt.cli(["exec", "--cgroup", "runrs-it-nosuch", b.id(), "true"])?
        .fails()?;
    rt.delete_force(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}
