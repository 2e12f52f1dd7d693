//! Docker: 20.10 (Debian 12) with `--add-runtime runrs=<runrs>` (containerd's runc shim
//! with BinaryName = runrs) and 26.1 (Debian 13's binaries in /opt/docker-26) with
//! `runtimeType: io.containerd.runrs.v2` (runrs's own shim); Docker's default runc is the
//! reference in both.
//!
//! Each engine is one private dockerd (`--data-root/--exec-root/-H/--pidfile` under the
//! work dir, the containerd it starts under its exec root, vfs storage, no bridge or
//! iptables, `--experimental` for checkpoints, `--cgroup-parent /runrs-clients-<engine>`),
//! stopped at the end of its checks.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use integration::cmd::CmdOutput;
use integration::containerd::runner::Runner;
use integration::leaks::{assert_no_leaks, Scope, Snapshot};

use crate::common::{self, expect_code, parse_counter, run, wait_for, Work, COUNTER};

/// The checks, in order.
pub const CHECKS: &[&str] = &[
    "docker-run-exit-codes",
    "docker-exec-stop",
    "docker-checkpoint-leave-running",
    "docker-checkpoint-exit",
];

type Check = fn(&Docker, &str) -> Result<()>;

const FNS: &[Check] = &[
    run_exit_codes,
    exec_stop,
    checkpoint_leave_running,
    checkpoint_exit,
];

/// How runrs is plugged into an engine.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    /// `--add-runtime runrs=<runrs>`: containerd's runc shim runs the runrs CLI.
    AddRuntime,
    /// daemon.json `runtimeType: io.containerd.runrs.v2`: runrs's shim.
    RuntimeType,
}

/// One Docker engine of the matrix.
pub struct Engine {
    short: &'static str,
    dockerd: PathBuf,
    client: PathBuf,
    /// The version `dockerd --version` must report ("20.10.", "26.").
    want: &'static str,
    via: Via,
}

