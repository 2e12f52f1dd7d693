//! Running a command with a deadline and capturing what it printed.
//!
//! Two shapes: [`run_capture`] pipes stdin/stdout/stderr and waits for EOF (right for
//! commands whose children die with them, e.g. `run` in the foreground), and [`run_to_files`]
//! sends stdout/stderr to files and waits only for the command itself to exit. The second
//! one is needed for `create`/`run --detach`: a runc-compatible runtime hands its own stdio
//! to the container, so a pipe would not reach EOF until the container exits.

use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Default deadline for one runtime CLI invocation.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(30);

/// What a finished command printed and how it ended.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// The command line, for messages.
    pub argv: Vec<String>,
    /// How the process ended.
    pub status: ExitStatus,
    /// Everything written to stdout (lossy UTF-8).
    pub stdout: String,
    /// Everything written to stderr (lossy UTF-8).
    pub stderr: String,
}

impl CmdOutput {
    /// True when the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The shell-style exit code: the exit status, or 128 + signal number.
    pub fn code(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        match (self.status.code(), self.status.signal()) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => -1,
        }
    }

    /// Returns self if the command succeeded, else an error showing the command and its output.
    pub fn ok(self) -> Result<Self> {
        if !self.success() {
            bail!("command failed: {self}");
        }
        Ok(self)
    }

    /// Returns self if the command failed (non-zero exit), else an error.
    pub fn fails(self) -> Result<Self> {
        if self.success() {
            bail!("command succeeded but was expected to fail: {self}");
        }
        Ok(self)
    }

    /// Checks that stderr mentions `keyword` (case-insensitive).
    pub fn stderr_mentions(&self, keyword: &str) -> Result<()> {
        if !self.stderr.to_lowercase().contains(&keyword.to_lowercase()) {
            bail!("stderr does not mention {keyword:?}: {self}");
        }
        Ok(())
    }
}

impl fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.argv.join(" "),
            self.code(),
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// The command line of `cmd` as strings.
pub fn argv(cmd: &Command) -> Vec<String> {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect()
}

fn kill_pid(pid: u32) {
    // The child has not been waited for (its waiter thread is still blocked), so the pid
    // cannot have been reused yet.
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    }
}

/// Runs `cmd` with stdout/stderr piped and `stdin` (or /dev/null) as input; waits until it
/// exits and both pipes reach EOF, or kills it after `timeout`.
pub fn run_capture(
    mut cmd: Command,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<CmdOutput> {
    let argv = argv(&cmd);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd
        .spawn()
        .with_context(|| format!("spawn `{}`", argv.join(" ")))?;
    let pid = child.id();
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A container that does not read its stdin makes this fail with EPIPE: fine.
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(timeout) {
        Ok(out) => out.with_context(|| format!("wait for `{}`", argv.join(" ")))?,
        Err(_) => {
            kill_pid(pid);
            let partial = rx
                .recv_timeout(Duration::from_secs(2))
                .ok()
                .and_then(|r| r.ok())
                .map(|o| {
                    format!(
                        "\n--- stdout ---\n{}\n--- stderr ---\n{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    )
                })
                .unwrap_or_default();
            bail!(
                "`{}` did not finish within {timeout:?}; killed it{partial}",
                argv.join(" ")
            );
        }
    };
    Ok(CmdOutput {
        argv,
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs `cmd` with stdin from /dev/null and stdout/stderr appended to the given files;
/// waits only for the command itself to exit (not for whoever inherited its stdio).
/// The returned output is what the files hold at that moment.
pub fn run_to_files(
    mut cmd: Command,
    stdout: &Path,
    stderr: &Path,
    timeout: Duration,
) -> Result<CmdOutput> {
    let argv = argv(&cmd);
    let open = |p: &Path| {
        File::options()
            .create(true)
            .append(true)
            .open(p)
            .with_context(|| format!("open {}", p.display()))
    };
    cmd.stdin(Stdio::null())
        .stdout(open(stdout)?)
        .stderr(open(stderr)?);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("spawn `{}`", argv.join(" ")))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "`{}` did not finish within {timeout:?}; killed it",
                argv.join(" ")
            );
        }
        thread::sleep(Duration::from_millis(2));
    };
    Ok(CmdOutput {
        argv,
        status,
        stdout: read_lossy(stdout)?,
        stderr: read_lossy(stderr)?,
    })
}

/// Reads a file as lossy UTF-8.
pub fn read_lossy(path: &Path) -> Result<String> {
    let mut buf = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .with_context(|| format!("read {}", path.display()))?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Runs a host command (not the runtime) to completion and requires success.
pub fn host(program: &str, args: &[&str]) -> Result<CmdOutput> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    run_capture(cmd, None, CMD_TIMEOUT)?.ok()
}
