//! process.terminal with `--console-socket`: the runtime sends the pty master over the
//! socket; the container's stdio is the pty slave /dev/pts/0, which is also /dev/console.

use std::time::Duration;

use anyhow::{ensure, Result};
use integration::config::{set_args, sh};
use integration::{Bundle, ConsoleSocket, Runtime};
use serde_json::json;

const T: Duration = Duration::from_secs(10);

fn terminal_bundle(name: &str, script: &str) -> Result<Bundle> {
    Bundle::with_config(name, |c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["consoleSize"] = json!({ "height": 30, "width": 100 });
        sh(c, script);
    })
}

#[test]
fn console_socket_receives_the_pty_master() -> Result<()> {
    let rt = Runtime::new()?;
    let b = terminal_bundle(
        "tty-basic",
        "tty; stty size; for f in 0 1 2; do readlink /proc/self/fd/$f; done; \
         stat -c %t:%T /dev/console; stat -c %t:%T /dev/pts/0; echo end",
    )?;
    let sock = ConsoleSocket::new()?;
    rt.create_with(&b, &["--console-socket", &sock.path().to_string_lossy()])?
        .ok()?;
    let pty = sock.receive(T)?;
    rt.start(b.id())?.ok()?;
    let raw = String::from_utf8_lossy(&pty.read_to_end(T)?).into_owned();
    // The pty translates \n to \r\n (ONLCR).
    ensure!(
        raw.contains("\r\n"),
        "output did not go through a terminal: {raw:?}"
    );
    let lines: Vec<&str> = raw.lines().map(|l| l.trim_end_matches('\r')).collect();
    ensure!(lines.len() == 8 && lines[7] == "end", "output: {lines:?}");
    ensure!(lines[0] == "/dev/pts/0", "tty: {lines:?}");
    ensure!(
        lines[1] == "30 100",
        "stty size (process.consoleSize 30x100): {lines:?}"
    );
    ensure!(
        lines[2..5].iter().all(|l| *l == "/dev/pts/0"),
        "stdio is not the pty: {lines:?}"
    );
    ensure!(
        lines[5] == lines[6],
        "/dev/console ({}) is not the pty slave ({})",
        lines[5],
        lines[6]
    );
    rt.wait_for_status(b.id(), "stopped", T)?;
    rt.delete(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}

#[test]
fn terminal_input_reaches_the_container() -> Result<()> {
    let rt = Runtime::new()?;
    let b = terminal_bundle("tty-input", "echo ready; read line; echo got:$line; exit 4")?;
    let sock = ConsoleSocket::new()?;
    rt.create_with(&b, &["--console-socket", &sock.path().to_string_lossy()])?
        .ok()?;
    let pty = sock.receive(T)?;
    rt.start(b.id())?.ok()?;
    pty.read_until("ready", T)?;
    pty.write_all(b"hello tty\n")?;
    let rest = pty.read_until("got:hello tty", T)?;
    ensure!(rest.contains("got:hello tty"), "{rest:?}");
    rt.wait_for_status(b.id(), "stopped", T)?;
    rt.delete(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}

#[test]
fn terminal_without_console_socket_fails() -> Result<()> {
    let rt = Runtime::new()?;
    let b = terminal_bundle("tty-nosock", "true")?;
    let out = rt.create(&b)?.fails()?;
    out.stderr_mentions("console socket")?;
    rt.assert_no_leftovers(&b)
}

#[test]
fn console_socket_without_terminal_fails() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("tty-noterm", |c| set_args(c, &["true"]))?;
    let sock = ConsoleSocket::new()?;
    let out = rt
        .create_with(&b, &["--console-socket", &sock.path().to_string_lossy()])?
        .fails()?;
    out.stderr_mentions("console socket")?;
    rt.assert_no_leftovers(&b)
}

#[test]
fn console_socket_that_does_not_exist_fails() -> Result<()> {
    let rt = Runtime::new()?;
    let b = terminal_bundle("tty-nolistener", "true")?;
    let missing = b.path().join("no-such.sock");
    let out = rt
        .create_with(&b, &["--console-socket", &missing.to_string_lossy()])?
        .fails()?;
    out.stderr_mentions(&missing.to_string_lossy())?;
    rt.assert_no_leftovers(&b)
}
