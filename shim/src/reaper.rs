//! The shim's single reaper (DESIGN.md "One reaper"). The shim is a child subreaper:
//! container inits are reparented to it, as are orphans of containers without a pid
//! namespace. On every SIGCHLD this collects every exited child with waitpid(-1) and
//! hands each status to whoever subscribed to that pid; exits nobody has claimed yet
//! (a container that exits before the service registered it) are kept for a while.
//! runtime-core's own child waits (hooks) go through the same registry via
//! [`runtime_core::process::reap::ChildWaiter`], so no status is ever stolen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// How long an unclaimed exit is kept.
const KEEP_UNCLAIMED: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Registry {
    waiting: HashMap<i32, Vec<oneshot::Sender<i32>>>,
    unclaimed: HashMap<i32, (i32, Instant)>,
}

/// Handle to the reaper.
#[derive(Clone, Default)]
pub struct Reaper {
    inner: Arc<Mutex<Registry>>,
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
        runtime_core::process::reap::set_child_waiter(Box::new(waiter));
        Ok(r)
    }

    /// Collect every exited child and dispatch its status.
    fn reap_all(&self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes the status into a valid int.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            self.dispatch(pid, status);
        }
    }

    fn dispatch(&self, pid: i32, status: i32) {
        let mut reg = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match reg.waiting.remove(&pid) {
            Some(senders) => {
                for s in senders {
                    let _ = s.send(status);
                }
            }
            None => {
                let now = Instant::now();
                reg.unclaimed
                    .retain(|_, (_, at)| now.duration_since(*at) < KEEP_UNCLAIMED);
                reg.unclaimed.insert(pid, (status, now));
            }
        }
    }

    /// Get the raw wait status of child `pid` when it exits (or if it already has).
    pub fn subscribe(&self, pid: i32) -> oneshot::Receiver<i32> {
        let (tx, rx) = oneshot::channel();
        let mut reg = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((status, _)) = reg.unclaimed.remove(&pid) {
            let _ = tx.send(status);
        } else {
            reg.waiting.entry(pid).or_default().push(tx);
        }
        rx
    }
}

impl runtime_core::process::reap::ChildWaiter for Reaper {
    fn wait(&self, pid: i32) -> std::io::Result<i32> {
        self.subscribe(pid)
            .blocking_recv()
            .map_err(|_| std::io::Error::other("the shim's reaper stopped"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_exits_are_kept_for_the_subscriber() {
        let r = Reaper::default();
        r.dispatch(42, 7 << 8);
        let rx = r.subscribe(42);
        assert_eq!(rx.blocking_recv().expect("status"), 7 << 8);
        let rx = r.subscribe(43);
        r.dispatch(43, 9);
        assert_eq!(rx.blocking_recv().expect("status"), 9);
    }
}
