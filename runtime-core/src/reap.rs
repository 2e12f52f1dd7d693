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

use std::sync::OnceLock;

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

/// Exit code of a raw wait status: the code, or 128 + signal.
pub fn exit_code(status: i32) -> i32 {
    crate::sys::exit_code(status)
}