impl Engine {
    /// Docker 20.10 from Debian 12 (its packages, by absolute path: /usr/local/bin/docker
    /// may be another client) and Docker 26 from /opt/docker-26.
    pub fn all() -> Vec<Engine> {
        let d26 = std::env::var_os("RUNRS_DOCKER26_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/opt/docker-26"));
        vec![
            Engine {
                short: "docker20",
                dockerd: "/usr/sbin/dockerd".into(),
                client: "/usr/bin/docker".into(),
                want: "20.10.",
                via: Via::AddRuntime,
            },
            Engine {
                short: "docker26",
                dockerd: d26.join("usr/sbin/dockerd"),
                client: d26.join("usr/bin/docker"),
                want: "26.",
                via: Via::RuntimeType,
            },
        ]
    }

    fn version(&self) -> Result<String> {
        for bin in [&self.dockerd, &self.client] {
            let out = Command::new(bin)
                .arg("--version")
                .output()
                .with_context(|| {
                    format!(
                        "{} missing: run integration/scripts/install-clients.sh (deps stage)",
                        bin.display()
                    )
                })?;
            let v = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            ensure!(
                v.contains(&format!("version {}", self.want)),
                "{} is {v:?}, not {}x (integration/scripts/install-clients.sh)",
                bin.display(),
                self.want
            );
        }
        let out = Command::new(&self.dockerd).arg("--version").output()?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

/// A running private dockerd; stopped (and its files removed) on drop.
pub struct Docker {
    dir: PathBuf,
    client: PathBuf,
    child: Child,
    cgroup_parent: String,
    /// The runtime name containers of the current check use.
    runtime: &'static str,
}

impl Docker {
    fn start(e: &Engine, work: &Work) -> Result<Self> {
        let dir = work.path().join(e.short);
        std::fs::create_dir_all(&dir)?;
        let cgroup_parent = format!("/runrs-clients-{}", e.short);
        let mut c = Command::new(&e.dockerd);
        c.arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", dir.join("docker.sock").display()))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .args([
                "--bridge",
                "none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--storage-driver",
                "vfs",
                "--experimental",
                "--cgroup-parent",
                &cgroup_parent,
                // Docker's default rlimits are fine; the machine's root has no
                // CAP_SYS_RESOURCE, so none may exceed the host's hard limits.
                "--default-ulimit",
                "nofile=1024:1024",
            ]);
        // The shim and criu (/usr/local/sbin) are found through PATH, by containerd
        // and the shims it starts.
        let path = format!(
            "{}:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            work.shim.path().display()
        );
        c.env("PATH", path);
        match e.via {
            Via::AddRuntime => {
                c.arg("--add-runtime")
                    .arg(format!("runrs={}", work.runrs.display()));
            }
            Via::RuntimeType => {
                let conf = dir.join("daemon.json");
                std::fs::write(
                    &conf,
                    r#"{"runtimes": {"runrs": {"runtimeType": "io.containerd.runrs.v2"}}}"#,
                )?;
                c.arg("--config-file").arg(conf);
            }
        }
        let log = std::fs::File::create(dir.join("dockerd.log"))?;
        c.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        let child = c
            .spawn()
            .with_context(|| format!("spawn {}", e.dockerd.display()))?;
        let d = Docker {
            dir,
            client: e.client.clone(),
            child,
            cgroup_parent,
            runtime: "runc",
        };
        let up = wait_for("dockerd to answer", Duration::from_secs(60), || {
            d.out(&["version"]).ok().filter(CmdOutput::success)
        });
        if let Err(err) = up {
            bail!("{err:#}\n{}", d.log_tail());
        }
        d.ok(&["load", "-i", &work.docker_archive.to_string_lossy()])?;
        Ok(d)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.client);
        c.env("DOCKER_CONFIG", self.dir.join("client"))
            .arg("-H")
            .arg(format!("unix://{}", self.dir.join("docker.sock").display()))
            .args(args);
        c
    }

    fn out(&self, args: &[&str]) -> Result<CmdOutput> {
        run(self.cmd(args))
    }

    fn ok(&self, args: &[&str]) -> Result<CmdOutput> {
        self.out(args)?.ok()
    }

    fn name(&self, check: &str) -> String {
        format!("rc-{check}-{}", self.runtime)
    }

    fn run_args<'a>(&self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["run", "--runtime", self.runtime, "--network", "none"];
        v.extend_from_slice(extra);
        v
    }

    fn inspect(&self, name: &str, format: &str) -> Result<String> {
        Ok(self
            .ok(&["inspect", "-f", format, name])?
            .stdout
            .trim()
            .to_owned())
    }

    fn counter(&self, name: &str) -> Result<u64> {
        parse_counter(&self.ok(&["exec", name, "cat", "/tmp/n"])?)
    }

    fn containerd_socket(&self) -> PathBuf {
        self.dir.join("exec/containerd/containerd.sock")
    }

    fn scope(&self, names: &[String]) -> Scope {
        let exec = self.dir.join("exec");
        Scope {
            state_roots: vec![
                exec.join("runtime-runrs/moby"),
                exec.join("runtime-runc/moby"),
                exec.join("containerd/daemon/io.containerd.runtime.v2.task/moby"),
                self.dir.join("data/containers"),
                PathBuf::from("/run/containerd/runrs/moby"),
            ],
            cgroup_parents: vec![self.cgroup_parent.clone()],
            // dockerd makes the parent at the first container and keeps it.
            cgroup_parents_shared: true,
            needles: vec![self.dir.to_string_lossy().into_owned()],
            process_needles: names.to_vec(),
            ..Scope::default()
        }
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        if let Ok(out) = self.out(&["ps", "-aq"]) {
            for id in out.stdout.split_whitespace() {
                let _ = self.out(&["rm", "-f", id]);
            }
        }
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // The containerd dockerd started exits with it; wait for it before removing.
        wait_gone_mentioning(&self.dir, Duration::from_secs(20));
        unmount_below(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
        common::remove_cgroup_tree(&self.cgroup_parent);
    }
}

fn wait_gone_mentioning(dir: &Path, timeout: Duration) {
    let needle = dir.to_string_lossy().into_owned();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if integration::containerd::host::shim_pids(&needle).is_empty()
            && !integration::cmd::host("pgrep", &["-f", &needle]).is_ok_and(|o| o.success())
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    integration::containerd::host::kill_processes_mentioning(&needle);
}

