//! Wording and small behaviours runc's callers rely on (issues 14 and 16). Docker turns
//! a failed create into exit code 127 when the error says `no such file or directory` or
//! `executable file not found`, 126 when it says `permission denied`, else 125: the
//! words must be runc's (Go's exec.LookPath). Validated against runc with
//! `RUNRS_TEST_RUNTIME=/usr/sbin/runc`.

use anyhow::{ensure, Result};
use integration::config::{set_args, sh};
use integration::{Bundle, Runtime};

fn create_says(args: &[&str], name: &str, want: &str) -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config(name, |c| set_args(c, args))?;
    let out = rt.create(&b)?.fails()?;
    // The message comes as a logrus line: msg="... exec: \"/x\": ..." (quotes escaped).
    let msg = out.stderr.replace("\\\"", "\"");
    ensure!(msg.contains(want), "stderr does not say {want:?}: {out}");
    rt.assert_no_leftovers(&b)?;
    Ok(())
}

#[test]
fn a_missing_program_is_worded_like_runc() -> Result<()> {
    create_says(
        &["/runrs-it-nonexistent"],
        "msg-nobin",
        r#"exec: "/runrs-it-nonexistent": stat /runrs-it-nonexistent: no such file or directory"#,
    )?;
    create_says(
        &["runrs-it-no-such-cmd"],
        "msg-nopath",
        r#"exec: "runrs-it-no-such-cmd": executable file not found in $PATH"#,
    )
}

#[test]
fn a_program_that_is_not_executable_is_worded_like_runc() -> Result<()> {
    create_says(
        &["/etc/passwd"],
        "msg-noexec",
        r#"exec: "/etc/passwd": permission denied"#,
    )
}

/// Issue 16: `exec -p process.json` without "user" runs as uid 0, gid 0 (runc takes Go's
/// zero value); runrs refused it ("missing field `user`").
#[test]
fn exec_process_file_without_user_runs_as_root() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("par-exec-nouser", |c| set_args(c, &["sleep", "60"]))?;
    rt.create_and_start(&b)?;
    let file = b.path().join("process.json");
    std::fs::write(
        &file,
        serde_json::json!({
            "args": ["sh", "-c", "echo $(id -u):$(id -g)"],
            "cwd": "/",
            "env": ["PATH=/bin:/usr/bin"]
        })
        .to_string(),
    )?;
    let p = file.to_str().ok_or_else(|| anyhow::anyhow!("utf8 path"))?;
    let out = rt.cli(["exec", "-p", p, b.id()])?.ok()?;
    ensure!(out.stdout.trim() == "0:0", "uid:gid {out}");
    rt.delete_force(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}

/// Issue 16: `list` with a --root that does not exist yet creates it (runc does).
#[test]
fn list_creates_a_missing_root() -> Result<()> {
    let parent = tempfile::Builder::new()
        .prefix("runrs-it-list-")
        .tempdir_in("/run")?;
    let root = parent.path().join("state");
    let mut cmd = std::process::Command::new(integration::runtime_path()?);
    cmd.arg("--root")
        .arg(&root)
        .args(["list", "--format", "json"]);
    let out = integration::cmd::run_capture(cmd, None, integration::cmd::CMD_TIMEOUT)?.ok()?;
    ensure!(
        out.stdout.trim() == "null" || out.stdout.trim() == "[]",
        "{out}"
    );
    ensure!(root.is_dir(), "{} was not created", root.display());
    Ok(())
}

/// Issue 14: runc always allows `c 10:200 rwm` (/dev/net/tun; runc 1.1, and >= 1.2.4
/// after 1.2.0 dropped it); with runrs a container with CAP_MKNOD could not open a tun
/// node it created. A node not in the list (/dev/loop-control, c 10:237) stays denied.
#[test]
fn a_tun_node_made_in_the_container_can_be_opened() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("par-tun", |c| {
        sh(
            c,
            "mknod /dev/t c 10 200 && if (exec 3</dev/t) 2>/dev/err; then echo tun=ok; \
             else echo \"tun=$(cat /dev/err)\"; fi; mknod /dev/k c 10 237 && \
             if (exec 3</dev/k) 2>/dev/err; then echo other=ok; else echo \"other=$(cat /dev/err)\"; fi",
        );
        for set in ["bounding", "effective", "permitted"] {
            if let Some(a) = c["process"]["capabilities"][set].as_array_mut() {
                a.push("CAP_MKNOD".into());
            }
        }
    })?;
    let out = rt.output(&b)?;
    let tun = out.lines().find(|l| l.starts_with("tun=")).unwrap_or("");
    ensure!(
        !tun.is_empty() && !tun.contains("Operation not permitted"),
        "tun: {out}"
    );
    ensure!(
        out.lines()
            .any(|l| l.starts_with("other=") && l.contains("Operation not permitted")),
        "c 10:237: {out}"
    );
    rt.assert_no_leftovers(&b)
}

