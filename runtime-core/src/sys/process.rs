//! Processes: fork (and clone3 into a cgroup), what runs between fork and exec, execve,
//! pidfds and signals, waiting, ids, namespaces, prctl, rlimits, capabilities.
//! See fork(2), clone3(2), execve(2), pidfd_open(2), pidfd_send_signal(2), wait(2),
//! setns(2), unshare(2), capset(2), setrlimit(2).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use super::{SysError, SysResult};

/// setns(2) on a namespace descriptor.
pub fn setns(fd: BorrowedFd<'_>, nstype: i32, what: &str) -> SysResult<()> {
    // SAFETY: setns only reads the descriptor number and the flag.
    if unsafe { libc::setns(fd.as_raw_fd(), nstype) } < 0 {
        return Err(SysError::last("setns", what.to_string()));
    }
    Ok(())
}

/// unshare(2).
pub fn unshare(flags: i32) -> SysResult<()> {
    // SAFETY: unshare takes a flag word only.
    if unsafe { libc::unshare(flags) } < 0 {
        return Err(SysError::last("unshare", describe_clone_flags(flags)));
    }
    Ok(())
}

/// pidfd_open(2).
pub fn pidfd_open(pid: i32) -> SysResult<OwnedFd> {
    // SAFETY: pidfd_open takes plain integers.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(SysError::last("pidfd_open", pid.to_string()));
    }
    // SAFETY: pidfd_open returned a new descriptor that nothing else owns.
    Ok(unsafe { super::fd::owned(r) })
}

/// prctl(2) with integer arguments.
pub fn prctl(option: i32, arg2: u64, arg3: u64, what: &str) -> SysResult<i32> {
    // SAFETY: every prctl used by runtime-core takes integer arguments only.
    let r = unsafe { libc::prctl(option, arg2, arg3, 0u64, 0u64) };
    if r < 0 {
        return Err(SysError::last("prctl", what.to_string()));
    }
    Ok(r)
}

/// Render CLONE_NEW* flags by name, for error messages.
pub fn describe_clone_flags(flags: i32) -> String {
    let table: [(&str, i32); 8] = [
        ("CLONE_NEWUSER", libc::CLONE_NEWUSER),
        ("CLONE_NEWNS", libc::CLONE_NEWNS),
        ("CLONE_NEWUTS", libc::CLONE_NEWUTS),
        ("CLONE_NEWIPC", libc::CLONE_NEWIPC),
        ("CLONE_NEWNET", libc::CLONE_NEWNET),
        ("CLONE_NEWCGROUP", libc::CLONE_NEWCGROUP),
        ("CLONE_NEWTIME", CLONE_NEWTIME),
        ("CLONE_NEWPID", libc::CLONE_NEWPID),
    ];
    let names: Vec<&str> = table
        .iter()
        .filter(|(_, f)| flags & f != 0)
        .map(|(n, _)| *n)
        .collect();
    if names.is_empty() {
        format!("{flags:#x}")
    } else {
        names.join("|")
    }
}

/// CLONE_NEWTIME (linux/sched.h; not in every libc).
pub const CLONE_NEWTIME: i32 = 0x80;

/// pidfd_send_signal(2): signal the process `pidfd` refers to (`pid` only names it in
/// the error); ESRCH once it has exited and been reaped, whoever has its pid now.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32, pid: i32) -> SysResult<()> {
    // SAFETY: the pidfd is open; a null siginfo means a plain kill-like signal.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        return Err(SysError::last(
            "pidfd_send_signal",
            format!("pid {pid} signal {sig}"),
        ));
    }
    Ok(())
}

/// kill(2). A negative `pid` signals a process group. Allocates only on failure.
pub fn kill(pid: i32, sig: i32) -> SysResult<()> {
    // SAFETY: kill takes plain integers.
    if unsafe { libc::kill(pid, sig) } < 0 {
        return Err(SysError::last("kill", format!("pid {pid} signal {sig}")));
    }
    Ok(())
}

/// waitpid(2) for the child `pid`, blocking, retrying EINTR: its raw wait status.
pub fn waitpid(pid: i32) -> io::Result<i32> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a valid int.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(status);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// waitpid(-1, WNOHANG): one exited child (pid, raw status), None when none is waiting
/// (or there are no children).
pub fn wait_any_nohang() -> Option<(i32, i32)> {
    let mut status = 0;
    // SAFETY: waitpid writes into `status`, a valid int.
    let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    (r > 0).then_some((r, status))
}

/// Exit code of a raw wait status: the code, or 128 + signal (255 for anything else).
pub fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

/// How a child ended, seen without reaping it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exited {
    /// exit(status).
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

