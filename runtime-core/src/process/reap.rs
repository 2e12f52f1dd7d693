//! Waiting for children runtime-core starts itself (hooks; later criu). In a process
//! with a single process-wide reaper (the shim, DESIGN.md "One reaper"), a direct
//! waitpid here would race with it; such a process installs a [`ChildWaiter`] that
//! hands over the status its reaper collected. Without one, waitpid is used.

use std::sync::OnceLock;

/// Something that can report a child's exit on behalf of runtime-core.
pub trait ChildWaiter: Send + Sync {
    /// Block until child `pid` has exited; returns its raw wait status (as waitpid).
    fn wait(&self, pid: i32) -> std::io::Result<i32>;
}

static WAITER: OnceLock<Box<dyn ChildWaiter>> = OnceLock::new();

/// Install the process-wide waiter (once; later calls are ignored and return false).
pub fn set_child_waiter(w: Box<dyn ChildWaiter>) -> bool {
    WAITER.set(w).is_ok()
}

/// Whether a process-wide reaper owns children (then nobody else may waitpid).
pub fn external_reaper() -> bool {
    WAITER.get().is_some()
}

/// Wait for child `pid` through the installed waiter, or waitpid.
pub fn wait_child(pid: i32) -> std::io::Result<i32> {
    if let Some(w) = WAITER.get() {
        return w.wait(pid);
    }
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a valid int.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(status);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Exit code of a raw wait status: the code, or 128 + signal.
pub fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}
