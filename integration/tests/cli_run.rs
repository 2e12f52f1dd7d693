//! `run`: in the foreground with stdin/stdout/stderr as pipes (the runtime passes them to
//! the container and removes the container when it exits), and `run --detach`.

use std::time::Duration;

use anyhow::{ensure, Result};
use integration::config::{set_args, sh};
use integration::{Bundle, Runtime};

#[test]
fn stdin_round_trip() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("run-cat", |c| set_args(c, &["cat"]))?;
    let out = rt.run(&b, b"hi\n", Duration::from_secs(30))?.ok()?;
    ensure!(out.stdout == "hi\n", "{out}");
    ensure!(
        rt.list()?.is_empty(),
        "run left the container in the state root"
    );
    rt.assert_no_leftovers(&b)
}

#[test]
fn large_stdin_is_not_truncated() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("run-big", |c| set_args(c, &["cat"]))?;
    let data: String = (0..20_000).map(|i| format!("line {i:08}\n")).collect();
    let out = rt.run(&b, data.as_bytes(), Duration::from_secs(30))?.ok()?;
    ensure!(
        out.stdout.len() == data.len() && out.stdout == data,
        "got {} of {} bytes",
        out.stdout.len(),
        data.len()
    );
    rt.assert_no_leftovers(&b)
}

#[test]
fn stdout_and_stderr_are_separate() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("run-stdio", |c| sh(c, "echo to-out; echo to-err >&2"))?;
    let out = rt.run(&b, b"", Duration::from_secs(30))?.ok()?;
    ensure!(
        out.stdout == "to-out\n" && out.stderr.contains("to-err") && !out.stdout.contains("to-err"),
        "{out}"
    );
    rt.assert_no_leftovers(&b)
}

#[test]
fn run_detach() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("run-detach", |c| sh(c, "echo detached; exec sleep 30"))?;
    rt.detached("run", &b, &["--detach"])?.ok()?;
    let st = rt.state(b.id())?;
    ensure!(st.status == "running" && st.pid > 0, "{}", st.raw);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !b.stdout()?.contains("detached") {
        ensure!(
            std::time::Instant::now() < deadline,
            "no output from the detached container"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    rt.delete_force(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}