/// waitid(P_PIDFD, WEXITED | WNOWAIT | WNOHANG): how our child behind `pidfd` ended,
/// None when it runs, is not our child, or on error. The child stays unreaped.
pub fn peek_exit(pidfd: BorrowedFd<'_>) -> Option<Exited> {
    // SAFETY: an all-zero siginfo_t is a valid value for waitid to overwrite.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid with P_PIDFD and WNOWAIT only inspects our own child, without
    // reaping it; `info` is writable.
    let r = unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
        )
    };
    if r < 0 {
        return None;
    }
    // SAFETY: waitid filled `info` for an exited child (si_pid != 0 checked below),
    // for which si_pid and si_status are the valid union members.
    let (pid, code, st) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
    if pid == 0 {
        return None;
    }
    Some(match code {
        libc::CLD_EXITED => Exited::Code(st),
        _ => Exited::Signal(st),
    })
}

/// How many threads this process has (st_nlink of /proc/self/task is 2 + threads);
/// None when procfs cannot tell.
fn thread_count() -> Option<u64> {
    // SAFETY: an all-zero `struct stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: the path is a valid C string and `st` writable.
    if unsafe { libc::stat(c"/proc/self/task".as_ptr(), &mut st) } < 0 {
        return None;
    }
    Some(st.st_nlink.saturating_sub(2))
}

/// Refuse to fork a process procfs shows to have more than one thread: the child of a
/// multi-threaded process may only make async-signal-safe calls, and the callers of
/// [`fork`] and [`clone3_into_cgroup`] run arbitrary code in it.
fn single_threaded(call: &'static str) -> SysResult<()> {
    match thread_count() {
        Some(n) if n > 1 => Err(SysError::new(
            call,
            format!("a process with {n} threads"),
            io::Error::from_raw_os_error(libc::EDEADLK),
        )),
        _ => Ok(()),
    }
}

/// fork(2) of a single-threaded process (checked: an error otherwise). Returns 0 in
/// the child and the child's pid in the parent.
pub fn fork() -> SysResult<i32> {
    single_threaded("fork")?;
    // SAFETY: this process is single-threaded (checked just above, and nothing here
    // starts a thread in between), so the child is a full copy in which any code may run.
    match unsafe { libc::fork() } {
        -1 => Err(SysError::last("fork", "")),
        pid => Ok(pid),
    }
}

/// clone3 flag (linux/sched.h; libc's constant is an overflowing c_int).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The kernel's `struct clone_args` (linux/sched.h), up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C, align(8))]
#[derive(Default)]
pub(crate) struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// clone3(CLONE_INTO_CGROUP) of a single-threaded process (checked): fork(2) with the
/// child placed in the cgroup2 directory `cgroup` is open on. Returns 0 in the child
/// and the child's pid in the parent. The error keeps the errno, so the caller can
/// fall back to [`fork`] on ENOSYS, E2BIG or EINVAL (kernels before 5.7).
pub fn clone3_into_cgroup(cgroup: BorrowedFd<'_>, dir: &Path) -> SysResult<i32> {
    single_threaded("clone3")?;
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed; without CLONE_VM or a
    // stack the child gets a copy of this (single-threaded, checked above) process and
    // returns here like fork's child. glibc's cached tid in the child is stale, which
    // only matters to pthread_kill of itself (raise), which the kernel then refuses
    // (the tid is in another process).
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if r < 0 {
        return Err(SysError::last(
            "clone3(CLONE_INTO_CGROUP)",
            dir.display().to_string(),
        ));
    }
    Ok(r as i32)
}

/// Make `cmd`'s child keep `fd` (and, best effort, every open descriptor of
/// `also`) across its execve, by clearing FD_CLOEXEC between fork and exec. `fd` must
/// stay open until `cmd` is spawned (else the spawn fails with EBADF).
pub fn keep_open_on_exec(cmd: &mut Command, fd: BorrowedFd<'_>, also: std::ops::Range<RawFd>) {
    let raw = fd.as_raw_fd();
    // SAFETY: the closure runs between fork and exec and only calls fcntl, which is
    // async-signal-safe; it allocates nothing and touches no memory shared with other
    // threads.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(raw, libc::F_SETFD, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            for fd in also.clone() {
                libc::fcntl(fd, libc::F_SETFD, 0);
            }
            Ok(())
        });
    }
}

/// Make `cmd`'s child mark every descriptor from `first` up close-on-exec before its
/// execve, so it gets only its stdio (and what `first` leaves open). A kernel without
/// close_range (< 5.11) leaves the descriptors as they are.
pub fn cloexec_from_on_exec(cmd: &mut Command, first: u32) {
    // SAFETY: the closure runs between fork and exec; it makes one raw syscall
    // (async-signal-safe) and does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            let _ = super::close_range_cloexec(first);
            Ok(())
        });
    }
}