fn unmount_below(dir: &Path) {
    let Ok(mounts) = integration::proc::self_mounts() else {
        return;
    };
    let mut points: Vec<PathBuf> = mounts
        .into_iter()
        .map(|m| PathBuf::from(m.mount_point))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort();
    for p in points.iter().rev() {
        let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Runs every check of engine `e`, runc first, then runrs.
/// containerd's checkpoint temp dirs (`os.MkdirTemp("", "ctrd-checkpoint")`).
fn checkpoint_temp_dirs() -> std::collections::BTreeSet<PathBuf> {
    std::fs::read_dir("/tmp")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("ctrd-checkpoint")
        })
        .map(|e| e.path())
        .collect()
}

pub fn suite(r: &mut Runner, work: &Work, e: &Engine) {
    let version = match e.version() {
        Ok(v) => v,
        Err(err) => {
            r.fail(e.short, "installed", format!("{err:#}"));
            return;
        }
    };
    let mut daemon = None;
    r.always(&version, &format!("{}-dockerd-up", e.short), || {
        daemon = Some(Docker::start(e, work)?);
        Ok(())
    });
    let Some(mut d) = daemon else { return };
    for runtime in ["runc", "runrs"] {
        d.runtime = runtime;
        let group = format!("{version} / {runtime}");
        for (name, f) in CHECKS.iter().zip(FNS) {
            if *name == "docker-checkpoint-exit" && runtime == "runrs" && e.via == Via::RuntimeType
            {
                r.skip(
                    &group,
                    name,
                    "Docker sends CheckpointOptions (Exit) only to runtimes with runc options; \
                     a runtimeType shim gets none and cannot tell (containerd's runc shim \
                     under runtimeType keeps running too)",
                );
                continue;
            }
            r.check(&group, name, || {
                let names = vec![d.name(name)];
                let scope = d.scope(&names);
                let before = Snapshot::take(&scope);
                let temp_before = checkpoint_temp_dirs();
                let result = f(&d, name);
                let _ = d.out(&["rm", "-f", &d.name(name)]);
                // containerd 1.x's task service makes /tmp/ctrd-checkpoint* for a
                // checkpoint without an image path and never removes it (with runc as
                // with runrs): not the runtime's to clean, but nothing may stay behind.
                for dir in checkpoint_temp_dirs().difference(&temp_before) {
                    let _ = std::fs::remove_dir_all(dir);
                }
                if result.is_err() {
                    println!("dockerd log:\n{}", d.log_tail());
                }
                result?;
                assert_no_leaks(&before, &scope, Duration::from_secs(10))
            });
        }
    }
    drop(d);
}

fn run_exit_codes(d: &Docker, name: &str) -> Result<()> {
    let n = d.name(name);
    let out = d.out(&d.run_args(&[
        "--rm",
        "--name",
        &n,
        "busybox",
        "sh",
        "-c",
        "echo hi; exit 3",
    ]))?;
    expect_code(&out, 3)?;
    ensure!(out.stdout.trim() == "hi", "stdout {:?}", out.stdout);
    // Docker recognises runc's wording: 127 missing, 126 not executable, 125 other.
    let out = d.out(&d.run_args(&["--rm", "--name", &n, "busybox", "/nonexistent"]))?;
    expect_code(&out, 127)?;
    let out = d.out(&d.run_args(&["--rm", "--name", &n, "busybox", "/etc/passwd"]))?;
    expect_code(&out, 126)?;
    let out = d.out(&d.run_args(&[
        "--rm",
        "--name",
        &n,
        "--user",
        "nosuchuser",
        "busybox",
        "true",
    ]))?;
    expect_code(&out, 125)?;
    Ok(())
}

