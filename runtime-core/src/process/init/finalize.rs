//! The last steps of init before Ready, shared by a container's init and an exec'd
//! process: cwd, rlimits, LSM labels, no_new_privs, seccomp, stdio ownership,
//! capabilities and the user switch.

use super::*;

/// What [`finalize`] needs: the process spec and the namespace facts it depends on.
pub(crate) struct Finalize<'a> {
    /// The process to run (the container's, or an exec's).
    pub process: &'a oci_spec::runtime::Process,
    /// The process is in a user namespace.
    pub userns: bool,
    /// The sync socket, for warnings and the seccomp listener.
    pub sock: BorrowedFd<'a>,
    /// Descriptors 3..3+N stay inheritable.
    pub preserve_fds: u32,
    /// The seccomp filter to load.
    pub seccomp: Option<&'a crate::seccomp::Program>,
    /// Exec labels to set, with the procfs to write them through and our pid there.
    pub labels: Option<(&'a lsm::ExecLabels, BorrowedFd<'a>, i32)>,
}

/// The program to exec, resolved.
pub(crate) struct Prepared {
    /// Resolved path of args[0].
    pub path: PathBuf,
    /// argv.
    pub args: Vec<String>,
    /// envp (HOME added when missing).
    pub env: Vec<String>,
}

/// The steps shared by a container's init and an exec'd process, from the umask to the
/// program lookup: cwd (checked to be inside the root), rlimits, LSM exec labels,
/// no_new_privs, seccomp (where runc loads it), stdio ownership, capabilities and the
/// user switch. Everything here can fail before Ready.
pub(crate) fn finalize(f: &Finalize<'_>) -> Result<Prepared, InitError> {
    let process = f.process;
    let s = f.sock;
    let u = process.user();
    sys::umask(u.umask().unwrap_or(0o022));
    sys::chdir(process.cwd()).map_err(|e| InitError::Sys("enter process.cwd", e))?;
    // A cwd reached through a leaked descriptor would lie outside our root, where
    // getcwd reports "(unreachable)" (CVE-2024-21626).
    if !execve::cwd_is_reachable() {
        return Err(InitError::CwdEscape(process.cwd().clone()));
    }

    if let Some(l) = process.rlimits() {
        rlimits::apply(l)?;
    }
    if let Some((labels, proc, pid)) = f.labels.filter(|l| !l.0.is_empty()) {
        lsm::apply_exec_labels(labels, proc, pid)?;
    }
    let nnp = process.no_new_privileges() == Some(true);
    if nnp {
        sys::prctl(c::PR_SET_NO_NEW_PRIVS, 1, 0, "PR_SET_NO_NEW_PRIVS")
            .map_err(|e| InitError::Sys("set no_new_privs", e))?;
    }
    // Like runc: without no_new_privs loading a filter needs CAP_SYS_ADMIN, so it
    // happens before capabilities are dropped; with it, as late as possible.
    if let Some(p) = f.seccomp.filter(|_| !nnp) {
        execve::cloexec_from(3 + f.preserve_fds);
        seccomp::kernel::install(p, s)?;
    }
    user::fix_stdio_owner(u.uid());
    let groups: Vec<u32> = u.additional_gids().clone().unwrap_or_default();
    let allow_setgroups = !f.userns || setgroups_allowed();
    if let Some(c) = process.capabilities() {
        let (sets, unknown) = capabilities::resolve(c);
        for n in unknown {
            send_log(
                s,
                "warn",
                &format!("capability {n} is not known to this kernel; ignored"),
            );
        }
        capabilities::apply_bounding(sets.bounding)?;
        sys::prctl(c::PR_SET_KEEPCAPS, 1, 0, "PR_SET_KEEPCAPS")
            .map_err(|e| InitError::Sys("keep capabilities", e))?;
        user::switch(u.uid(), u.gid(), &groups, allow_setgroups)
            .map_err(|e| InitError::Sys("set user", e))?;
        sys::prctl(c::PR_SET_KEEPCAPS, 0, 0, "PR_SET_KEEPCAPS")
            .map_err(|e| InitError::Sys("keep capabilities", e))?;
        for name in capabilities::apply(&sets)? {
            send_log(s, "debug", &format!("can't raise ambient capability {name}: it is not both permitted and inheritable"));
        }
    } else {
        user::switch(u.uid(), u.gid(), &groups, allow_setgroups)
            .map_err(|e| InitError::Sys("set user", e))?;
    }

    let args = process.args().clone().unwrap_or_default();
    let mut env = process.env().clone().unwrap_or_default();
    if execve::env_get(&env, "HOME").is_none() {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        env.push(format!("HOME={}", user::home_of(&passwd, u.uid())));
    }
    let path = execve::lookup(&args[0], &env)?;
    // Nothing we hold may reach startContainer hooks or the program.
    execve::cloexec_from(3 + f.preserve_fds);
    if let Some(p) = f.seccomp.filter(|_| nnp) {
        seccomp::kernel::install(p, s)?;
    }
    Ok(Prepared { path, args, env })
}