/// Issue 14: with a private cgroup namespace the container sees its cgroups as "/" in
/// every hierarchy; on a hybrid host runrs showed the host path on the cgroup2 line
/// ("0::/<path>"), because init unshared before it was in its cgroup2 directory.
#[test]
fn a_private_cgroup_namespace_is_rooted_at_the_containers_cgroups() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("par-cgns", |c| {
        set_args(c, &["cat", "/proc/self/cgroup"]);
        integration::config::set_namespace(c, "cgroup", None);
    })?;
    let out = rt.output(&b)?;
    ensure!(
        !out.trim().is_empty() && out.lines().all(|l| l.ends_with(":/")),
        "/proc/self/cgroup inside: {out}"
    );
    rt.assert_no_leftovers(&b)
}

/// Issue 16: signal 0 is the liveness check (kill(2)); runc accepts `kill ID 0` and
/// `kill -a ID 0`, and fails it once the container has stopped. runrs refused it as
/// "invalid signal number 0".
#[test]
fn kill_with_signal_0_checks_liveness() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("par-kill0", |c| set_args(c, &["sleep", "60"]))?;
    rt.create_and_start(&b)?;
    rt.cli(["kill", b.id(), "0"])?.ok()?;
    rt.cli(["kill", "--all", b.id(), "0"])?.ok()?;
    ensure!(
        rt.state(b.id())?.status == "running",
        "signal 0 changed the container"
    );
    rt.kill(b.id(), "KILL")?.ok()?;
    rt.wait_for_status(b.id(), "stopped", std::time::Duration::from_secs(10))?;
    rt.cli(["kill", b.id(), "0"])?.fails()?;
    rt.delete(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}

/// Issue 16: a bind mount's relative `source` is relative to the bundle (runtime spec),
/// a relative `destination` (deprecated, accepted by runc 1.1) relative to `/`. runrs
/// refused both ("a bind mount source must be an absolute path").
#[test]
fn relative_mount_paths_resolve_like_runc() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("par-relmnt", |c| {
        sh(
            c,
            "cat /mnt/rel/hello && test -f /whole-bundle/config.json && echo bundle=ok",
        );
        integration::config::add_mount(c, "mnt/rel", "bind", "src-dir", &["rbind", "ro"]);
        integration::config::add_mount(c, "/whole-bundle", "bind", ".", &["rbind", "ro"]);
    })?;
    std::fs::create_dir(b.path().join("src-dir"))?;
    std::fs::write(b.path().join("src-dir/hello"), "hello-from-bundle\n")?;
    let out = rt.output(&b)?;
    ensure!(
        out.contains("hello-from-bundle") && out.contains("bundle=ok"),
        "output: {out}"
    );
    rt.assert_no_leftovers(&b)
}

/// Issue 16: `kill ID -1` is an invalid signal (runc: "unable to signal init: invalid
/// argument", exit 1), not an unknown flag (runrs: usage error, exit 2). runrs keeps
/// accepting SIGRTMIN+n names (README, differences from runc).
#[test]
fn kill_with_a_negative_signal_is_an_invalid_signal() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("par-killneg", |c| set_args(c, &["sleep", "60"]))?;
    rt.create_and_start(&b)?;
    for sig in ["-1", "99"] {
        let out = rt.cli(["kill", b.id(), sig])?;
        ensure!(
            out.status.code() == Some(1),
            "kill {sig}: exit 1 wanted: {out}"
        );
        ensure!(out.stderr.contains("invalid argument"), "kill {sig}: {out}");
    }
    ensure!(
        rt.state(b.id())?.status == "running",
        "an invalid signal changed the container"
    );
    rt.delete_force(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}

/// Issue 16: runc's version and help entry points: `-v`/`--version` print
/// `NAME version X`, `spec: 1.x`, `libseccomp: x.y.z`; `help` and `CMD -h` print help;
/// an unknown command with `-h` says "No help topic for 'foo'" (exit 3). runrs printed
/// clap's one-line version, refused `-v` and `help`, and failed `foo -h` with exit 2.
#[test]
fn version_and_help_entry_points_are_runcs() -> Result<()> {
    let rt = Runtime::new()?;
    let name = integration::runtime_name();
    for flag in ["-v", "--version"] {
        let out = rt.cli([flag])?.ok()?;
        let lines: Vec<&str> = out.stdout.lines().collect();
        ensure!(
            lines
                .first()
                .is_some_and(|l| l.starts_with(&format!("{name} version "))),
            "{flag}: {out}"
        );
        ensure!(
            lines.iter().any(|l| l.starts_with("spec: 1.")),
            "{flag}: {out}"
        );
        ensure!(
            lines
                .iter()
                .any(|l| l
                    .strip_prefix("libseccomp: ")
                    .is_some_and(|v| v.split('.').count() == 3
                        && v.split('.').all(|p| p.parse::<u32>().is_ok()))),
            "{flag}: {out}"
        );
    }
    let out = rt.cli(["help"])?.ok()?;
    ensure!(out.stdout.contains("kill"), "help: {out}");
    let out = rt.cli(["kill", "-h"])?.ok()?;
    ensure!(
        out.stdout.to_lowercase().contains("signal"),
        "kill -h: {out}"
    );
    let out = rt.cli(["runrs-no-such-cmd", "-h"])?;
    ensure!(out.status.code() == Some(3), "foo -h: exit 3 wanted: {out}");
    ensure!(
        out.stderr.contains("No help topic for 'runrs-no-such-cmd'"),
        "foo -h: {out}"
    );
    Ok(())
}

