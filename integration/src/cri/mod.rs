//! CRI end-to-end tests (tests/cri_e2e): a private containerd per installed version with
//! its CRI plugin enabled, driven through the CRI gRPC API ([`client::Cri`]) with the
//! runtime handlers `runrs` (from deploy/'s snippets: config version 2 for containerd
//! 1.6/1.7, version 3 for 2.x) and `runc` (the reference).
//!
//! - Images: busybox ([`crate::containerd::IMAGE`], make-busybox-image.sh) and the pod
//!   sandbox image [`PAUSE_IMAGE`] (a static pause built by make-pause-image.sh), both
//!   imported with `ctr -n k8s.io images import`: nothing is pulled.
//! - Networking: pods with host networking, and pods on a CNI bridge ([`BRIDGE`],
//!   [`SUBNET`]) from Debian's containernetworking-plugins (/usr/lib/cni), with the
//!   conf dir and the host-local IPAM state inside the instance's directory.
//! - cgroups: `RUNRS_CRI_CGROUP_DRIVER=systemd` sets `SystemdCgroup = true` for both
//!   handlers and gives pods a kubelet-style `*.slice` parent ([`CgroupDriver`]); the
//!   default is cgroupfs with parent `/runrs-cri`.

pub mod client;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::cmd::run_capture;
use crate::containerd::{host, Ctr, Version, IMAGE, SOCKET_DIR};
pub use client::Cri;

/// The containerd namespace of the CRI plugin.
pub const K8S_NS: &str = "k8s.io";
/// The pod sandbox image (built and imported locally).
pub const PAUSE_IMAGE: &str = "localhost/runrs/pause:1";
/// The CNI bridge of the pod network.
pub const BRIDGE: &str = "runrscri0";
/// The pod network's subnet (host-local IPAM).
pub const SUBNET: &str = "10.88.231.0/24";
/// The pod network's gateway (the bridge's address on the host).
pub const GATEWAY: &str = "10.88.231.1";
/// Where Debian's containernetworking-plugins live.
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";

/// The two runtime handlers: runc (the reference) first, then runrs.
/// `RUNRS_E2E_RUNTIMES=runrs` (or `runc`) picks one.
pub fn handlers() -> Vec<&'static str> {
    let wanted = std::env::var("RUNRS_E2E_RUNTIMES").unwrap_or_default();
    ["runc", "runrs"]
        .into_iter()
        .filter(|h| wanted.trim().is_empty() || wanted.split(',').any(|w| w.trim() == *h))
        .collect()
}

/// How pod cgroups are named: containerd's `SystemdCgroup` option of both handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupDriver {
    /// cgroupfs paths `/runrs-cri/<id>`.
    Cgroupfs,
    /// systemd `runrscri.slice:cri-containerd:<id>` (a scope per container).
    Systemd,
}

impl CgroupDriver {
    /// From `RUNRS_CRI_CGROUP_DRIVER` (`cgroupfs`, the default, or `systemd`).
    pub fn from_env() -> Result<Self> {
        match std::env::var("RUNRS_CRI_CGROUP_DRIVER").as_deref() {
            Err(_) | Ok("") | Ok("cgroupfs") => Ok(Self::Cgroupfs),
            Ok("systemd") => Ok(Self::Systemd),
            Ok(other) => bail!("RUNRS_CRI_CGROUP_DRIVER={other:?}: want cgroupfs or systemd"),
        }
    }

    /// The value of `SystemdCgroup` in the handlers' options.
    pub fn systemd(self) -> bool {
        self == Self::Systemd
    }

    /// The pods' `linux.cgroup_parent`, as the kubelet passes it for this driver.
    pub fn parent(self) -> &'static str {
        match self {
            Self::Cgroupfs => "/runrs-cri",
            Self::Systemd => "runrscri.slice",
        }
    }

    /// The parent as a cgroup path (for the leak checker).
    pub fn parent_path(self) -> &'static str {
        match self {
            Self::Cgroupfs => "/runrs-cri",
            Self::Systemd => "/runrscri.slice",
        }
    }
}

/// The image archives every instance imports, built once per run.
pub struct Images {
    dir: tempfile::TempDir,
}

