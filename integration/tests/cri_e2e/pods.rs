//! Pod and container helpers over the CRI client: configs as the kubelet builds them,
//! and the calls the scenarios chain (each one checked).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use integration::cri::CriContainerd;
use runrs_cri_proto::v1 as cri;

/// CRI `NamespaceMode::CONTAINER`.
pub const NS_CONTAINER: i32 = 1;
/// CRI `NamespaceMode::NODE`.
pub const NS_NODE: i32 = 2;
/// CRI `ContainerState` values.
pub const RUNNING: i32 = 1;
/// CRI `ContainerState::CONTAINER_EXITED`.
pub const EXITED: i32 = 2;
/// CRI `PodSandboxState::SANDBOX_READY`.
pub const SANDBOX_READY: i32 = 0;

/// One scenario's context: the instance and the runtime handler under test.
pub struct Ctx<'a> {
    /// The containerd with CRI.
    pub cd: &'a CriContainerd,
    /// "runc" or "runrs".
    pub handler: &'a str,
}

/// The shim binary that serves pods of `handler`.
pub fn shim_name(handler: &str) -> &'static str {
    if handler == "runrs" {
        "containerd-shim-runrs-v2"
    } else {
        "containerd-shim-runc-v2"
    }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A pod: its sandbox id and the config it was created with (CreateContainer wants it).
pub struct Pod<'a> {
    ctx: &'a Ctx<'a>,
    /// The sandbox id.
    pub id: String,
    /// The config RunPodSandbox got.
    pub config: cri::PodSandboxConfig,
    removed: bool,
}

/// How a pod is networked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// The host's network namespace.
    Host,
    /// Its own, on the CNI bridge.
    Cni,
}