fn exec_stop(d: &Docker, name: &str) -> Result<()> {
    let n = d.name(name);
    let script = "echo started; trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; done";
    d.ok(&d.run_args(&["-d", "--name", &n, "busybox", "sh", "-c", script]))?;
    let out = d.out(&["exec", &n, "sh", "-c", "echo exec-ok; id -u; exit 5"])?;
    expect_code(&out, 5)?;
    ensure!(out.stdout == "exec-ok\n0\n", "exec stdout {:?}", out.stdout);
    // An exec whose binary is missing: Docker says 126 for it (runc too).
    let out = d.out(&["exec", &n, "/nonexistent"])?;
    expect_code(&out, 126)?;
    let t = Instant::now();
    d.ok(&["stop", "-t", "10", &n])?;
    ensure!(
        t.elapsed() < Duration::from_secs(8),
        "stop took {:?}: SIGTERM did not reach the trap",
        t.elapsed()
    );
    ensure!(d.inspect(&n, "{{.State.ExitCode}}")? == "0");
    let logs = d.ok(&["logs", &n])?;
    ensure!(logs.stdout == "started\nbye\n", "logs {:?}", logs.stdout);
    // Started again, and killed.
    d.ok(&["start", &n])?;
    ensure!(d.inspect(&n, "{{.State.Status}}")? == "running");
    d.ok(&["kill", &n])?;
    wait_for(
        "the killed container to exit",
        Duration::from_secs(10),
        || {
            d.inspect(&n, "{{.State.ExitCode}}")
                .ok()
                .filter(|c| c == "137")
        },
    )?;
    d.ok(&["rm", &n])?;
    Ok(())
}

/// Docker (20.10 and 26) puts the checkpoint's blob into containerd's content store at `start
/// --checkpoint`; the blob `checkpoint create` left there is collected a moment later,
/// and until then the restore fails with "content ... already exists" (moby#42900, with
/// runc as well). Wait until containerd's content store is empty.
fn wait_content_collected(d: &Docker) -> Result<()> {
    let sock = d.containerd_socket();
    wait_for(
        "containerd to collect the checkpoint blob",
        Duration::from_secs(30),
        || {
            let mut c = Command::new("/usr/bin/ctr");
            c.arg("-a")
                .arg(&sock)
                .args(["-n", "moby", "content", "ls", "-q"]);
            run(c)
                .ok()
                .filter(|o| o.success() && o.stdout.trim().is_empty())
        },
    )?;
    Ok(())
}

fn start_counter(d: &Docker, n: &str) -> Result<()> {
    d.ok(&d.run_args(&["-d", "--name", n, "busybox", "sh", "-c", COUNTER]))?;
    wait_for("the counter", Duration::from_secs(10), || {
        d.counter(n).ok().filter(|c| *c > 5)
    })?;
    Ok(())
}

fn restore_and_check(d: &Docker, n: &str, at_checkpoint: u64) -> Result<()> {
    wait_content_collected(d)?;
    d.ok(&["start", "--checkpoint", "cp1", n])?;
    ensure!(d.inspect(n, "{{.State.Status}}")? == "running");
    let restored = d.counter(n)?;
    ensure!(
        restored >= at_checkpoint,
        "the restored counter restarted: {restored} < {at_checkpoint} (value at the checkpoint)"
    );
    d.ok(&["stop", "-t", "10", n])?;
    Ok(())
}

fn checkpoint_leave_running(d: &Docker, name: &str) -> Result<()> {
    let n = d.name(name);
    start_counter(d, &n)?;
    let before = d.counter(&n)?;
    d.ok(&["checkpoint", "create", "--leave-running", &n, "cp1"])?;
    let c = d.counter(&n)?;
    ensure!(d.inspect(&n, "{{.State.Status}}")? == "running");
    wait_for(
        "the counter after --leave-running",
        Duration::from_secs(10),
        || d.counter(&n).ok().filter(|x| *x > c),
    )?;
    d.ok(&["stop", "-t", "10", &n])?;
    restore_and_check(d, &n, before)
}

fn checkpoint_exit(d: &Docker, name: &str) -> Result<()> {
    let n = d.name(name);
    start_counter(d, &n)?;
    let c = d.counter(&n)?;
    d.ok(&["checkpoint", "create", &n, "cp1"])?;
    // Without --leave-running the container stops at the checkpoint.
    wait_for(
        "the checkpointed container to stop",
        Duration::from_secs(10),
        || {
            d.inspect(&n, "{{.State.Status}}")
                .ok()
                .filter(|s| s == "exited")
        },
    )?;
    restore_and_check(d, &n, c)
}
