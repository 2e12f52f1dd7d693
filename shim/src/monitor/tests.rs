//! The monitor's ordering against a fake runtime: what containerd and `shim delete`
//! rely on (OOM → persisted exit → TaskExit → TaskDelete; an exec's exit is the exec's;
//! a recycled pid never inherits a stale exit). Each test fails if the order breaks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use containerd_shim_protos::events::task::{TaskDelete, TaskExit};
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::ttrpc::{self, Code};
use tokio::sync::oneshot;

use super::*;
use crate::events::Recording;
use crate::reaper::Reaper;
use crate::stdio::{Io, StdioSpec};

const PERSIST: &str = "persist";
const KILL_ALL: &str = "kill-all";
const WAITED: &str = "wait returned";

/// A container whose runtime calls are logged next to the events.
struct Fake {
    id: String,
    gate: tokio::sync::Mutex<()>,
    log: Recording,
    oom_kills: AtomicU64,
}

#[async_trait]
impl Runtime for Fake {
    fn id(&self) -> &str {
        &self.id
    }

    fn gate(&self) -> &tokio::sync::Mutex<()> {
        &self.gate
    }

    async fn init_exited(&self) {
        self.push(KILL_ALL, Vec::new());
    }

    async fn oom_kills(&self) -> Option<u64> {
        // An await inside the exit's handling: it must not let anything overtake it.
        tokio::task::yield_now().await;
        Some(self.oom_kills.load(Ordering::SeqCst))
    }

    async fn persist_exit(&self, status: u32) -> Result<()> {
        tokio::task::yield_now().await;
        self.push(PERSIST, status.to_string().into_bytes());
        Ok(())
    }
}

impl Fake {
    fn push(&self, what: &str, data: Vec<u8>) {
        self.log.lock().expect("log").push((what.to_string(), data));
    }
}

struct Kit {
    log: Recording,
    monitor: Monitor,
    rt: Arc<Fake>,
    init: Arc<Process>,
}

fn kit() -> Kit {
    let log: Recording = Arc::new(Mutex::new(Vec::new()));
    let monitor = Monitor::start(Events::recording(log.clone()));
    let rt = Arc::new(Fake {
        id: "c1".into(),
        gate: tokio::sync::Mutex::new(()),
        log: log.clone(),
        oom_kills: AtomicU64::new(0),
    });
    let init = Arc::new(Process::new(
        "c1".into(),
        100,
        StdioSpec::default(),
        Io::default(),
    ));
    Kit {
        log,
        monitor,
        rt,
        init,
    }
}

impl Kit {
    fn what(&self) -> Vec<String> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .map(|(w, _)| w.clone())
            .collect()
    }

    /// Wait until `n` entries are logged (bounded).
    async fn until(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.log.lock().expect("log").len() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {:?} happened",
                self.what()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn entry<M: Message>(&self, i: usize) -> M {
        M::parse_from_bytes(&self.log.lock().expect("log")[i].1).expect("event")
    }

    async fn start(&self, p: &Arc<Process>) {
        self.monitor
            .started(
                p.clone(),
                topics::TASK_START_EVENT_TOPIC,
                translate::task_start("c1", 1),
            )
            .await
            .expect("started");
    }

    /// `p` exits with `code`, through a watcher as the service runs it.
    fn exit(&self, p: &Arc<Process>, code: i32) {
        let (tx, rx) = oneshot::channel();
        self.monitor.watch(self.rt.clone(), p.clone(), rx);
        let _ = tx.send(code << 8);
    }
}

/// `p`'s exit, bounded: a broken order fails the test instead of hanging it.
async fn waited(p: &Process) -> crate::process::Exit {
    tokio::time::timeout(Duration::from_secs(5), p.wait())
        .await
        .expect("the exit never became visible")
}

fn code(e: ShimError) -> Code {
    match ttrpc::Error::from(e) {
        ttrpc::Error::RpcStatus(s) => s.code(),
        other => panic!("not a status: {other:?}"),
    }
}

#[tokio::test]
async fn the_exit_status_is_persisted_before_task_exit() {
    let k = kit();
    k.start(&k.init).await;
    k.exit(&k.init, 3);
    let exit = waited(&k.init).await;
    assert_eq!(exit.status, 3);
    assert_eq!(
        k.what(),
        [
            topics::TASK_START_EVENT_TOPIC,
            KILL_ALL,
            PERSIST,
            topics::TASK_EXIT_EVENT_TOPIC
        ]
    );
    assert_eq!(k.log.lock().expect("log")[2].1, b"3");
    let e: TaskExit = k.entry(3);
    assert_eq!((e.id.as_str(), e.exit_status), ("c1", 3));
}

#[tokio::test]
async fn an_oom_kill_is_reported_before_the_exit_it_caused_and_once() {
    let k = kit();
    k.start(&k.init).await;
    k.rt.oom_kills.store(1, Ordering::SeqCst);
    k.exit(&k.init, 137);
    waited(&k.init).await;
    // The OOM watcher's late notice of the same kill is not a second TaskOOM.
    k.monitor.oom(k.rt.clone(), 1);
    k.monitor.publish(
        topics::TASK_PAUSED_EVENT_TOPIC,
        translate::task_paused("c1"),
    );
    k.until(6).await;
    assert_eq!(
        k.what(),
        [
            topics::TASK_START_EVENT_TOPIC,
            KILL_ALL,
            topics::TASK_OOM_EVENT_TOPIC,
            PERSIST,
            topics::TASK_EXIT_EVENT_TOPIC,
            topics::TASK_PAUSED_EVENT_TOPIC,
        ]
    );
}

