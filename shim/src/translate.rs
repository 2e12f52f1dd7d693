//! The one translation layer between containerd's protobuf messages and the shim's and
//! runtime-core's own types (kata's `trans_from_shim.rs` idea, STYLE.md "Shape"):
//! requests are decoded here into plain values, results encoded here into responses
//! and events. Nothing below this layer sees protobuf, nothing above sees runtime-core.

use std::collections::HashMap;
use std::path::PathBuf;

use containerd_shim_protos::api::{self, Status};
use containerd_shim_protos::events::task::{
    TaskCheckpointed, TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO,
    TaskOOM, TaskPaused, TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use runtime_core::CheckpointOptions;
use runtime_core::RootfsMount;

use crate::error::{Result, ShimError};
use crate::events::timestamp;
use crate::options::{self, RuntimeOptions};
use crate::process::{Exit, Process};
use crate::stdio::StdioSpec;

/// A Create request.
pub struct Create {
    /// Container id.
    pub id: String,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// The stdio containerd asked for.
    pub stdio: StdioSpec,
    /// containerd's rootfs mounts (empty: the bundle's rootfs is ready).
    pub rootfs: Vec<RootfsMount>,
    /// A checkpoint image to restore at Start.
    pub checkpoint: Option<PathBuf>,
    /// The runtime options.
    pub options: RuntimeOptions,
    /// TaskCreate as containerd expects it, the pid still to fill in.
    pub event: TaskCreate,
}

/// Decode a Create request.
pub fn create(req: api::CreateTaskRequest) -> Result<Create> {
    if !req.parent_checkpoint.is_empty() {
        return Err(ShimError::Unimplemented(
            "restoring from a parent checkpoint (incremental images) is not supported".into(),
        ));
    }
    let options = options::decode(req.options.as_ref())?;
    let stdio = StdioSpec {
        stdin: req.stdin.clone(),
        stdout: req.stdout.clone(),
        stderr: req.stderr.clone(),
        terminal: req.terminal,
    };
    let rootfs = req
        .rootfs
        .iter()
        .map(|m| RootfsMount {
            typ: m.type_.clone(),
            source: m.source.clone(),
            options: m.options.clone(),
        })
        .collect();
    let event = TaskCreate {
        container_id: req.id.clone(),
        bundle: req.bundle.clone(),
        rootfs: req.rootfs.clone(),
        io: Some(TaskIO {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
            ..Default::default()
        })
        .into(),
        checkpoint: req.checkpoint.clone(),
        ..Default::default()
    };
    Ok(Create {
        bundle: PathBuf::from(&req.bundle),
        // The request's checkpoint, else WithRestoreImagePath's CriuImagePath (containerd
        // turns that into `checkpoint` only for runtimes named io.containerd.runc.*).
        checkpoint: options.restore_image(&req.checkpoint),
        id: req.id,
        stdio,
        rootfs,
        options,
        event,
    })
}

/// An Exec request.
pub struct Exec {
    /// Exec id.
    pub exec_id: String,
    /// The process to run.
    pub spec: oci_spec::runtime::Process,
    /// Its stdio.
    pub stdio: StdioSpec,
}

/// Decode an Exec request.
pub fn exec(req: &api::ExecProcessRequest) -> Result<Exec> {
    if req.exec_id.is_empty() {
        return Err(ShimError::InvalidArgument(
            "exec id must not be empty".into(),
        ));
    }
    let any = req
        .spec
        .as_ref()
        .ok_or_else(|| ShimError::InvalidArgument("exec without a process spec".into()))?;
    let mut spec: oci_spec::runtime::Process = json(any, "exec process spec")?;
    spec.set_terminal(Some(req.terminal));
    Ok(Exec {
        exec_id: req.exec_id.clone(),
        spec,
        stdio: StdioSpec {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        },
    })
}

/// Decode an Update request's resources.
pub fn resources(req: &api::UpdateTaskRequest) -> Result<oci_spec::runtime::LinuxResources> {
    let any = req
        .resources
        .as_ref()
        .ok_or_else(|| ShimError::InvalidArgument("update without resources".into()))?;
    json(any, "resources")
}

/// A JSON document carried in an Any, errors naming the JSON path.
fn json<T: serde::de::DeserializeOwned>(any: &Any, what: &str) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_slice(&any.value);
    serde_path_to_error::deserialize(de)
        .map_err(|e| ShimError::InvalidArgument(format!("{what}: {}: {}", e.path(), e.inner())))
}

/// Decode a Checkpoint request into runtime-core's options (the image path: the
/// options' ImagePath, else the request's path).
pub fn checkpoint(req: &api::CheckpointTaskRequest) -> Result<CheckpointOptions> {
    let co = options::decode_checkpoint(req.options.as_ref())?;
    let image = co
        .image_path
        .clone()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(&req.path));
    if image.as_os_str().is_empty() {
        return Err(ShimError::InvalidArgument(
            "checkpoint without an image path".into(),
        ));
    }
    let mut o = CheckpointOptions::new(image);
    o.work_path = co.work_path.clone().map(PathBuf::from);
    o.leave_running = !co.exit;
    o.tcp_established = co.open_tcp;
    o.ext_unix_sk = co.external_unix_sockets;
    o.shell_job = co.terminal;
    o.file_locks = co.file_locks;
    o.empty_ns = runtime_core::parse_namespaces(&co.empty_namespaces)
        .map_err(|e| ShimError::InvalidArgument(runtime_core::chain(&e)))?;
    if !co.cgroups_mode.is_empty() {
        o.manage_cgroups_mode = Some(co.cgroups_mode.parse().map_err(
            |e: runtime_core::CriuError| ShimError::InvalidArgument(runtime_core::chain(&e)),
        )?);
    }
    Ok(o)
}