impl Images {
    /// Builds busybox and pause archives into a temp dir (a failure is a failure: these
    /// are our fixtures).
    pub fn build() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("runrs-cri-images-")
            .tempdir()?;
        let scripts = crate::workspace_dir().join("integration/scripts");
        for (script, out, name) in [
            ("make-busybox-image.sh", "busybox.tar", IMAGE),
            ("make-pause-image.sh", "pause.tar", PAUSE_IMAGE),
        ] {
            let mut cmd = Command::new("bash");
            cmd.arg(scripts.join(script))
                .arg(dir.path().join(out))
                .arg(name);
            run_capture(cmd, None, Duration::from_secs(120))?
                .ok()
                .with_context(|| format!("build the {name} image with {script}"))?;
        }
        Ok(Self { dir })
    }

    /// Each archive with its image's repository (the name without its tag).
    fn archives(&self) -> [(PathBuf, &'static str); 2] {
        let repo = |name: &'static str| name.rsplit_once(':').map_or(name, |(r, _)| r);
        [
            (self.dir.path().join("busybox.tar"), repo(IMAGE)),
            (self.dir.path().join("pause.tar"), repo(PAUSE_IMAGE)),
        ]
    }
}

/// The runrs entry of deploy/ for this containerd (config version 2 below 2.0, 3 from
/// 2.0), with `SystemdCgroup` added to its options table.
pub fn runrs_snippet(version: &Version, systemd_cgroup: bool) -> Result<String> {
    let v3 = !version.line.starts_with('1');
    let file = crate::workspace_dir().join(if v3 {
        "deploy/containerd-runrs-v3.toml"
    } else {
        "deploy/containerd-runrs.toml"
    });
    let text = fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?;
    // The snippet must end in the options table of the runrs entry, where the option
    // line is appended (checked, so a reordered snippet fails here and not in containerd).
    let last_table = text
        .lines()
        .map(str::trim)
        .rfind(|l| l.starts_with('['))
        .unwrap_or_default();
    ensure!(
        last_table.ends_with(".runtimes.runrs.options]"),
        "{}: the last table is {last_table:?}, not the runrs options table",
        file.display()
    );
    // A SystemdCgroup line of the snippet gives way to the driver under test.
    let text: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("SystemdCgroup"))
        .map(|l| format!("{l}\n"))
        .collect();
    Ok(format!("{text}    SystemdCgroup = {systemd_cgroup}\n"))
}

/// The whole containerd config of an instance in `dir`.
pub fn config(version: &Version, dir: &Path, driver: CgroupDriver) -> Result<String> {
    let d = dir.display();
    let systemd = driver.systemd();
    let runrs = runrs_snippet(version, systemd)?;
    // Plugins that would touch the host (NRI's socket, other snapshotters) stay off.
    let disabled = r#""io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.nri.v1.nri""#;
    let common = format!(
        "root = \"{d}/root\"\nstate = \"{d}/state\"\ndisabled_plugins = [{disabled}]\n\
         [grpc]\n  address = \"{d}/containerd.sock\"\n\
         [ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n\
         [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n"
    );
    // restrict_oom_score_adj: the sandbox asks for -998, and lowering a score needs
    // CAP_SYS_RESOURCE, which root lacks on the test machines; containerd then clamps
    // it to its own, as it does when it runs in a user namespace.
    Ok(if version.line.starts_with('1') {
        let p = "plugins.\"io.containerd.grpc.v1.cri\"";
        format!(
            "version = 2\n{common}\
             [{p}]\n  sandbox_image = \"{PAUSE_IMAGE}\"\n  stream_server_port = \"0\"\n  \
             restrict_oom_score_adj = true\n\
             [{p}.containerd]\n  snapshotter = \"overlayfs\"\n  default_runtime_name = \"runc\"\n\
             [{p}.containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n\
             [{p}.containerd.runtimes.runc.options]\n  SystemdCgroup = {systemd}\n\
             [{p}.cni]\n  bin_dir = \"{CNI_BIN_DIR}\"\n  conf_dir = \"{d}/cni\"\n\
             {runrs}"
        )
    } else {
        let rt = "plugins.'io.containerd.cri.v1.runtime'";
        let img = "plugins.'io.containerd.cri.v1.images'";
        format!(
            "version = 3\n{common}\
             [{img}]\n  snapshotter = 'overlayfs'\n\
             [{img}.pinned_images]\n  sandbox = '{PAUSE_IMAGE}'\n\
             [plugins.'io.containerd.grpc.v1.cri']\n  stream_server_port = '0'\n\
             [{rt}]\n  enable_cdi = false\n  restrict_oom_score_adj = true\n\
             [{rt}.cni]\n  bin_dirs = ['{CNI_BIN_DIR}']\n  conf_dir = '{d}/cni'\n\
             [{rt}.containerd]\n  default_runtime_name = 'runc'\n\
             [{rt}.containerd.runtimes.runc]\n  runtime_type = 'io.containerd.runc.v2'\n\
             [{rt}.containerd.runtimes.runc.options]\n  SystemdCgroup = {systemd}\n\
             {runrs}"
        )
    })
}