/// The exit becomes visible (Wait returns) only after TaskExit was queued, so a Delete
/// that waits for it queues TaskDelete after TaskExit, however the tasks interleave.
#[tokio::test]
async fn task_exit_comes_before_task_delete() {
    let k = kit();
    k.start(&k.init).await;
    let (monitor, rt, init) = (k.monitor.clone(), k.rt.clone(), k.init.clone());
    let delete = tokio::spawn(async move {
        waited(&init).await;
        rt.push(WAITED, Vec::new());
        monitor.deleted(rt, init).await
    });
    tokio::task::yield_now().await;
    k.exit(&k.init, 0);
    let exit = delete.await.expect("delete task").expect("delete");
    assert_eq!(exit.map(|e| e.status), Some(0));
    // Persisted, published, then visible to the waiter, then deleted.
    assert_eq!(
        k.what(),
        [
            topics::TASK_START_EVENT_TOPIC,
            KILL_ALL,
            PERSIST,
            topics::TASK_EXIT_EVENT_TOPIC,
            WAITED,
            topics::TASK_DELETE_EVENT_TOPIC
        ]
    );
    let d: TaskDelete = k.entry(5);
    assert_eq!(d.exit_status, 0);
}

#[tokio::test]
async fn delete_while_running_is_refused_without_task_delete() {
    let k = kit();
    k.start(&k.init).await;
    let e = k
        .monitor
        .deleted(k.rt.clone(), k.init.clone())
        .await
        .expect_err("running");
    assert_eq!(code(e), Code::FAILED_PRECONDITION);
    assert_eq!(
        code(k.init.check_delete().expect_err("running")),
        Code::FAILED_PRECONDITION
    );
    assert_eq!(k.what(), [topics::TASK_START_EVENT_TOPIC]);
}

/// Kill after the exit was handled: NOT_FOUND, as containerd-shim-runc-v2 answers
/// ("process already finished"), which containerd takes as done.
#[tokio::test]
async fn kill_after_the_exit_is_not_found() {
    let k = kit();
    k.start(&k.init).await;
    k.exit(&k.init, 0);
    waited(&k.init).await;
    assert_eq!(
        code(k.init.check_signal(false).expect_err("exited")),
        Code::NOT_FOUND
    );
}

#[tokio::test]
async fn an_exec_exit_is_never_reported_for_the_init() {
    let k = kit();
    k.start(&k.init).await;
    let e = Arc::new(Process::new_exec(
        "e1".into(),
        oci_spec::runtime::Process::default(),
        StdioSpec::default(),
    ));
    k.monitor
        .started(
            e.clone(),
            topics::TASK_EXEC_STARTED_EVENT_TOPIC,
            translate::task_exec_started("c1", "e1", 7),
        )
        .await
        .expect("exec started");
    k.rt.oom_kills.store(1, Ordering::SeqCst);
    k.exit(&e, 5);
    assert_eq!(waited(&e).await.status, 5);
    assert_eq!(
        k.what(),
        [
            topics::TASK_START_EVENT_TOPIC,
            topics::TASK_EXEC_STARTED_EVENT_TOPIC,
            topics::TASK_EXIT_EVENT_TOPIC
        ],
        "an exec's exit killed the container, read its OOM kills or persisted its status"
    );
    let x: TaskExit = k.entry(2);
    assert_eq!((x.id.as_str(), x.exit_status), ("e1", 5));
    assert_eq!(k.init.exit(), None);
    assert_eq!(k.init.state(), crate::process::State::Running);
}

/// A Start still being reported holds the gate: the exit of a process that dies at
/// once is queued after its TaskStart.
#[tokio::test]
async fn task_start_comes_before_the_exit_of_a_quick_process() {
    let k = kit();
    let gate = k.rt.gate.lock().await;
    k.exit(&k.init, 1);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    k.start(&k.init).await;
    drop(gate);
    waited(&k.init).await;
    assert_eq!(
        k.what(),
        [
            topics::TASK_START_EVENT_TOPIC,
            KILL_ALL,
            PERSIST,
            topics::TASK_EXIT_EVENT_TOPIC
        ]
    );
}

/// Issue 15: a stale exit of a recycled pid (a create's stage 1, an orphan) never
/// reaches the process that has the pid now.
#[tokio::test]
async fn a_stale_exit_of_a_recycled_pid_is_never_delivered() {
    let k = kit();
    let reaper = Reaper::default();
    // An earlier process with pid 100 exits before the new one is started: unclaimed.
    reaper.dispatch(100, 9);
    // The new init gets pid 100 (recycled); its window opens before it starts.
    let window = reaper.window();
    let exited = window.claim(100);
    k.start(&k.init).await;
    k.monitor.watch(k.rt.clone(), k.init.clone(), exited);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        k.what(),
        [topics::TASK_START_EVENT_TOPIC],
        "a stale exit was delivered"
    );
    assert_eq!(k.init.exit(), None);
    reaper.dispatch(100, 4 << 8);
    assert_eq!(waited(&k.init).await.status, 4);
    let x: TaskExit = k.entry(3);
    assert_eq!(x.exit_status, 4);
}
