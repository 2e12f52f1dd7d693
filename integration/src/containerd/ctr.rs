//! Driving `ctr` against a private containerd, and reading what it prints
//! (`ctr task ls`, `ctr task ps`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cmd::{run_capture, CmdOutput};

/// Deadline of one `ctr` invocation.
pub const CTR_TIMEOUT: Duration = Duration::from_secs(30);

/// `ctr` pointed at one containerd and namespace.
#[derive(Debug, Clone)]
pub struct Ctr {
    bin: PathBuf,
    address: PathBuf,
    /// The namespace every command uses.
    pub namespace: String,
}

/// One row of `ctr task ls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// Task (container) id.
    pub id: String,
    /// Host pid of its init.
    pub pid: i64,
    /// RUNNING, STOPPED, CREATED, PAUSED, UNKNOWN.
    pub status: String,
}

impl Ctr {
    /// `bin --address address --namespace namespace`.
    pub fn new(bin: PathBuf, address: PathBuf, namespace: &str) -> Self {
        Self {
            bin,
            address,
            namespace: namespace.to_owned(),
        }
    }

    /// The ctr binary.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// A command `ctr --address … --namespace … args…` (not started).
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--address")
            .arg(&self.address)
            .arg("--namespace")
            .arg(&self.namespace)
            .args(args)
            // Whatever the caller's environment says, this instance and namespace.
            .env_remove("CONTAINERD_ADDRESS")
            .env_remove("CONTAINERD_NAMESPACE")
            .env("CONTAINERD_SNAPSHOTTER", "overlayfs");
        cmd
    }

    /// Runs ctr with `stdin` (None: /dev/null) and captures its output.
    pub fn run<I, S>(&self, args: I, stdin: Option<Vec<u8>>) -> Result<CmdOutput>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_capture(self.command(args), stdin, CTR_TIMEOUT)
    }

    /// Runs ctr and requires exit status 0.
    pub fn ok<I, S>(&self, args: I) -> Result<CmdOutput>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run(args, None)?.ok()
    }

    /// `ctr task ls`, parsed.
    pub fn tasks(&self) -> Result<Vec<TaskRow>> {
        let out = self.ok(["task", "ls"])?;
        Ok(parse_task_ls(&out.stdout))
    }

    /// The `ctr task ls` row of `id`, if listed.
    pub fn task(&self, id: &str) -> Result<Option<TaskRow>> {
        Ok(self.tasks()?.into_iter().find(|t| t.id == id))
    }

    /// The pids `ctr task ps id` lists.
    pub fn task_pids(&self, id: &str) -> Result<Vec<i64>> {
        let out = self.ok(["task", "ps", id])?;
        parse_task_ps(&out.stdout).with_context(|| format!("parse `ctr task ps`: {out}"))
    }

    /// Best-effort removal of container `id` (task killed and deleted, container removed),
    /// for a check that failed half way. Errors are ignored: it may be gone already.
    pub fn force_remove(&self, id: &str) {
        let quiet = Duration::from_secs(15);
        for args in [
            vec!["task", "kill", "-s", "SIGKILL", id],
            vec!["task", "delete", "-f", id],
            vec!["container", "rm", id],
        ] {
            let _ = run_capture(self.command(args), None, quiet);
        }
    }
}

/// Parses `ctr task ls`: a header `TASK PID STATUS`, then one row per task.
pub fn parse_task_ls(text: &str) -> Vec<TaskRow> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some(TaskRow {
                id: f.next()?.to_owned(),
                pid: f.next()?.parse().ok()?,
                status: f.next()?.to_owned(),
            })
        })
        .collect()
}

/// Parses `ctr task ps`: a header `PID INFO`, then one pid per row.
pub fn parse_task_ps(text: &str) -> Result<Vec<i64>> {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let first = l.split_whitespace().next().unwrap_or_default();
            first
                .parse::<i64>()
                .with_context(|| format!("not a pid: {first:?} in {l:?}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_task_ls_and_ps() -> Result<()> {
        let ls =
            "TASK            PID      STATUS    \nrunrs-e2e-a    12427    RUNNING\nb 0 STOPPED\n";
        assert_eq!(
            parse_task_ls(ls),
            vec![
                TaskRow {
                    id: "runrs-e2e-a".into(),
                    pid: 12427,
                    status: "RUNNING".into()
                },
                TaskRow {
                    id: "b".into(),
                    pid: 0,
                    status: "STOPPED".into()
                }
            ]
        );
        assert!(parse_task_ls("TASK    PID    STATUS    \n").is_empty());
        assert_eq!(
            parse_task_ps("PID      INFO\n12427    -\n12441    -\n")?,
            vec![12427, 12441]
        );
        assert!(parse_task_ps("PID INFO\nx -\n").is_err());
        Ok(())
    }
}