impl<'a> Ctx<'a> {
    /// The pod config: unique name and uid, logs in the instance's `pods/` dir, the
    /// driver's cgroup parent, host or CNI network, privileged if asked.
    pub fn pod_config(&self, name: &str, net: Net, privileged: bool) -> cri::PodSandboxConfig {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let uid = format!("{}-{}-{}-{n}", name, self.handler, std::process::id());
        let log_dir = self.cd.dir.join("pods").join(&uid);
        let _ = std::fs::create_dir_all(&log_dir);
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: format!("{name}-{}-{n}", self.handler),
                uid,
                namespace: "runrs-cri".into(),
                attempt: 0,
            }),
            // As the kubelet: a host-network pod keeps the node's hostname (no UTS
            // namespace of its own, where a hostname cannot be set).
            hostname: if net == Net::Host {
                String::new()
            } else {
                format!("{name}-{n}")
            },
            log_directory: log_dir.to_string_lossy().into_owned(),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: self.cd.driver.parent().into(),
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        network: if net == Net::Host { NS_NODE } else { 0 },
                        // The kubelet's default: a pid namespace per container.
                        pid: NS_CONTAINER,
                        ..Default::default()
                    }),
                    privileged,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// RunPodSandbox with this handler; the pod is stopped and removed on drop unless
    /// [`Pod::remove`] did it (checked) first.
    pub fn run_pod(&'a self, config: cri::PodSandboxConfig) -> Result<Pod<'a>> {
        let req = cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: self.handler.into(),
        };
        let id = self
            .cd
            .cri
            .rt("RunPodSandbox", |mut c| async move {
                c.run_pod_sandbox(req).await
            })?
            .pod_sandbox_id;
        Ok(Pod {
            ctx: self,
            id,
            config,
            removed: false,
        })
    }

    /// ContainerStatus (verbose: `info` holds the pid).
    pub fn status(&self, id: &str) -> Result<cri::ContainerStatusResponse> {
        let req = cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: true,
        };
        self.cd.cri.rt("ContainerStatus", |mut c| async move {
            c.container_status(req).await
        })
    }

    /// The container's state (CRI ContainerState).
    pub fn state(&self, id: &str) -> Result<i32> {
        Ok(self
            .status(id)?
            .status
            .ok_or_else(|| anyhow!("ContainerStatus of {id} has no status"))?
            .state)
    }

    /// Polls until the container is in `want`.
    pub fn wait_state(
        &self,
        id: &str,
        want: i32,
        timeout: Duration,
    ) -> Result<cri::ContainerStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self
                .status(id)?
                .status
                .ok_or_else(|| anyhow!("ContainerStatus of {id} has no status"))?;
            if st.state == want {
                return Ok(st);
            }
            if Instant::now() > deadline {
                bail!(
                    "container {id} is in state {} after {timeout:?}, want {want}: {st:?}",
                    st.state
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The container's init pid on the host (from the verbose status).
    pub fn pid(&self, id: &str) -> Result<i32> {
        let st = self.status(id)?;
        let info = st
            .info
            .get("info")
            .ok_or_else(|| anyhow!("verbose ContainerStatus of {id} has no info"))?;
        let v: serde_json::Value = serde_json::from_str(info).context("parse status info")?;
        v["pid"]
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| anyhow!("no pid in the status info of {id}: {info}"))
    }

    /// ExecSync; the response whatever the exit code.
    pub fn exec(&self, id: &str, cmd: &[&str], timeout_s: i64) -> Result<cri::ExecSyncResponse> {
        let req = cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: timeout_s,
        };
        self.cd
            .cri
            .rt("ExecSync", |mut c| async move { c.exec_sync(req).await })
    }

    /// ExecSync that must exit 0; its stdout.
    pub fn exec_ok(&self, id: &str, cmd: &[&str]) -> Result<String> {
        let r = self.exec(id, cmd, 20)?;
        ensure!(
            r.exit_code == 0,
            "exec {cmd:?} in {id} exited {}: stdout {:?} stderr {:?}",
            r.exit_code,
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        );
        Ok(String::from_utf8_lossy(&r.stdout).into_owned())
    }

    /// Waits until container `name` of `pod` has written `text` to its log.
    pub fn wait_log(&self, pod: &Pod, name: &str, text: &str) -> Result<()> {
        let log = pod.log_dir().join(format!("{name}.log"));
        wait_for(
            &format!("{text:?} in {}", log.display()),
            Duration::from_secs(10),
            || {
                Ok(std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains(text)
                    .then_some(()))
            },
        )
    }

    /// StopContainer with a grace period of `timeout` seconds.
    pub fn stop(&self, id: &str, timeout: i64) -> Result<()> {
        let req = cri::StopContainerRequest {
            container_id: id.into(),
            timeout,
        };
        self.cd.cri.rt("StopContainer", |mut c| async move {
            c.stop_container(req).await
        })?;
        Ok(())
    }

    /// RemoveContainer.
    pub fn remove(&self, id: &str) -> Result<()> {
        let req = cri::RemoveContainerRequest {
            container_id: id.into(),
        };
        self.cd.cri.rt("RemoveContainer", |mut c| async move {
            c.remove_container(req).await
        })?;
        Ok(())
    }
}

/// A busybox container running `script` with `sh -c`.
pub fn sh_container(name: &str, script: &str) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: integration::containerd::IMAGE.into(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into(), script.into()],
        log_path: format!("{name}.log"),
        linux: Some(cri::LinuxContainerConfig::default()),
        ..Default::default()
    }
}

/// A script that runs until SIGTERM (then exits 0 at once); it prints `ready` once
/// the handler is installed.
pub const IDLE: &str = "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done";