/// The CNI network of the pods: a bridge with host-local IPAM, state in `dir`.
pub fn cni_conflist(dir: &Path) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "runrs-cri",
        "plugins": [{
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": true,
            "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "ranges": [[{ "subnet": SUBNET, "gateway": GATEWAY }]],
                "dataDir": dir.join("cni-ipam"),
            }
        }]
    })
    .to_string()
}

/// A private containerd with the CRI plugin, in `/tmp/runrs-cri-<line>-XXXXXX`.
/// Dropping it removes its pods, stops it (containerd-down.sh) and removes the bridge.
pub struct CriContainerd {
    /// Which containerd.
    pub version: Version,
    /// Its directory (config, sockets, root, state, log, CNI conf, pod logs).
    pub dir: PathBuf,
    /// The cgroup driver of both handlers.
    pub driver: CgroupDriver,
    /// The CRI client.
    pub cri: Cri,
    /// `ctr -n k8s.io` of this version against this instance.
    pub ctr: Ctr,
    scripts: PathBuf,
    shim_dir: PathBuf,
}

impl CriContainerd {
    /// Writes the config and CNI conf, starts containerd, waits for CRI and imports the
    /// images. On failure what was started is torn down (drop).
    pub fn up(
        version: &Version,
        scripts: &Path,
        shim_dir: &Path,
        driver: CgroupDriver,
        images: &Images,
    ) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("runrs-cri-{}-", version.line))
            .tempdir()?
            .keep();
        let socket = dir.join("containerd.sock");
        let cd = CriContainerd {
            version: version.clone(),
            cri: Cri::connect(&socket)?,
            ctr: Ctr::new(version.ctr(), socket, K8S_NS),
            dir,
            driver,
            scripts: scripts.to_path_buf(),
            shim_dir: shim_dir.to_path_buf(),
        };
        fs::create_dir_all(cd.dir.join("cni"))?;
        fs::create_dir_all(cd.dir.join("pods"))?;
        fs::create_dir_all(cd.dir.join("tmp"))?;
        fs::write(
            cd.dir.join("cni/10-runrs-cri.conflist"),
            cni_conflist(&cd.dir),
        )?;
        fs::write(
            cd.dir.join("config.toml"),
            config(version, &cd.dir, driver)?,
        )?;
        cd.start()?;
        for (tar, repo) in images.archives() {
            cd.ctr
                .ok([
                    "images",
                    "import",
                    // A repo@digest alias, as a pulled image has: CRI reports it as
                    // the image ref, which a checkpoint archive records and its
                    // restore looks up.
                    "--digests",
                    "--base-name",
                    repo,
                    "--snapshotter",
                    "overlayfs",
                    &tar.to_string_lossy(),
                ])
                .with_context(|| format!("import {}", tar.display()))?;
        }
        Ok(cd)
    }

    /// containerd's gRPC socket.
    pub fn address(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// The pid file.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("containerd.pid")
    }

    /// containerd's pid.
    pub fn pid(&self) -> Result<i32> {
        crate::containerd::read_pid(&self.pid_file())
    }

    /// Starts containerd (new session, log appended to containerd.log) and waits until
    /// its CRI service answers `Version`.
    pub fn start(&self) -> Result<()> {
        let path = format!(
            "{}:{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            self.shim_dir.display(),
            self.version.bin_dir.display()
        );
        // Through sh, in a new session, so containerd is not our child: it outlives the
        // shell, is reaped by init and leaves no zombie of ours when it stops. In a
        // non-interactive shell the job is no group leader, so setsid execs in place
        // and $! is containerd.
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("setsid \"$0\" --config \"$1\" </dev/null >>\"$2\" 2>&1 & echo $!")
            .arg(self.version.bin_dir.join("containerd"))
            .arg(self.dir.join("config.toml"))
            .arg(self.log_path())
            .env("PATH", path)
            // containerd unpacks checkpoints into temp dirs it never removes: keep them
            // inside the instance's directory.
            .env("TMPDIR", self.dir.join("tmp"));
        let out = run_capture(cmd, None, Duration::from_secs(10))?
            .ok()
            .context("start containerd")?;
        fs::write(self.pid_file(), out.stdout.trim())?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = self.cri.rt_status("Version", |mut c| async move {
                c.version(runrs_cri_proto::v1::VersionRequest::default())
                    .await
            });
            match answer {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(_)) | Err(_) if Instant::now() < deadline => {
                    if !crate::proc::pid_alive(i64::from(self.pid()?)) {
                        bail!("containerd exited at start:\n{}", self.log_tail(0, 30));
                    }
                    thread::sleep(Duration::from_millis(200));
                }
                Ok(Err(s)) => bail!(
                    "containerd's CRI service does not answer: {s}\n{}",
                    self.log_tail(0, 30)
                ),
                Err(e) => return Err(e),
            }
        }
    }

    /// Stops containerd with SIGTERM (as systemd does on restart) and waits until it is
    /// gone; shims and containers live on.
    pub fn stop(&self) -> Result<()> {
        let pid = self.pid()?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGTERM)
            .with_context(|| format!("kill -TERM containerd {pid}"))?;
        host::wait_gone(pid, Duration::from_secs(20))
    }

    /// Live shim processes of this instance (their command line names its socket), as
    /// (pid, binary name).
    pub fn shims(&self) -> Vec<(i32, String)> {
        let sock = self.address().to_string_lossy().into_owned();
        host::pids()
            .into_iter()
            .filter_map(|p| {
                let cl = host::cmdline(p);
                let name = cl.first()?.rsplit('/').next()?.to_owned();
                (name.starts_with("containerd-shim") && cl.iter().any(|a| a.contains(&sock)))
                    .then_some((p, name))
            })
            .collect()
    }

    /// The leak checker's scope: shim state roots for k8s.io and the socket dir, the pod
    /// cgroup parent, mounts and shims naming this directory, pod network namespaces,
    /// containerd's descriptors.
    pub fn leak_scope(&self) -> crate::leaks::Scope {
        crate::leaks::Scope {
            state_roots: vec![
                Path::new("/run/containerd/runrs").join(K8S_NS),
                Path::new("/run/containerd/runc").join(K8S_NS),
                PathBuf::from(SOCKET_DIR),
            ],
            cgroup_parents: vec![self.driver.parent_path().to_owned()],
            cgroup_parents_shared: true,
            fifo_roots: Vec::new(),
            needles: vec![
                self.dir.to_string_lossy().into_owned(),
                "/netns/cni-".to_owned(),
            ],
            process_needles: Vec::new(),
            containerd_pid_file: Some(self.pid_file()),
            containerd_own: vec![self.dir.join("root")],
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("containerd.log")
    }

    /// The current length of containerd's log.
    pub fn log_len(&self) -> u64 {
        fs::metadata(self.log_path()).map(|m| m.len()).unwrap_or(0)
    }

    /// The last `lines` lines of containerd's log after byte `from`.
    pub fn log_tail(&self, from: u64, lines: usize) -> String {
        crate::containerd::log_tail(&self.log_path(), from, lines)
    }

    /// Removes every pod through CRI (best effort, for teardown after a failure).
    pub fn remove_all_pods(&self) {
        use runrs_cri_proto::v1::{
            ListPodSandboxRequest, RemovePodSandboxRequest, StopPodSandboxRequest,
        };
        let Ok(list) = self.cri.rt("ListPodSandbox", |mut c| async move {
            c.list_pod_sandbox(ListPodSandboxRequest::default()).await
        }) else {
            return;
        };
        for p in list.items {
            let id = p.id;
            let i = id.clone();
            let _ = self.cri.rt("StopPodSandbox", |mut c| async move {
                c.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: i })
                    .await
            });
            let _ = self.cri.rt("RemovePodSandbox", |mut c| async move {
                c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
                    .await
            });
        }
    }
}

