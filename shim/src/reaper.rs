//! The shim's single reaper (DESIGN.md "One reaper"). The shim is a child subreaper:
//! container inits are reparented to it, as are orphans of containers without a pid
//! namespace. On every SIGCHLD this collects every exited child with waitpid(-1) and
//! hands each status to whoever waits for that pid.
//!
//! No exit is kept for a pid nobody asked about: pids are recycled, and a status kept
//! "for later" (a create's stage-1 process, an orphan) would be handed to the next
//! process that gets the same pid — containerd would see a false TaskExit. Instead, a
//! caller opens a [`Window`] *before* it starts a process: the window records the exits
//! that happen while it is open, and [`Window::claim`] takes the new process's exit from
//! it (an exit that came before the claim) or waits for it. What a window recorded for
//! other pids is dropped with the window; an exit that no waiter and no window wants is
//! dropped at once. containerd's Go shim does the same (subscribe to exits before start).
//! runtime-core's own child waits (hooks, criu) go through the same registry via
//! [`runtime_core::ChildWaiter`], so no status is ever stolen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// At most this many exits recorded per open window (a window is open for one create,
/// exec or hook; a bound keeps a fork bomb in a pid-namespace-less container from
/// growing it without limit while one is open).
const WINDOW_CAP: usize = 4096;

#[derive(Default)]
struct Registry {
    waiting: HashMap<i32, Vec<oneshot::Sender<i32>>>,
    /// Open windows: the (pid, status) of each exit dispatched while open, oldest first.
    windows: HashMap<u64, Vec<(i32, i32)>>,
    next_window: u64,
}

/// Handle to the reaper.
#[derive(Clone, Default)]
pub struct Reaper {
    inner: Arc<Mutex<Registry>>,
}

/// Exits recorded from [`Reaper::window`] on, for the process started after it.
/// Dropping it forgets them.
pub struct Window {
    reaper: Reaper,
    id: u64,
}

impl Window {
    /// The exit status of `pid`, a process started after this window was opened: at
    /// once if it already exited, else when it does.
    pub fn claim(self, pid: i32) -> oneshot::Receiver<i32> {
        self.reaper.claim(self.id, pid)
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        self.reaper.close_window(self.id);
    }
}