/// A State reply for `p` (`paused`: its container is frozen).
pub fn state(
    bundle: &std::path::Path,
    p: &Process,
    paused: bool,
    exec_id: String,
) -> api::StateResponse {
    let mut status = p.status();
    if status == Status::RUNNING && paused {
        status = Status::PAUSED;
    }
    let exit = p.exit();
    api::StateResponse {
        id: p.id.clone(),
        bundle: bundle.display().to_string(),
        pid: p.pid() as u32,
        status: status.into(),
        stdin: p.stdio.stdin.clone(),
        stdout: p.stdio.stdout.clone(),
        stderr: p.stdio.stderr.clone(),
        terminal: p.stdio.terminal,
        exit_status: exit.map(|e| e.status).unwrap_or(0),
        exited_at: exit.map(|e| timestamp(e.at)).into(),
        exec_id,
        ..Default::default()
    }
}

/// A Delete reply (`exit` None: the process never ran).
pub fn deleted(pid: i32, exit: Option<Exit>) -> api::DeleteResponse {
    api::DeleteResponse {
        pid: pid as u32,
        exit_status: exit.map(|e| e.status).unwrap_or(0),
        exited_at: exit.map(|e| timestamp(e.at)).into(),
        ..Default::default()
    }
}

/// A Wait reply.
pub fn waited(e: Exit) -> api::WaitResponse {
    api::WaitResponse {
        exit_status: e.status,
        exited_at: Some(timestamp(e.at)).into(),
        ..Default::default()
    }
}

/// A Start reply.
pub fn started(pid: i32) -> api::StartResponse {
    api::StartResponse {
        pid: pid as u32,
        ..Default::default()
    }
}

/// A Pids reply: the container's pids, the exec'd ones with their exec id.
pub fn pids(pids: Vec<i32>, execs: &HashMap<i32, String>) -> api::PidsResponse {
    api::PidsResponse {
        processes: pids
            .into_iter()
            .map(|pid| api::ProcessInfo {
                pid: pid as u32,
                info: execs
                    .get(&pid)
                    .map(|id| {
                        crate::events::to_any(&containerd_shim_protos::shim::oci::ProcessDetails {
                            exec_id: id.clone(),
                            ..Default::default()
                        })
                    })
                    .into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// TaskStart.
pub fn task_start(id: &str, pid: i32) -> TaskStart {
    TaskStart {
        container_id: id.to_string(),
        pid: pid as u32,
        ..Default::default()
    }
}

/// TaskExecAdded.
pub fn task_exec_added(id: &str, exec_id: &str) -> TaskExecAdded {
    TaskExecAdded {
        container_id: id.to_string(),
        exec_id: exec_id.to_string(),
        ..Default::default()
    }
}

/// TaskExecStarted.
pub fn task_exec_started(id: &str, exec_id: &str, pid: i32) -> TaskExecStarted {
    TaskExecStarted {
        container_id: id.to_string(),
        exec_id: exec_id.to_string(),
        pid: pid as u32,
        ..Default::default()
    }
}

/// TaskExit of process `p` of container `id`.
pub fn task_exit(id: &str, p: &Process, exit: Exit) -> TaskExit {
    TaskExit {
        container_id: id.to_string(),
        id: p.id.clone(),
        pid: p.pid() as u32,
        exit_status: exit.status,
        exited_at: Some(timestamp(exit.at)).into(),
        ..Default::default()
    }
}

/// TaskDelete of container `id` whose init is `p`.
pub fn task_delete(id: &str, p: &Process, exit: Option<Exit>) -> TaskDelete {
    TaskDelete {
        container_id: id.to_string(),
        pid: p.pid() as u32,
        exit_status: exit.map(|e| e.status).unwrap_or(0),
        exited_at: exit.map(|e| timestamp(e.at)).into(),
        id: id.to_string(),
        ..Default::default()
    }
}

/// TaskOOM.
pub fn task_oom(id: &str) -> TaskOOM {
    TaskOOM {
        container_id: id.to_string(),
        ..Default::default()
    }
}

/// TaskPaused.
pub fn task_paused(id: &str) -> TaskPaused {
    TaskPaused {
        container_id: id.to_string(),
        ..Default::default()
    }
}

/// TaskResumed.
pub fn task_resumed(id: &str) -> TaskResumed {
    TaskResumed {
        container_id: id.to_string(),
        ..Default::default()
    }
}

/// TaskCheckpointed.
pub fn task_checkpointed(id: &str, image: &std::path::Path) -> TaskCheckpointed {
    TaskCheckpointed {
        container_id: id.to_string(),
        checkpoint: image.display().to_string(),
        ..Default::default()
    }
}