impl Drop for CriContainerd {
    fn drop(&mut self) {
        self.remove_all_pods();
        let mut cmd = Command::new("bash");
        cmd.arg(self.scripts.join("containerd-down.sh"))
            .env("E2E_DIR", &self.dir)
            .env("E2E_NS", K8S_NS);
        if std::env::var_os("RUNRS_E2E_KEEP").is_some() {
            cmd.env("E2E_KEEP", "1");
        }
        match run_capture(cmd, None, Duration::from_secs(120)) {
            Ok(out) if out.success() => {}
            Ok(out) => eprintln!("containerd-down.sh for {}: {out}", self.dir.display()),
            Err(e) => eprintln!("containerd-down.sh for {}: {e:#}", self.dir.display()),
        }
        host::kill_processes_mentioning(&self.address().to_string_lossy());
        let mut ip = Command::new("ip");
        ip.args(["link", "del", BRIDGE]);
        let _ = run_capture(ip, None, Duration::from_secs(10));
        for d in ["/run/containerd/runrs", "/run/containerd/runc"] {
            host::remove_if_empty(&Path::new(d).join(K8S_NS));
        }
        if let Ok(mounts) = crate::proc::cgroup_mounts() {
            for m in mounts {
                if let Some(d) = crate::proc::cgroup_dir(&m, self.driver.parent_path()) {
                    host::remove_if_empty(&d);
                }
            }
        }
    }
}
