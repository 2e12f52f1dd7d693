//! `runrs run` in the foreground: create + start, forward signals to the container's
//! init, relay its terminal if it has one, reap, delete, and exit with its status.
//! The CLI is a child subreaper, so the container's init (a grandchild) is reaped here.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::termios;
use runtime_core::host::{self as sys, c};
use runtime_core::StartOptions;
use runtime_core::{ConsoleSocket, CreateExtras, CreateOptions};
use runtime_core::{InitStdio, Reap};

/// Signals forwarded to the container (SIGCHLD is ours, SIGWINCH resizes the pty).
const FORWARD: [Signal; 10] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGCONT,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
];

/// A process run in the foreground: forwarded signals, an optional terminal relayed
/// to ours, and its exit status reaped here (the CLI is a child subreaper).
pub struct Foreground {
    sfd: SignalFd,
    ours: Option<UnixStream>,
}

impl Foreground {
    /// Become a subreaper and block the forwarded signals; for a terminal process
    /// without a console socket, make one whose other end `console_socket` receives.
    pub fn prepare(
        terminal: bool,
        console_socket: &mut Option<ConsoleSocket>,
    ) -> anyhow::Result<Self> {
        let mut ours = None;
        if terminal && console_socket.is_none() {
            let (a, b) = UnixStream::pair()?;
            *console_socket = Some(ConsoleSocket::Fd(OwnedFd::from(b)));
            ours = Some(a);
        }
        sys::set_child_subreaper(true);
        let mut set = SigSet::empty();
        for s in FORWARD {
            set.add(s);
        }
        set.add(Signal::SIGCHLD);
        set.add(Signal::SIGWINCH);
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
        Ok(Foreground {
            sfd: SignalFd::new(&set)?,
            ours,
        })
    }

    /// With the process `pid` created: relay its terminal, run `start` (which lets it
    /// go), forward signals until it exits, and return its exit code.
    pub fn wait(self, pid: i32, start: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<i32> {
        let master = match &self.ours {
            Some(sock) => Some(runtime_core::recv_master(sock.as_fd())?),
            None => None,
        };
        let _raw = master.as_ref().and_then(RawGuard::enter);
        let copier = match &master {
            Some(m) => Some(relay(m)?),
            None => None,
        };
        start()?;
        let code = loop {
            let Some(info) = self.sfd.read_signal()? else {
                continue;
            };
            let signo = info.ssi_signo as i32;
            if signo == c::SIGCHLD {
                if let Some(code) = reap_until(pid) {
                    break code;
                }
            } else if signo == c::SIGWINCH {
                if let Some(m) = &master {
                    copy_winsize(m);
                }
            } else {
                // The process we run (our child: its pid is ours until we reap it).
                let _ = sys::kill(pid, signo);
            }
        };
        if let Some(h) = copier {
            // The pty's last output is read until the slave side is gone.
            let _ = h.join();
        }
        Ok(code)
    }
}

/// Create, start and wait; returns the exit code to exit with.
pub fn run(
    mut opts: CreateOptions,
    extras: &CreateExtras,
    detach: bool,
    keep: bool,
    start: &StartOptions,
) -> anyhow::Result<i32> {
    let terminal = runtime_core::load_spec(&opts.bundle)
        .ok()
        .and_then(|s| s.process().as_ref().and_then(|p| p.terminal()))
        .unwrap_or(false);
    if detach {
        let mut c = runtime_core::create_with(opts, extras)?;
        if let Err(e) = c.start_with(start) {
            let _ = c.delete(true);
            return Err(e.into());
        }
        return Ok(0);
    }
    let fg = Foreground::prepare(terminal, &mut opts.console_socket)?;
    opts.reap = Reap::Here;
    opts.stdio = InitStdio::Inherit;
    let mut c = runtime_core::create_with(opts, extras)?;
    let pid = c.pid();
    let mut started = c.clone();
    let code = match fg.wait(pid, || Ok(started.start_with(start).map(|_| ())?)) {
        Ok(code) => code,
        Err(e) => {
            let _ = c.delete(true);
            return Err(e);
        }
    };
    c.state.exit_status = Some(code);
    if !keep {
        c.delete(true)?;
    }
    Ok(code)
}

/// Reap every exited child; return the exit code once `pid` is among them.
fn reap_until(pid: i32) -> Option<i32> {
    let mut result = None;
    while let Some((r, status)) = sys::wait_any_nohang() {
        if r == pid {
            result = Some(runtime_core::exit_code(status));
        }
    }
    result
}

/// Copy stdin to the pty master (detached thread) and the master to stdout (joined).
fn relay(master: &OwnedFd) -> anyhow::Result<std::thread::JoinHandle<()>> {
    copy_winsize(master);
    let mut to_pty = std::fs::File::from(master.try_clone()?);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if to_pty.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut from_pty = std::fs::File::from(master.try_clone()?);
    Ok(std::thread::spawn(move || {
        let mut out = std::io::stdout();
        let mut buf = [0u8; 8192];
        loop {
            match from_pty.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if out.write_all(&buf[..n]).is_err() {
                        return;
                    }
                    let _ = out.flush();
                }
            }
        }
    }))
}

fn copy_winsize(master: &OwnedFd) {
    if let Some((rows, cols)) = sys::winsize(std::io::stdin().as_fd()) {
        if rows > 0 {
            let _ = runtime_core::resize_console(master.as_fd(), rows, cols);
        }
    }
}

/// Puts the caller's terminal in raw mode while the container's pty is relayed.
struct RawGuard {
    saved: termios::Termios,
}

impl RawGuard {
    fn enter(_master: &OwnedFd) -> Option<RawGuard> {
        let stdin = std::io::stdin();
        if !sys::isatty(stdin.as_fd()) {
            return None;
        }
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), termios::SetArg::TCSANOW, &raw).ok()?;
        Some(RawGuard { saved })
    }
}

impl Drop for RawGuard {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(
            std::io::stdin().as_fd(),
            termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}
