//! Waiting for children runtime-core starts itself (hooks, criu). In a process with a
//! single process-wide reaper (the shim, DESIGN.md "One reaper"), a direct waitpid here
//! would race with it; such a process installs a [`ChildWaiter`] that hands over the
//! status its reaper collected. Without one, waitpid is used.
//!
//! A reaper keeps no exit that nobody asked for: a status is handed to the waiter of
//! that pid, or recorded in the [`ExitWindow`]s open at that moment, or dropped. A caller
//! opens a window *before* it starts a child and waits through that window, so an exit
//! that comes before the wait is kept, while the exit of an earlier process that had the
//! same pid (pids are recycled) can never be taken for the new child's.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{OnceLock, PoisonError, RwLock, RwLockWriteGuard};

/// Something that can report a child's exit on behalf of runtime-core.
pub trait ChildWaiter: Send + Sync {
    /// Start recording the exits nobody waits for yet; returns the window's id.
    fn open_window(&self) -> u64;
    /// Block until child `pid` (started after `window` was opened) has exited; returns
    /// its raw wait status (as waitpid).
    fn wait(&self, window: u64, pid: i32) -> std::io::Result<i32>;
    /// Stop recording for `window` and forget what it recorded.
    fn close_window(&self, window: u64);
}

static WAITER: OnceLock<Box<dyn ChildWaiter>> = OnceLock::new();

/// std's `Command::spawn` reaps the child itself when the exec fails, and panics if
/// somebody else reaped it first ("wait() should either return Ok or panic"): with a
/// process-wide reaper, a hook, criu or logging binary that cannot be exec'd would
/// abort the shim of a whole pod. Spawns hold this shared while they run ([`spawn`]);
/// the reaper holds it exclusively around its waitpid(-1) loop ([`hold_spawns`]).
static SPAWNS: RwLock<()> = RwLock::new(());

/// `cmd.spawn()`, never raced by a process-wide reaper (see [`SPAWNS`]). Every std
/// spawn of runtime-core and the shim goes through here.
pub fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
    let _shared = SPAWNS.read().unwrap_or_else(PoisonError::into_inner);
    cmd.spawn()
}

/// For a process-wide reaper: hold this while collecting exits with waitpid(-1); it
/// waits for spawns in flight (a few milliseconds: fork and exec) and keeps new ones out.
pub fn hold_spawns() -> RwLockWriteGuard<'static, ()> {
    SPAWNS.write().unwrap_or_else(PoisonError::into_inner)
}

/// Install the process-wide waiter (once; later calls are ignored and return false).
pub fn set_child_waiter(w: Box<dyn ChildWaiter>) -> bool {
    WAITER.set(w).is_ok()
}

/// The exits of children started while it is open, for [`ExitWindow::wait`]. Open it
/// before starting the child; dropping it forgets what it recorded.
pub struct ExitWindow {
    id: Option<u64>,
}

impl ExitWindow {
    /// Opens a window on the process-wide reaper, if there is one.
    pub fn open() -> Self {
        Self {
            id: WAITER.get().map(|w| w.open_window()),
        }
    }

    /// Wait for child `pid`, started after this window was opened: through the
    /// installed reaper, or waitpid when there is none.
    pub fn wait(&self, pid: i32) -> std::io::Result<i32> {
        if let (Some(w), Some(id)) = (WAITER.get(), self.id) {
            return w.wait(id, pid);
        }
        crate::sys::waitpid(pid)
    }
}

impl Drop for ExitWindow {
    fn drop(&mut self) {
        if let (Some(w), Some(id)) = (WAITER.get(), self.id) {
            w.close_window(id);
        }
    }
}

/// Run `cmd` to its end with `input` on its stdin, and collect its stdout and stderr:
/// `Command::output` for runtime-core's helper programs (newuidmap, the D-Bus helper),
/// with the exit taken through [`ExitWindow`] so a process-wide reaper is never raced.
/// For programs that read all their input first and write little to stderr (stdout
/// is read to its end before stderr).
pub fn output(cmd: &mut Command, input: &[u8]) -> std::io::Result<Output> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let window = ExitWindow::open();
    let mut child = spawn(cmd)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A program that does not read its input (or died) shows in its status.
        let _ = stdin.write_all(input);
    }
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let read_out = match child.stdout.take() {
        Some(mut o) => o.read_to_end(&mut stdout).map(drop),
        None => Ok(()),
    };
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_end(&mut stderr);
    }
    // Always reaped, even when reading failed.
    let raw = window.wait(child.id() as i32)?;
    read_out?;
    Ok(Output {
        status: ExitStatus::from_raw(raw),
        stdout,
        stderr,
    })
}

/// Exit code of a raw wait status: the code, or 128 + signal.
pub fn exit_code(status: i32) -> i32 {
    crate::sys::exit_code(status)
}
