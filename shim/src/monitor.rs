//! The one monitor: a single task that owns the order of every lifecycle event the
//! shim publishes (DESIGN.md "Events"). Requests and exit watchers do not publish;
//! they send the monitor a command, and the monitor handles commands one at a time, in
//! the order they were sent. So, by construction:
//!
//! - an init's exit is handled as one step: the container's OOM kills are read and
//!   TaskOOM published if they grew, the exit status is persisted, TaskExit is queued,
//!   and only then the exit becomes visible (Wait returns, State says stopped);
//! - TaskDelete is queued by a Delete, which may only act on a visible exit, so after
//!   TaskExit; an exec's exit is published with the exec's id and never touches the
//!   init or the persisted status.
//!
//! The slow part of an exit (killing what is left of the container, draining the
//! output, bounded by [`DRAIN_LIMIT`]) runs in the process' own watcher before it hands
//! the exit to the monitor, so one container's drain never delays another's events.
//! What the monitor needs from runtime-core sits behind [`Runtime`], faked in the tests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use containerd_shim_protos::topics;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::error::{Result, ShimError};
use crate::events::{Events, TypeUrl};
use crate::process::{Exit, Process};
use crate::translate;

/// How long TaskExit waits for the process' output to be relayed.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// What the monitor and the exit watchers ask of a container's runtime.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// The container id.
    fn id(&self) -> &str;
    /// Held while a Create or Start is being reported: an exit waits for it, so
    /// TaskExit follows TaskCreate/TaskStart.
    fn gate(&self) -> &tokio::sync::Mutex<()>;
    /// The init exited: kill what is left of the container if it has no pid namespace
    /// of its own (decided at Create, crate::pidns).
    async fn init_exited(&self);
    /// OOM kills in the container's memory cgroup so far (None: not known).
    async fn oom_kills(&self) -> Option<u64>;
    /// Persist the init's exit status (state.json), for `shim delete` after a crash.
    async fn persist_exit(&self, status: u32) -> Result<()>;
}

type Publish = Box<dyn FnOnce(&Events) + Send>;

enum Cmd {
    /// An event with no state change (TaskCreate, TaskExecAdded, TaskPaused, …).
    Publish(Publish),
    /// Created → Running, then the event.
    Started {
        p: Arc<Process>,
        event: Publish,
        done: oneshot::Sender<Result<()>>,
    },
    /// The OOM watcher saw the kill count grow.
    Oom { rt: Arc<dyn Runtime>, kills: u64 },
    /// A process exited (its output relayed).
    Exit {
        rt: Arc<dyn Runtime>,
        p: Arc<Process>,
        exit: Exit,
    },
    /// Delete: Stopped → Deleted, TaskDelete for the init.
    Delete {
        rt: Arc<dyn Runtime>,
        p: Arc<Process>,
        done: oneshot::Sender<Result<Option<Exit>>>,
    },
}

/// Handle to the monitor task.
#[derive(Clone)]
pub struct Monitor {
    tx: mpsc::UnboundedSender<Cmd>,
}

