//! The one entry point of the processes runtime-core starts from its own binary: runrs'
//! init (a container's first process, and each exec'd one) and the criu restore helper.
//! Every binary that links runtime-core calls [`maybe_run`] first in `main`, before any
//! thread exists; it returns only when this process is neither.

/// Run init or the criu helper if this process was started as one; never returns then.
pub fn maybe_run() {
    crate::criu::helper::run_if_helper();
    crate::process::init::run_if_init();
}
