//! `kill`: send a signal to the container's init, or with `all` to every process in
//! its cgroup (frozen first for SIGKILL so nothing forks away, as runc does).
//! Signals go through a pidfd, so a recycled pid is never hit. See pidfd_send_signal(2).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::Container;
use crate::error::Error;
use crate::state::Status;
use crate::sys;
use crate::sys::c;

/// Parse a signal given as a number, `KILL` or `SIGKILL` (case-insensitive). Number 0
/// is accepted as kill(2) and runc take it: no signal, only the check that the process
/// is there (`runrs kill ID 0` as a liveness probe).
pub fn parse_signal(s: &str) -> Result<i32, Error> {
    if let Ok(n) = s.parse::<i32>() {
        if (0..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::Usage(format!(
            "invalid signal number {n}: unable to signal init: invalid argument"
        )));
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => c::SIGHUP,
        "INT" => c::SIGINT,
        "QUIT" => c::SIGQUIT,
        "ILL" => c::SIGILL,
        "TRAP" => c::SIGTRAP,
        "ABRT" | "IOT" => c::SIGABRT,
        "BUS" => c::SIGBUS,
        "FPE" => c::SIGFPE,
        "KILL" => c::SIGKILL,
        "USR1" => c::SIGUSR1,
        "SEGV" => c::SIGSEGV,
        "USR2" => c::SIGUSR2,
        "PIPE" => c::SIGPIPE,
        "ALRM" => c::SIGALRM,
        "TERM" => c::SIGTERM,
        "STKFLT" => c::SIGSTKFLT,
        "CHLD" | "CLD" => c::SIGCHLD,
        "CONT" => c::SIGCONT,
        "STOP" => c::SIGSTOP,
        "TSTP" => c::SIGTSTP,
        "TTIN" => c::SIGTTIN,
        "TTOU" => c::SIGTTOU,
        "URG" => c::SIGURG,
        "XCPU" => c::SIGXCPU,
        "XFSZ" => c::SIGXFSZ,
        "VTALRM" => c::SIGVTALRM,
        "PROF" => c::SIGPROF,
        "WINCH" => c::SIGWINCH,
        "IO" | "POLL" => c::SIGIO,
        "PWR" => c::SIGPWR,
        "SYS" => c::SIGSYS,
        _ => {
            let (min, max) = (crate::sys::sigrtmin(), crate::sys::sigrtmax());
            let n = if let Some(rest) = name.strip_prefix("RTMIN") {
                rt_offset(rest, '+').map(|off| min + off)
            } else if let Some(rest) = name.strip_prefix("RTMAX") {
                rt_offset(rest, '-').map(|off| max - off)
            } else {
                None
            };
            match n {
                Some(n) if (min..=max).contains(&n) => n,
                _ => return Err(Error::Usage(format!("unknown signal {s:?}"))),
            }
        }
    };
    Ok(n)
}

/// The offset of `RTMIN+n` / `RTMAX-n`: nothing (0) or `sign` and decimal digits; at
/// most the size of the real-time range, so the sum cannot overflow.
fn rt_offset(rest: &str, sign: char) -> Option<i32> {
    if rest.is_empty() {
        return Some(0);
    }
    let digits = rest.strip_prefix(sign)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse::<i32>()
        .ok()
        .filter(|&n| n <= sys::sigrtmax() - sys::sigrtmin())
}

/// Signal one process by pid through a pidfd (pidfd_send_signal(2)), so a pid that
/// was recycled since the caller learnt it cannot be hit by mistake once opened.
pub fn signal_pid(pid: i32, sig: i32) -> Result<(), sys::SysError> {
    let fd = sys::pidfd_open(pid)?;
    signal_pidfd(fd.as_fd(), sig, pid)
}

/// A handle on a process that stays its own after the process is gone: opened while
/// the process is known to be alive (right after it was started), it never refers to
/// a later process that gets the same pid. `None` when the process is already gone.
pub fn process_handle(pid: i32) -> Option<OwnedFd> {
    sys::pidfd_open(pid).ok()
}