impl Monitor {
    /// Start the monitor, publishing through `events`.
    pub fn start(events: Events) -> Monitor {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(events, rx));
        Monitor { tx }
    }

    fn send(&self, cmd: Cmd) {
        // The monitor lives as long as the runtime: a send cannot fail before shutdown.
        let _ = self.tx.send(cmd);
    }

    /// Queue an event that changes no process state.
    pub fn publish<M: TypeUrl + Send + 'static>(&self, topic: &'static str, event: M) {
        self.send(Cmd::Publish(Box::new(move |e| e.publish(topic, &event))));
    }

    /// Mark `p` started and queue its TaskStart/TaskExecStarted.
    pub async fn started<M: TypeUrl + Send + 'static>(
        &self,
        p: Arc<Process>,
        topic: &'static str,
        event: M,
    ) -> Result<()> {
        let (done, rx) = oneshot::channel();
        let event: Publish = Box::new(move |e| e.publish(topic, &event));
        self.send(Cmd::Started { p, event, done });
        rx.await.map_err(stopped)?
    }

    /// The container's OOM kill count is now `kills`.
    pub fn oom(&self, rt: Arc<dyn Runtime>, kills: u64) {
        self.send(Cmd::Oom { rt, kills });
    }

    /// `p` exited with `exit` (its output relayed).
    pub fn exited(&self, rt: Arc<dyn Runtime>, p: Arc<Process>, exit: Exit) {
        self.send(Cmd::Exit { rt, p, exit });
    }

    /// Mark `p` deleted (TaskDelete for the init); its exit, None if it never ran.
    pub async fn deleted(&self, rt: Arc<dyn Runtime>, p: Arc<Process>) -> Result<Option<Exit>> {
        let (done, rx) = oneshot::channel();
        self.send(Cmd::Delete { rt, p, done });
        rx.await.map_err(stopped)?
    }

    /// Watch `p` until it exits (`exited` comes from the reaper), then hand its exit to
    /// the monitor, after the init's leftovers are killed and the output is relayed.
    pub fn watch(&self, rt: Arc<dyn Runtime>, p: Arc<Process>, exited: oneshot::Receiver<i32>) {
        let span = tracing::info_span!("exit", id = %rt.id(), exec = %exec_id(&p));
        let monitor = self.clone();
        tokio::spawn(
            async move {
                let Ok(raw) = exited.await else { return };
                let status = runtime_core::exit_code(raw) as u32;
                // A Create or Start still being reported goes first.
                drop(rt.gate().lock().await);
                if p.is_init() {
                    rt.init_exited().await;
                }
                p.io.lock().await.drained(DRAIN_LIMIT).await;
                let exit = Exit {
                    status,
                    at: SystemTime::now(),
                };
                monitor.exited(rt, p, exit);
            }
            .instrument(span),
        );
    }
}

fn exec_id(p: &Process) -> &str {
    if p.is_init() {
        ""
    } else {
        &p.id
    }
}

fn stopped(_: oneshot::error::RecvError) -> ShimError {
    ShimError::Internal("the shim's monitor stopped".into())
}

/// The monitor's loop: one command at a time, in order.
async fn run(events: Events, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    // OOM kills already reported, per container.
    let mut oom_reported: HashMap<String, u64> = HashMap::new();
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Cmd::Publish(publish) => publish(&events),
            Cmd::Started { p, event, done } => {
                let r = p.started();
                if r.is_ok() {
                    event(&events);
                }
                let _ = done.send(r);
            }
            Cmd::Oom { rt, kills } => report_oom(&events, &mut oom_reported, rt.id(), kills),
            Cmd::Exit { rt, p, exit } => {
                handle_exit(&events, &mut oom_reported, rt.as_ref(), &p, exit).await;
            }
            Cmd::Delete { rt, p, done } => {
                let r = p.deleted();
                if let Ok(exit) = r {
                    if p.is_init() {
                        oom_reported.remove(rt.id());
                        events.publish(
                            topics::TASK_DELETE_EVENT_TOPIC,
                            &translate::task_delete(rt.id(), &p, exit),
                        );
                        tracing::info!(id = %rt.id(), "deleted");
                    }
                }
                let _ = done.send(r);
            }
        }
    }
}

/// OOM (init only) → persist (init only) → TaskExit → visible.
async fn handle_exit(
    events: &Events,
    oom_reported: &mut HashMap<String, u64>,
    rt: &dyn Runtime,
    p: &Process,
    exit: Exit,
) {
    if p.is_init() {
        // An OOM kill that ended the container is reported before its exit.
        if let Some(kills) = rt.oom_kills().await {
            report_oom(events, oom_reported, rt.id(), kills);
        }
        // Persisted before the exit is visible: a Wait that returns lets the client
        // Delete, which removes the state dir (a save still writing there failed it).
        if let Err(e) = rt.persist_exit(exit.status).await {
            tracing::warn!(id = %rt.id(), "persist the exit status: {}", runtime_core::chain(&e));
        }
    }
    tracing::info!(id = %rt.id(), exec = %exec_id(p), status = exit.status, "exited");
    events.publish(
        topics::TASK_EXIT_EVENT_TOPIC,
        &translate::task_exit(rt.id(), p, exit),
    );
    if let Err(e) = p.exited(exit) {
        tracing::warn!(id = %rt.id(), "{e}");
    }
}

/// Publish TaskOOM if the container's OOM kill count grew since the last report.
fn report_oom(events: &Events, reported: &mut HashMap<String, u64>, id: &str, kills: u64) {
    let last = reported.entry(id.to_string()).or_insert(0);
    if kills > *last {
        *last = kills;
        tracing::info!(id, kills, "oom");
        events.publish(topics::TASK_OOM_EVENT_TOPIC, &translate::task_oom(id));
    }
}

#[cfg(test)]
mod tests;