impl Pod<'_> {
    /// CreateContainer + StartContainer; waits until it runs. Returns its id.
    pub fn start(&self, config: cri::ContainerConfig) -> Result<String> {
        let id = self.create(config)?;
        let i = id.clone();
        self.ctx.cd.cri.rt("StartContainer", |mut c| async move {
            c.start_container(cri::StartContainerRequest { container_id: i })
                .await
        })?;
        Ok(id)
    }

    /// CreateContainer only.
    pub fn create(&self, config: cri::ContainerConfig) -> Result<String> {
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: self.id.clone(),
            config: Some(config),
            sandbox_config: Some(self.config.clone()),
        };
        Ok(self
            .ctx
            .cd
            .cri
            .rt("CreateContainer", |mut c| async move {
                c.create_container(req).await
            })?
            .container_id)
    }

    /// PodSandboxStatus.
    pub fn status(&self) -> Result<cri::PodSandboxStatus> {
        let req = cri::PodSandboxStatusRequest {
            pod_sandbox_id: self.id.clone(),
            verbose: false,
        };
        self.ctx
            .cd
            .cri
            .rt("PodSandboxStatus", |mut c| async move {
                c.pod_sandbox_status(req).await
            })?
            .status
            .ok_or_else(|| anyhow!("PodSandboxStatus of {} has no status", self.id))
    }

    /// The pod's log directory.
    pub fn log_dir(&self) -> PathBuf {
        PathBuf::from(&self.config.log_directory)
    }

    /// StopPodSandbox then RemovePodSandbox, both required to succeed; then the pod must
    /// be gone from ListPodSandbox.
    pub fn remove(mut self) -> Result<()> {
        self.removed = true;
        let cri = &self.ctx.cd.cri;
        let i = self.id.clone();
        cri.rt("StopPodSandbox", |mut c| async move {
            c.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: i })
                .await
        })?;
        let i = self.id.clone();
        cri.rt("RemovePodSandbox", |mut c| async move {
            c.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: i })
                .await
        })?;
        let list = cri.rt("ListPodSandbox", |mut c| async move {
            c.list_pod_sandbox(cri::ListPodSandboxRequest::default())
                .await
        })?;
        ensure!(
            !list.items.iter().any(|p| p.id == self.id),
            "pod {} still listed after RemovePodSandbox",
            self.id
        );
        Ok(())
    }
}

impl Drop for Pod<'_> {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        let cri = &self.ctx.cd.cri;
        let i = self.id.clone();
        let _ = cri.rt("StopPodSandbox", |mut c| async move {
            c.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: i })
                .await
        });
        let i = self.id.clone();
        let _ = cri.rt("RemovePodSandbox", |mut c| async move {
            c.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: i })
                .await
        });
    }
}

/// Polls `f` until it returns Some, for up to `timeout`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(x) = f()? {
            return Ok(x);
        }
        if Instant::now() > deadline {
            bail!("gave up waiting for {what} after {timeout:?}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The cgroup directory of `controller` (v1) or the unified one of process `pid`, on
/// the host.
pub fn cgroup_dir_of(pid: i32, controller: &str) -> Result<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .with_context(|| format!("read /proc/{pid}/cgroup"))?;
    let mut unified = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next(), parts.next(), parts.next());
        let (Some(ctrls), Some(path)) = (ctrls, path) else {
            continue;
        };
        if ctrls.split(',').any(|c| c == controller) {
            return Ok(PathBuf::from("/sys/fs/cgroup")
                .join(controller)
                .join(path.trim_start_matches('/')));
        }
        if ctrls.is_empty() {
            unified = Some(path.trim_start_matches('/').to_owned());
        }
    }
    let path = unified.ok_or_else(|| anyhow!("no {controller} cgroup for {pid}: {text}"))?;
    // A v2-only host mounts the unified hierarchy at /sys/fs/cgroup.
    let base = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        PathBuf::from("/sys/fs/cgroup/unified")
    };
    Ok(base.join(path))
}

/// Reads a cgroup file, trimmed.
pub fn read_cg(dir: &std::path::Path, file: &str) -> Result<String> {
    let p = dir.join(file);
    Ok(std::fs::read_to_string(&p)
        .with_context(|| format!("read {}", p.display()))?
        .trim()
        .to_owned())
}