/// Restore default signal dispositions and an empty mask.
pub fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: resetting a disposition to SIG_DFL is always valid.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    // SAFETY: an empty sigset is a valid mask; the old mask is not needed.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// getcwd(2) as the kernel reports it (no libc path fix-up): whether it starts with
/// '/', i.e. the working directory lies under the process' root (the kernel prefixes
/// "(unreachable)" otherwise).
pub fn cwd_is_reachable() -> bool {
    let mut buf = [0u8; libc::PATH_MAX as usize];
    // SAFETY: the kernel writes at most buf.len() bytes into `buf`.
    let r = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    r > 0 && buf[0] == b'/'
}

/// execve(2); returns only on failure, with the error.
pub fn execve(path: &CString, argv: &[CString], envp: &[CString], what: &str) -> SysError {
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // SAFETY: all pointers are valid NUL-terminated strings, and both arrays are
    // NULL-terminated; they outlive the call (which only returns on failure).
    unsafe {
        libc::execve(path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr());
    }
    SysError::last("execve", what)
}

/// setsid(2); its failure (already a group leader) is ignored, as every caller does.
pub fn setsid() {
    // SAFETY: setsid takes no arguments.
    unsafe { libc::setsid() };
}

/// getpid(2).
pub fn getpid() -> i32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

/// getuid(2) and getgid(2).
pub fn real_ids() -> (u32, u32) {
    // SAFETY: getuid/getgid have no preconditions.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// geteuid(2) and getegid(2).
pub fn effective_ids() -> (u32, u32) {
    // SAFETY: geteuid/getegid have no preconditions.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// setgroups(2).
pub fn setgroups(groups: &[u32]) -> SysResult<()> {
    // SAFETY: `groups` is a valid slice of gid_t of the given length.
    if unsafe { libc::setgroups(groups.len(), groups.as_ptr()) } < 0 {
        return Err(SysError::last("setgroups", format!("{groups:?}")));
    }
    Ok(())
}

/// setresgid(2) with all three ids `gid`.
pub fn setresgid(gid: u32) -> SysResult<()> {
    // SAFETY: setresgid takes ids by value.
    if unsafe { libc::setresgid(gid, gid, gid) } < 0 {
        return Err(SysError::last("setresgid", gid.to_string()));
    }
    Ok(())
}

/// setresuid(2) with all three ids `uid`.
pub fn setresuid(uid: u32) -> SysResult<()> {
    // SAFETY: setresuid takes ids by value.
    if unsafe { libc::setresuid(uid, uid, uid) } < 0 {
        return Err(SysError::last("setresuid", uid.to_string()));
    }
    Ok(())
}

/// setdomainname(2).
pub fn setdomainname(d: &str) -> SysResult<()> {
    // SAFETY: `d` points to d.len() valid bytes.
    if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } < 0 {
        return Err(SysError::last("setdomainname", d));
    }
    Ok(())
}

/// setrlimit(2) of `resource` (an RLIMIT_* value); the bare OS error on failure.
pub fn setrlimit(resource: u32, soft: u64, hard: u64) -> io::Result<()> {
    let rl = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `rl` is a valid rlimit struct for the duration of the call.
    if unsafe { libc::setrlimit(resource as libc::__rlimit_resource_t, &rl) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// capset(2) v3 of the calling thread: effective, permitted and inheritable sets.
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> SysResult<()> {
    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let hdr = CapHeader {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: `hdr` and `data` are the v3 header and two data structs capset expects.
    let r = unsafe { libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()) };
    if r < 0 {
        return Err(SysError::last(
            "capset",
            format!("eff={effective:#x} prm={permitted:#x} inh={inheritable:#x}"),
        ));
    }
    Ok(())
}

/// PR_SET_CHILD_SUBREAPER on or off (errors ignored, as by every caller).
pub fn set_child_subreaper(on: bool) {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag.
    unsafe {
        libc::prctl(
            libc::PR_SET_CHILD_SUBREAPER,
            u64::from(on),
            0u64,
            0u64,
            0u64,
        )
    };
}

/// sysconf(_SC_CLK_TCK), None when unknown.
pub fn clock_ticks() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (t > 0).then_some(t as u64)
}

/// SIGRTMIN as this libc reserves it.
pub fn sigrtmin() -> i32 {
    libc::SIGRTMIN()
}

/// SIGRTMAX.
pub fn sigrtmax() -> i32 {
    libc::SIGRTMAX()
}

/// Wait up to `timeout` for process `pid` to be gone (exited and reaped), through a
/// pidfd; true when it is (or was already).
pub fn wait_gone(pid: i32, timeout: std::time::Duration) -> bool {
    let Ok(fd) = pidfd_open(pid) else {
        return true; // ESRCH: already gone
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    matches!(
        super::poll_one(std::os::fd::AsFd::as_fd(&fd), libc::POLLIN, ms),
        Ok(r) if r != 0
    )
}

/// The exit code of a raw wait status of a normal exit, None otherwise.
pub fn exited(status: i32) -> Option<i32> {
    libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status))
}

/// The signal of a raw wait status of a death by signal, None otherwise.
pub fn signaled(status: i32) -> Option<i32> {
    libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status))
}
