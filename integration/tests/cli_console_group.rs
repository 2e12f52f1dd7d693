//! Issue 16: the pty of a `terminal: true` process is in the `tty` group (gid 5, the
//! default devpts `gid=5`) as with runc, for run and exec, root and non-root users:
//! runc only changes the owner of the process' stdio, runrs also set the group to the
//! user's (0 for root). Validated against runc with `RUNRS_TEST_RUNTIME=/usr/sbin/runc`.

use std::time::Duration;

use anyhow::{ensure, Result};
use integration::config::sh;
use integration::{Bundle, ConsoleSocket, Runtime};
use serde_json::json;

const T: Duration = Duration::from_secs(10);

/// The lines the pty shows, without the terminal's carriage returns.
fn lines(raw: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(raw)
        .lines()
        .map(|l| l.trim_end_matches('\r').to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

fn run_owner(name: &str, uid: u32) -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config(name, |c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["user"] = json!({ "uid": uid, "gid": uid });
        sh(c, "stat -c owner=%u:%g $(tty)");
    })?;
    let sock = ConsoleSocket::new()?;
    rt.create_with(&b, &["--console-socket", &sock.path().to_string_lossy()])?
        .ok()?;
    let pty = sock.receive(T)?;
    rt.start(b.id())?.ok()?;
    let got = lines(&pty.read_to_end(T)?);
    ensure!(
        got.iter().any(|l| *l == format!("owner={uid}:5")),
        "uid {uid}: pty owner {got:?}"
    );
    rt.wait_for_status(b.id(), "stopped", T)?;
    rt.delete(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}

#[test]
fn the_pty_of_run_is_in_the_tty_group() -> Result<()> {
    run_owner("ttygrp-root", 0)?;
    run_owner("ttygrp-user", 1000)
}

#[test]
fn the_pty_of_exec_is_in_the_tty_group() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("ttygrp-exec", |c| {
        integration::config::set_args(c, &["sleep", "60"])
    })?;
    rt.create_and_start(&b)?;
    for user in ["0:0", "1000:1000"] {
        let sock = ConsoleSocket::new()?;
        let path = sock.path().to_string_lossy().into_owned();
        let mut cmd = rt.command([
            "exec",
            "-d",
            "-t",
            "--console-socket",
            &path,
            "--user",
            user,
        ]);
        cmd.args([b.id(), "sh", "-c", "stat -c owner=%u:%g $(tty)"]);
        let out = integration::cmd::run_capture(cmd, None, integration::cmd::CMD_TIMEOUT)?;
        out.ok()?;
        let got = lines(&sock.receive(T)?.read_to_end(T)?);
        let uid = user.split(':').next().unwrap_or_default();
        ensure!(
            got.iter().any(|l| *l == format!("owner={uid}:5")),
            "exec as {user}: pty owner {got:?}"
        );
    }
    rt.delete_force(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}
