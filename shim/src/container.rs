//! What the shim tracks per container: the runtime-core container (its one state
//! writer), the init and the exec'd processes (crate::process), and what Delete undoes.
//! It is the monitor's [`Runtime`] for the container.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::bundle::Rootfs;
use crate::criu::PendingRestore;
use crate::error::{Result, ShimError};
use crate::monitor::Runtime;
use crate::process::Process;

/// A container served by this shim.
pub struct Container {
    /// Container id.
    pub id: String,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// containerd's rootfs mounts, mounted by the shim (unmounted on delete).
    pub rootfs: Option<Rootfs>,
    /// The runtime-core container (None while a checkpoint waits to be restored by Start).
    pub core: tokio::sync::Mutex<Option<runtime_core::Container>>,
    /// A restore prepared at Create and performed at Start (as containerd-shim-runc-v2).
    pub restore: Mutex<Option<PendingRestore>>,
    /// The init process.
    pub init: Arc<Process>,
    /// Exec'd processes by exec id.
    pub execs: Mutex<HashMap<String, Arc<Process>>>,
    /// Kill everything in the cgroup when the init exits (no own pid namespace).
    pub kill_all_on_exit: bool,
    /// Held while a Create or Start is being reported, so TaskExit follows them.
    pub gate: tokio::sync::Mutex<()>,
    /// The OOM watcher task (aborted on delete).
    pub oom_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Container {
    /// The one writer of the container's state.json: `change` is made to the shim's own
    /// copy and the result saved, both under the core lock, so two writers (the exit
    /// watcher, a checkpoint) never save over each other with a stale copy. Nothing to
    /// do while the container is still to be restored.
    pub async fn write_state(
        &self,
        change: impl FnOnce(&mut runtime_core::ContainerState),
    ) -> Result<()> {
        let mut core = self.core.lock().await;
        let Some(k) = core.as_mut() else {
            return Ok(());
        };
        change(&mut k.state);
        let snapshot = k.clone();
        tokio::task::spawn_blocking(move || snapshot.save())
            .await
            .map_err(|e| ShimError::Internal(format!("save state: {e}")))??;
        Ok(())
    }

    /// A copy of the runtime-core container; an error while it is still to be restored.
    pub async fn core(&self) -> Result<runtime_core::Container> {
        self.core.lock().await.clone().ok_or_else(|| {
            ShimError::FailedPrecondition(format!(
                "container {} has not been restored yet (Start restores it)",
                self.id
            ))
        })
    }

    /// The process `exec_id` ("" for the init).
    pub fn process(&self, exec_id: &str) -> Result<Arc<Process>> {
        if exec_id.is_empty() {
            return Ok(self.init.clone());
        }
        self.execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(exec_id)
            .cloned()
            .ok_or_else(|| ShimError::NotFound(format!("process does not exist {exec_id}")))
    }

    /// Stop watching the container's memory cgroup.
    pub fn stop_oom_watch(&self) {
        if let Some(t) = self
            .oom_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            t.abort();
        }
    }
}

#[async_trait]
impl Runtime for Container {
    fn id(&self) -> &str {
        &self.id
    }

    fn gate(&self) -> &tokio::sync::Mutex<()> {
        &self.gate
    }

    async fn init_exited(&self) {
        if !self.kill_all_on_exit {
            return;
        }
        if let Ok(core) = self.core().await {
            let r = tokio::task::spawn_blocking(move || core.signal_all(crate::sys::SIGKILL)).await;
            if let Ok(Err(e)) = r {
                tracing::debug!(id = %self.id, "kill the rest: {}", runtime_core::chain(&e));
            }
        }
    }

    async fn oom_kills(&self) -> Option<u64> {
        let core = self.core().await.ok()?;
        tokio::task::spawn_blocking(move || core.oom_kill_count())
            .await
            .ok()
    }

    async fn persist_exit(&self, status: u32) -> Result<()> {
        self.write_state(|s| s.exit_status = Some(status as i32))
            .await
    }
}