/// Issue 16: `update --memory -1` while a swap limit is set lifts both limits (runc's
/// setMemoryAndSwap); runrs kept the old swap limit and refused ("-1 exceeds the
/// memory+swap limit").
#[test]
fn update_memory_unlimited_lifts_the_swap_limit() -> Result<()> {
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if !v2 && !std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
        integration::skip("no swap accounting on this host (memory.memsw.*)");
        return Ok(());
    }
    let rt = Runtime::new()?;
    let b = Bundle::with_config("par-upd-mem", |c| {
        set_args(c, &["sleep", "60"]);
        c["linux"]["resources"]["memory"] =
            serde_json::json!({ "limit": 100 << 20, "swap": 200 << 20 });
    })?;
    rt.create_and_start(&b)?;
    rt.cli(["update", "--memory", "-1", b.id()])?.ok()?;
    rt.cli(["update", "--memory", "64m", "--memory-swap", "128m", b.id()])?
        .ok()?;
    rt.delete_force(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}

/// Issue 16: a failure of `exec` itself (here: the container is paused) exits 255 with
/// "exec failed" as runc's; the exec'd process' own exit code passes through. runrs
/// exited 1.
#[test]
fn exec_failures_exit_255_and_process_codes_pass_through() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("par-exec255", |c| set_args(c, &["sleep", "60"]))?;
    rt.create_and_start(&b)?;
    rt.cli(["pause", b.id()])?.ok()?;
    let out = rt.cli(["exec", b.id(), "true"])?;
    ensure!(out.status.code() == Some(255), "exec into paused: {out}");
    ensure!(
        out.stderr.contains("exec failed"),
        "exec into paused: {out}"
    );
    rt.cli(["resume", b.id()])?.ok()?;
    let out = rt.cli(["exec", b.id(), "sh", "-c", "exit 7"])?;
    ensure!(out.status.code() == Some(7), "exit 7: {out}");
    let out = rt.cli(["exec", b.id(), "true"])?;
    ensure!(out.status.code() == Some(0), "true: {out}");
    rt.delete_force(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}

/// Issue 16: when the final execve of the container process fails after start, the
/// reason is kept: `exec /bin/true: argument list too long` (runc's wording) for a 1 MiB
/// environment variable; runrs printed only `runrs: exec /bin/true`. (The exit code
/// differs: runc 1.1.5 exits 1, runrs 126 as a shell does for "cannot execute".)
#[test]
fn a_failed_exec_keeps_its_reason() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("par-e2big", |c| {
        set_args(c, &["/bin/true"]);
        if let Some(env) = c["process"]["env"].as_array_mut() {
            env.push(format!("BIG={}", "x".repeat(1 << 20)).into());
        }
    })?;
    let out = rt.run(&b, b"", integration::cmd::CMD_TIMEOUT)?;
    ensure!(!out.success(), "a 1 MiB variable did not fail exec: {out}");
    ensure!(
        out.stderr
            .contains("exec /bin/true: argument list too long"),
        "stderr: {out}"
    );
    rt.delete_force(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}

/// Issue 16: device rules with access letters in any order, repeated, or with `a`
/// ("rwa", as tools write it) are accepted as runc 1.1 accepts them (its rules keep
/// r, w and m); runrs refused "rwa" as an invalid access.
#[test]
fn device_access_strings_are_read_like_runc() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("par-devacc", |c| {
        sh(c, "head -c1 /dev/zero >/dev/null && echo zero=ok");
        if let Some(d) = c["linux"]["resources"]["devices"].as_array_mut() {
            for access in ["rwa", "wrw"] {
                d.push(serde_json::json!({
                    "allow": true, "type": "c", "major": 1, "minor": 5, "access": access
                }));
            }
        }
    })?;
    let out = rt.output(&b)?;
    ensure!(out.contains("zero=ok"), "output: {out}");
    rt.assert_no_leftovers(&b)
}