impl Reaper {
    /// Start reaping (must be called inside the tokio runtime, before any child exists).
    pub fn start() -> std::io::Result<Reaper> {
        let r = Reaper::default();
        let mut sig = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())?;
        let me = r.clone();
        tokio::spawn(async move {
            loop {
                me.reap_all();
                if sig.recv().await.is_none() {
                    return;
                }
            }
        });
        let waiter = r.clone();
        runtime_core::set_child_waiter(Box::new(waiter));
        Ok(r)
    }

    /// Collect every exited child and dispatch its status; not while a std spawn is in
    /// flight (see [`runtime_core::hold_spawns`]).
    fn reap_all(&self) {
        let _no_spawns = runtime_core::hold_spawns();
        while let Some((pid, status)) = crate::sys::reap_one() {
            self.dispatch(pid, status);
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the exit of `pid` to its waiters, else to the open windows, else drops it.
    pub(crate) fn dispatch(&self, pid: i32, status: i32) {
        let mut reg = self.registry();
        if let Some(senders) = reg.waiting.remove(&pid) {
            for s in senders {
                let _ = s.send(status);
            }
            return;
        }
        for seen in reg.windows.values_mut() {
            if seen.len() < WINDOW_CAP {
                seen.push((pid, status));
            }
        }
    }

    /// Opens a window: call it before starting the process whose exit you will claim.
    pub fn window(&self) -> Window {
        Window {
            reaper: self.clone(),
            id: self.open_window_id(),
        }
    }

    /// Starts recording into a new window; [`Reaper::close_window`] ends it.
    fn open_window_id(&self) -> u64 {
        let mut reg = self.registry();
        reg.next_window += 1;
        let id = reg.next_window;
        reg.windows.insert(id, Vec::new());
        id
    }

    fn claim(&self, window: u64, pid: i32) -> oneshot::Receiver<i32> {
        let (tx, rx) = oneshot::channel();
        let mut reg = self.registry();
        // The latest exit of `pid` in this window is the new process's: the process that
        // had the pid before it exited before it could be reused.
        let seen = reg
            .windows
            .get(&window)
            .and_then(|w| w.iter().rev().find(|(p, _)| *p == pid).map(|(_, s)| *s));
        match seen {
            Some(status) => {
                let _ = tx.send(status);
            }
            None => reg.waiting.entry(pid).or_default().push(tx),
        }
        rx
    }

    fn close_window(&self, window: u64) {
        self.registry().windows.remove(&window);
    }

    /// The exit status of `pid` when it exits, for a process known to be running now
    /// (no window: an exit before this call is not seen).
    pub fn subscribe(&self, pid: i32) -> oneshot::Receiver<i32> {
        let (tx, rx) = oneshot::channel();
        self.registry().waiting.entry(pid).or_default().push(tx);
        rx
    }
}

impl runtime_core::ChildWaiter for Reaper {
    fn open_window(&self) -> u64 {
        self.open_window_id()
    }

    fn wait(&self, window: u64, pid: i32) -> std::io::Result<i32> {
        self.claim(window, pid)
            .blocking_recv()
            .map_err(|_| std::io::Error::other("the shim's reaper stopped"))
    }

    fn close_window(&self, window: u64) {
        Reaper::close_window(self, window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_before_the_claim_is_kept_by_the_window() {
        let r = Reaper::default();
        let w = r.window();
        r.dispatch(42, 7 << 8);
        assert_eq!(w.claim(42).blocking_recv().expect("status"), 7 << 8);
        let w = r.window();
        let rx = w.claim(43);
        r.dispatch(43, 9);
        assert_eq!(rx.blocking_recv().expect("status"), 9);
    }

    /// Issue 15: a create's stage-1 process exits unclaimed; a later process that gets
    /// the same pid must not receive that stale status.
    #[test]
    fn a_recycled_pid_never_gets_a_stale_exit() {
        let r = Reaper::default();
        // Create 1: stage 1 (pid 100) exits during the create; init is 101.
        let create1 = r.window();
        r.dispatch(100, 0);
        let init1 = create1.claim(101);
        // An unclaimed exit outside any window (an orphan) is dropped at once.
        r.dispatch(200, 3 << 8);
        // Create 2: its init got pid 100 (recycled) and is still running.
        let create2 = r.window();
        let mut init2 = create2.claim(100);
        assert!(
            matches!(init2.try_recv(), Err(oneshot::error::TryRecvError::Empty)),
            "the stale exit of the old pid 100 was handed to the new process"
        );
        // A later process with the orphan's pid does not get the orphan's status either.
        let mut other = r.window().claim(200);
        assert!(matches!(
            other.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        ));
        // The real exits reach their own processes.
        r.dispatch(100, 5 << 8);
        r.dispatch(101, 6 << 8);
        assert_eq!(init2.blocking_recv().expect("status"), 5 << 8);
        assert_eq!(init1.blocking_recv().expect("status"), 6 << 8);
        assert!(
            r.registry().windows.is_empty(),
            "windows outlived their claims"
        );
    }

    #[test]
    fn a_window_records_only_while_open_and_is_bounded() {
        let r = Reaper::default();
        let w = r.window();
        for pid in 1..=(WINDOW_CAP as i32 + 10) {
            r.dispatch(pid, 0);
        }
        assert_eq!(r.registry().windows[&w.id].len(), WINDOW_CAP);
        drop(w);
        assert!(r.registry().windows.is_empty());
        r.dispatch(7, 0);
        assert!(r.registry().waiting.is_empty());
    }

    #[test]
    fn runtime_core_waits_through_its_window() {
        use runtime_core::ChildWaiter;
        let r = Reaper::default();
        let id = r.open_window();
        r.dispatch(300, 1 << 8);
        assert_eq!(ChildWaiter::wait(&r, id, 300).expect("status"), 1 << 8);
        ChildWaiter::close_window(&r, id);
        assert!(r.registry().windows.is_empty());
    }
}
