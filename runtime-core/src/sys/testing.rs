//! Test-only kernel calls: forking a child from the (multi-threaded) test harness, and
//! raw syscalls whose errno a seccomp test checks.

/// Run `f` in a forked child and return its raw wait status. `f` and `before` must only
/// make async-signal-safe calls (raw syscalls, no allocation, no locks): the test
/// harness is multi-threaded. The child exits with `f`'s result, 100 when `before` fails.
pub(crate) fn fork_child(before: fn() -> bool, f: &dyn Fn() -> i32) -> i32 {
    let pid = fork_child_start(before, f);
    super::waitpid(pid).expect("waitpid")
}

/// [`fork_child`] without the wait: the child's pid, for a parent that talks to it
/// first (then [`super::waitpid`]).
pub(crate) fn fork_child_start(before: fn() -> bool, f: &dyn Fn() -> i32) -> i32 {
    // SAFETY: the child only runs `before` and `f`, which the callers (seccomp tests)
    // keep to async-signal-safe calls, then _exit, which never returns.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        let code = if before() { f() } else { 100 };
        // SAFETY: _exit is async-signal-safe and never returns.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Whether a raw wait status is a normal exit, and its code.
pub(crate) fn exited(status: i32) -> Option<i32> {
    libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status))
}

/// PR_SET_NO_NEW_PRIVS, raw (for [`fork_child`]'s `before`).
pub(crate) fn no_new_privs() -> bool {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 }
}

/// The errno of a raw syscall result (0 when it succeeded).
fn errno_of(r: libc::c_long) -> i32 {
    if r < 0 {
        // SAFETY: reading errno of this thread.
        unsafe { *libc::__errno_location() }
    } else {
        0
    }
}

/// Syscall number `nr` without arguments, raw: its errno.
pub(crate) fn syscall_errno(nr: libc::c_long) -> i32 {
    // SAFETY: a raw syscall without pointer arguments; the tests pick numbers that
    // take none, or that the kernel or a filter refuses.
    errno_of(unsafe { libc::syscall(nr) })
}

/// The number of getppid(2), for [`syscall_errno`].
pub(crate) const SYS_GETPPID: libc::c_long = libc::SYS_getppid;

/// getpriority(which, who), raw: its errno.
pub(crate) fn getpriority_errno(which: i32, who: i32) -> i32 {
    // SAFETY: raw syscall with integer arguments.
    errno_of(unsafe { libc::syscall(libc::SYS_getpriority, which, who) })
}

/// setpriority(which, who, prio), raw: its errno.
pub(crate) fn setpriority_errno(which: i32, who: i32, prio: i32) -> i32 {
    // SAFETY: raw syscall with integer arguments.
    errno_of(unsafe { libc::syscall(libc::SYS_setpriority, which, who, prio) })
}

/// personality(p), raw: its errno.
pub(crate) fn personality_errno(p: u64) -> i32 {
    // SAFETY: raw syscall with an integer argument.
    errno_of(unsafe { libc::syscall(libc::SYS_personality, p) })
}

/// getppid(), raw: its errno.
pub(crate) fn getppid_errno() -> i32 {
    // SAFETY: raw syscall without arguments.
    errno_of(unsafe { libc::syscall(libc::SYS_getppid) })
}
