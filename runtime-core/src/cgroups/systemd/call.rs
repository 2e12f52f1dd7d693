//! How the systemd driver reaches systemd. A binary that links the D-Bus client (the
//! runrs CLI, through [`link_dbus`]) calls systemd in process. Any other (the shim)
//! runs the `runrs` binary installed beside itself as a helper for one request: the
//! request as JSON on the helper's stdin, the answer as JSON on its stdout.
//!
//! Why: zbus and its executor are about 1 MB of the binary, and every container has a
//! shim; linked into the shim they cost each one ~450 KiB of resident memory whether
//! the container uses the systemd driver or not (README "Benchmarks"). The helper costs
//! one short-lived process per unit start, update and stop, on the systemd driver only.
//! The fn pointer below is the only path from the shim's code to zbus, and the shim
//! never sets it, so the linker drops the client from the shim.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::{Prop, UserBus};
use crate::reap;

/// One request to systemd's Manager.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Call {
    /// The Manager's ControlGroup property: the cgroup of the manager itself (`/` for
    /// the system instance, `/user.slice/user-<uid>.slice/user@<uid>.service` for a
    /// user's).
    ManagerCgroup,
    /// StartTransientUnit (`reuse`: an existing unit of that name is fine).
    Start {
        /// The unit.
        name: String,
        /// Its properties.
        props: Vec<(String, Prop)>,
        /// Whether an existing unit is used as it is.
        reuse: bool,
    },
    /// SetUnitProperties.
    Set {
        /// The unit.
        name: String,
        /// The properties to change.
        props: Vec<(String, Prop)>,
    },
    /// StopUnit.
    Stop {
        /// The unit.
        name: String,
    },
}

/// A request and the systemd instance it goes to (None: the system's).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    /// The user's instance, for the driver run by an unprivileged user.
    #[serde(default)]
    pub user: Option<UserBus>,
    /// What to do.
    pub call: Call,
}

/// A way to carry out a request: a string for ManagerCgroup, empty otherwise; the
/// error is a sentence for the user.
type Client = fn(&Request) -> Result<String, String>;

/// The in-process client, in a binary that linked it.
static IN_PROCESS: OnceLock<Client> = OnceLock::new();

/// Set in the helper's environment (and removed by it at once).
const HELPER_ENV: &str = "_RUNRS_SYSTEMD_DBUS";

/// The helper: the runrs CLI, installed beside the shim (deploy/install.sh).
const HELPER_BIN: &str = "runrs";

/// Send `r` to systemd; the error is a sentence for the user.
pub(crate) fn call(r: &Request) -> Result<String, String> {
    if let Some(in_process) = IN_PROCESS.get() {
        return in_process(r);
    }
    through_helper(&beside_self()?, &[], r)
}

/// `runrs` in the directory of this process' own binary.
fn beside_self() -> Result<PathBuf, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("find this binary's own path (for its D-Bus helper): {e}"))?;
    // A replaced binary reads as "<path> (deleted)": the directory is still right.
    Ok(exe.with_file_name(HELPER_BIN))
}

/// Run `helper` for the one request `r`, with `env` added to its environment.
pub(crate) fn through_helper(
    helper: &Path,
    env: &[(&str, &str)],
    r: &Request,
) -> Result<String, String> {
    let request = serde_json::to_vec(r).map_err(|e| format!("encode the D-Bus request: {e}"))?;
    let shown = helper.display();
    let mut cmd = Command::new(helper);
    cmd.arg0("runrs-systemd-dbus")
        .env(HELPER_ENV, "1")
        .envs(env.iter().copied());
    // Its three pipes and nothing else of the caller's (a shim's listener, fifos).
    crate::sys::cloexec_from_on_exec(&mut cmd, 3);
    // The helper reads all of its request before it writes anything, and writes to
    // stderr only when it fails at the end.
    let out = reap::output(&mut cmd, &request).map_err(|e| {
        format!(
            "run the D-Bus helper {shown}: {e} (the shim reaches systemd through the \
             runrs binary installed beside it)"
        )
    })?;
    match serde_json::from_slice::<Result<String, String>>(&out.stdout) {
        Ok(answer) => answer,
        Err(_) => {
            let status = out.status;
            let err = String::from_utf8_lossy(&out.stderr);
            let err = err.trim();
            Err(format!(
                "the D-Bus helper {shown} gave no answer ({status}){}{err} (is it runrs, \
                 of the shim's version?)",
                if err.is_empty() { "" } else { ": " }
            ))
        }
    }
}

/// In a process started as the helper: serve the one request and exit.
fn serve_if_helper() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    std::env::remove_var(HELPER_ENV);
    let mut request = Vec::new();
    let answer: Result<String, String> = match std::io::stdin().read_to_end(&mut request) {
        Err(e) => Err(format!("D-Bus helper: read the request: {e}")),
        Ok(_) => match serde_json::from_slice::<Request>(&request) {
            Err(e) => Err(format!("D-Bus helper: malformed request: {e}")),
            Ok(c) => super::dbus::run(&c).map_err(|e| e.to_string()),
        },
    };
    let body = serde_json::to_vec(&answer).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let sent = out.write_all(&body).and_then(|()| out.flush()).is_ok();
    std::process::exit(if sent { 0 } else { 1 })
}

/// Link the D-Bus client into this binary: its systemd-driver calls go to systemd in
/// process, and a process started as some other binary's D-Bus helper serves that one
/// request and exits here. Call it first in `main`, right after
/// [`crate::entry::maybe_run`], before any thread exists.
pub fn link_dbus() {
    serve_if_helper();
    let _ = IN_PROCESS.set(|r| super::dbus::run(r).map_err(|e| e.to_string()));
}