/// Signal the process `pidfd` refers to (`pid` only names it in the error); ESRCH once
/// it has exited and been reaped, whoever has its pid now.
pub fn signal_pidfd(pidfd: BorrowedFd<'_>, sig: i32, pid: i32) -> Result<(), sys::SysError> {
    sys::pidfd_send_signal(pidfd, sig, pid)
}

impl Container {
    /// Send `sig` to init, or to every process of the container with `all`.
    pub fn kill(&self, sig: i32, all: bool) -> Result<(), Error> {
        let status = self.status();
        if all {
            return self.signal_all(sig);
        }
        if status == Status::Stopped {
            return Err(Error::NotRunning(self.id().to_string()));
        }
        match signal_pid(self.pid(), sig) {
            Err(e) if e.errno() == Some(c::ESRCH) => {
                return Err(Error::NotRunning(self.id().to_string()))
            }
            r => r?,
        }
        // A frozen process does not die until it is thawed: thaw for SIGKILL (as runc).
        if sig == c::SIGKILL && status == Status::Paused {
            crate::cgroups::freeze(&self.state.cgroup, false)?;
        }
        Ok(())
    }

    /// Signal every process in the container's cgroup.
    pub fn signal_all(&self, sig: i32) -> Result<(), Error> {
        let cg = &self.state.cgroup;
        let freeze = sig == c::SIGKILL && !self.frozen();
        if freeze {
            let _ = crate::cgroups::freeze(cg, true);
        }
        for pid in cg.pids()? {
            // Processes of the container (ESRCH when one exited meanwhile).
            let _ = sys::kill(pid, sig);
        }
        if freeze || (sig == c::SIGKILL && self.frozen()) {
            let _ = crate::cgroups::freeze(cg, false);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_signal;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9").expect("n"), 9);
        assert_eq!(parse_signal("KILL").expect("n"), 9);
        assert_eq!(parse_signal("sigterm").expect("n"), 15);
        assert_eq!(
            parse_signal("SIGRTMIN+1").expect("n"),
            crate::sys::sigrtmin() + 1
        );
        assert!(parse_signal("FOO").is_err());
        // Issue 16: 0 is the liveness check (kill(2), runc), not an invalid number.
        assert_eq!(parse_signal("0").expect("n"), 0);
        assert!(parse_signal("65").is_err());
        assert!(parse_signal("-1").is_err());
        assert_eq!(
            parse_signal("RTMAX-2").expect("n"),
            crate::sys::sigrtmax() - 2
        );
        assert_eq!(parse_signal("sigrtmin").expect("n"), crate::sys::sigrtmin());
    }

    // Found by fuzz_signal: offsets past the real-time range were taken ("RTMIN65" as
    // signal 99, "RTMAX-255" as -191), so were a `-` after RTMIN (SIGRTMIN-3 is SIGSYS
    // on glibc) and offsets that are not numbers (plain SIGRTMIN).
    #[test]
    fn rt_offsets_outside_the_range_or_malformed_are_errors() {
        for s in [
            "RTMIN65",
            "RTMAX-255",
            "RTMIN+100",
            "RTMIN-3",
            "RTMINfoo",
            "RTMIN+",
            "RTMAX+1",
            "RTMIN+-1",
        ] {
            assert!(parse_signal(s).is_err(), "{s}");
        }
        assert_eq!(
            parse_signal("RTMIN+30").ok(),
            Some(crate::sys::sigrtmin() + 30)
        );
    }

    // Seen while fixing the above: the offset was added unchecked, so
    // `SIGRTMIN+2147483647` overflowed i32 (a panic in debug builds).
    #[test]
    fn rt_offset_overflow_is_an_error() {
        assert!(parse_signal("SIGRTMIN+2147483647").is_err());
        assert!(parse_signal("RTMAX-2147483647").is_err());
    }
}
