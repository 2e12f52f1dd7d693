//! Podman 4.3 (Debian 12), rootful, `--runtime` pointing at runrs or runc.
//!
//! Private storage (`--root/--runroot/--tmpdir`, vfs), `--cgroup-manager cgroupfs`,
//! `--events-backend file`, every container with `--network none` and
//! `--cgroup-parent /runrs-clients-podman`. A private containers.conf sets the default
//! rlimits below the host's hard limits: Podman's defaults (nofile and nproc 1048576)
//! need CAP_SYS_RESOURCE, which root lacks on these machines (runc fails the same way).

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use integration::cmd::CmdOutput;
use integration::containerd::runner::Runner;
use integration::leaks::{assert_no_leaks, Scope, Snapshot};

use crate::common::{self, expect_code, parse_counter, run, wait_for, Work, COUNTER, RUNC};

const PODMAN: &str = "/usr/bin/podman";
const CGROUP_PARENT: &str = "/runrs-clients-podman";

/// The checks, in order.
pub const CHECKS: &[&str] = &[
    "podman-run-exit-codes",
    "podman-detach-logs-exec-stop-rm",
    "podman-tty",
    "podman-resources",
    "podman-pause",
    "podman-checkpoint-restore",
    "podman-pod",
];

type Check = fn(&Podman, &str) -> Result<()>;

const FNS: &[Check] = &[
    run_exit_codes,
    detach_logs_exec_stop_rm,
    tty,
    resources,
    pause,
    checkpoint_restore,
    pod,
];

/// One podman configuration with one runtime.
pub struct Podman {
    dir: PathBuf,
    runtime: PathBuf,
    short: &'static str,
}

impl Podman {
    /// `podman <private storage flags> --runtime RT ARGS`.
    fn cmd(&self, args: &[&str]) -> Command {
        let d = &self.dir;
        let mut c = Command::new(PODMAN);
        c.env("CONTAINERS_CONF", d.join("containers.conf"));
        common::podman_flags(
            &mut c,
            &d.join("root"),
            &d.join("runroot"),
            Some(&d.join("tmp")),
            &self.runtime,
        );
        c.args(args);
        c
    }

    fn out(&self, args: &[&str]) -> Result<CmdOutput> {
        run(self.cmd(args))
    }

    fn ok(&self, args: &[&str]) -> Result<CmdOutput> {
        self.out(args)?.ok()
    }

    /// The container name of check `name` (unique per runtime).
    fn name(&self, name: &str) -> String {
        format!("rc-{name}-{}", self.short)
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

    fn scope(&self, names: &[String]) -> Scope {
        let d = &self.dir;
        Scope {
            state_roots: vec![
                d.join("root/vfs-containers"),
                d.join("runroot/vfs-containers"),
                PathBuf::from("/run/runrs"),
                PathBuf::from("/run/runc"),
            ],
            cgroup_parents: vec![CGROUP_PARENT.into()],
            needles: vec![d.to_string_lossy().into_owned()],
            process_needles: names.to_vec(),
            ..Scope::default()
        }
    }
}

/// Runs every podman check with runc, then with runrs.
pub fn suite(r: &mut Runner, work: &Work) {
    let version = match Command::new(PODMAN).arg("--version").output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        _ => {
            r.fail(
                "podman",
                "installed",
                format!(
                    "{PODMAN} missing: run integration/scripts/install-clients.sh (deps stage)"
                ),
            );
            return;
        }
    };
    let dir = work.path().join("podman");
    let mut setup = None;
    r.always(&version, "podman-setup", || {
        std::fs::create_dir_all(dir.join("tmp"))?;
        std::fs::write(
            dir.join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n",
        )?;
        let p = Podman {
            dir: dir.clone(),
            runtime: PathBuf::from(RUNC),
            short: "runc",
        };
        p.ok(&["load", "-i", &work.oci_archive.to_string_lossy()])?;
        // Warm up: podman makes its conmon cgroup and storage files on first use.
        p.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--cgroup-parent",
            CGROUP_PARENT,
            "busybox",
            "true",
        ])?;
        setup = Some(());
        Ok(())
    });
    if setup.is_some() {
        for (short, runtime) in [("runc", PathBuf::from(RUNC)), ("runrs", work.runrs.clone())] {
            let p = Podman {
                dir: dir.clone(),
                runtime,
                short,
            };
            let group = format!("{version} / {short}");
            for (name, f) in CHECKS.iter().zip(FNS) {
                r.check(&group, name, || {
                    let names = vec![p.name(name)];
                    let scope = p.scope(&names);
                    let before = Snapshot::take(&scope);
                    let result = f(&p, name);
                    // Whatever happened, nothing of the check may stay.
                    let _ = p.out(&["rm", "-f", "-t", "0", &p.name(name)]);
                    let _ = p.out(&["pod", "rm", "-f", "-t", "0", &p.name(name)]);
                    result?;
                    assert_no_leaks(&before, &scope, Duration::from_secs(10))
                });
            }
        }
    }
    // Teardown: podman's own storage (unmounts its shm mounts) and cgroups.
    let p = Podman {
        dir: dir.clone(),
        runtime: PathBuf::from(RUNC),
        short: "runc",
    };
    let _ = p.out(&["rm", "-a", "-f", "-t", "0"]);
    let _ = p.out(&["pod", "rm", "-a", "-f", "-t", "0"]);
    let _ = p.out(&["system", "reset", "-f"]);
    common::remove_cgroup_tree(CGROUP_PARENT);
}

fn run_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["run", "--network", "none", "--cgroup-parent", CGROUP_PARENT];
    v.extend_from_slice(extra);
    v
}

fn run_exit_codes(p: &Podman, name: &str) -> Result<()> {
    let n = p.name(name);
    let out = p.out(&run_args(&[
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
    // podman maps the runtime's wording: 127 for a missing binary, 126 for one that
    // cannot be executed.
    let out = p.out(&run_args(&[
        "--rm",
        "--name",
        &n,
        "busybox",
        "/nonexistent",
    ]))?;
    expect_code(&out, 127)?;
    let out = p.out(&run_args(&["--rm", "--name", &n, "busybox", "/etc/passwd"]))?;
    expect_code(&out, 126)?;
    Ok(())
}

fn detach_logs_exec_stop_rm(p: &Podman, name: &str) -> Result<()> {
    let n = p.name(name);
    let script = "echo started; trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; done";
    p.ok(&run_args(&[
        "-d", "--name", &n, "busybox", "sh", "-c", script,
    ]))?;
    wait_for(
        "the container's first log line",
        Duration::from_secs(10),
        || {
            p.out(&["logs", &n])
                .ok()
                .filter(|o| o.stdout.contains("started"))
        },
    )?;
    let out = p.out(&["exec", &n, "sh", "-c", "echo exec-ok; id -u; exit 7"])?;
    expect_code(&out, 7)?;
    ensure!(out.stdout == "exec-ok\n0\n", "exec stdout {:?}", out.stdout);
    let out = p.out(&["exec", &n, "/nonexistent"])?;
    expect_code(&out, 127)?;
    ensure!(p.inspect(&n, "{{.State.Status}}")? == "running");
    p.ok(&["stop", "-t", "10", &n])?;
    ensure!(p.inspect(&n, "{{.State.ExitCode}}")? == "0");
    let logs = p.ok(&["logs", &n])?;
    ensure!(
        logs.stdout == "started\nbye\n",
        "logs after stop {:?}",
        logs.stdout
    );
    p.ok(&["rm", &n])?;
    let out = p.out(&["inspect", &n])?;
    ensure!(!out.success(), "{n} still exists after rm");
    Ok(())
}

fn tty(p: &Podman, name: &str) -> Result<()> {
    let n = p.name(name);
    let pty = nix::pty::openpty(
        Some(&nix::pty::Winsize {
            ws_row: 31,
            ws_col: 97,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }),
        None,
    )?;
    let slave = |_| -> Result<Stdio> { Ok(Stdio::from(pty.slave.try_clone()?)) };
    let mut c = p.cmd(&run_args(&[
        "--rm",
        "-it",
        "--name",
        &n,
        "busybox",
        "sh",
        "-c",
        "tty; stty size; exit 4",
    ]));
    c.stdin(slave(0)?).stdout(slave(1)?).stderr(slave(2)?);
    let mut child = c.spawn().context("spawn podman run -it")?;
    drop(pty.slave);
    // Read the master until the client exits and the slave side is closed.
    let master = pty.master;
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        let mut fds = [nix::poll::PollFd::new(
            master.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut fds, 100u16).unwrap_or(0) > 0 {
            let mut b = [0u8; 4096];
            match nix::unistd::read(&master, &mut b) {
                Ok(n) if n > 0 => seen.extend_from_slice(&b[..n]),
                _ => {}
            }
        }
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "podman run -it did not exit; output {:?}",
                String::from_utf8_lossy(&seen)
            );
        }
    };
    let text = String::from_utf8_lossy(&seen).replace('\r', "");
    ensure!(
        status.code() == Some(4),
        "podman run -it exited {status:?}; output {text:?}"
    );
    ensure!(
        text.contains("/dev/pts/"),
        "no tty in the container: {text:?}"
    );
    ensure!(
        text.contains("31 97"),
        "the terminal size did not reach the container: {text:?}"
    );
    Ok(())
}

fn resources(p: &Podman, name: &str) -> Result<()> {
    let n = p.name(name);
    p.ok(&run_args(&[
        "-d",
        "--name",
        &n,
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "77",
        "busybox",
        "sleep",
        "100",
    ]))?;
    // The container's own view (podman mounts its cgroups at /sys/fs/cgroup)...
    let inside = p.ok(&[
        "exec",
        &n,
        "cat",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        "/sys/fs/cgroup/pids/pids.max",
    ])?;
    ensure!(
        inside.stdout == "67108864\n50000\n77\n",
        "cgroup files inside: {:?}",
        inside.stdout
    );
    // ...and the host's.
    let pid: i32 = p.inspect(&n, "{{.State.Pid}}")?.parse()?;
    let read = |c: &str, f: &str| -> Result<String> {
        let path = common::v1_cgroup_file(pid, c, f)?;
        ensure!(
            path.to_string_lossy().contains(CGROUP_PARENT),
            "{} is not below {CGROUP_PARENT}",
            path.display()
        );
        Ok(std::fs::read_to_string(&path)?.trim().to_owned())
    };
    ensure!(read("memory", "memory.limit_in_bytes")? == "67108864");
    ensure!(read("cpu", "cpu.cfs_quota_us")? == "50000");
    p.ok(&["update", "--memory", "96m", &n])?;
    ensure!(read("memory", "memory.limit_in_bytes")? == "100663296");
    p.ok(&["rm", "-f", "-t", "0", &n])?;
    Ok(())
}

fn pause(p: &Podman, name: &str) -> Result<()> {
    let n = p.name(name);
    p.ok(&run_args(&[
        "-d", "--name", &n, "busybox", "sh", "-c", COUNTER,
    ]))?;
    wait_for("the counter", Duration::from_secs(10), || {
        p.counter(&n).ok().filter(|c| *c > 2)
    })?;
    let pid: i32 = p.inspect(&n, "{{.State.Pid}}")?.parse()?;
    p.ok(&["pause", &n])?;
    ensure!(p.inspect(&n, "{{.State.Status}}")? == "paused");
    let freezer = common::v1_cgroup_file(pid, "freezer", "freezer.state")?;
    ensure!(std::fs::read_to_string(&freezer)?.trim() == "FROZEN");
    p.ok(&["unpause", &n])?;
    ensure!(p.inspect(&n, "{{.State.Status}}")? == "running");
    let c = p.counter(&n)?;
    wait_for("the counter after unpause", Duration::from_secs(10), || {
        p.counter(&n).ok().filter(|x| *x > c)
    })?;
    p.ok(&["stop", "-t", "10", &n])?;
    Ok(())
}

fn checkpoint_restore(p: &Podman, name: &str) -> Result<()> {
    let n = p.name(name);
    p.ok(&run_args(&[
        "-d", "--name", &n, "busybox", "sh", "-c", COUNTER,
    ]))?;
    wait_for("the counter", Duration::from_secs(10), || {
        p.counter(&n).ok().filter(|c| *c > 2)
    })?;
    // --leave-running: a checkpoint, and the container goes on.
    p.ok(&["container", "checkpoint", "--leave-running", &n])?;
    ensure!(p.inspect(&n, "{{.State.Status}}")? == "running");
    let c = p.counter(&n)?;
    wait_for(
        "the counter after --leave-running",
        Duration::from_secs(10),
        || p.counter(&n).ok().filter(|x| *x > c),
    )?;
    // A plain checkpoint stops it; restore brings the counter back where it was.
    p.ok(&["container", "checkpoint", &n])?;
    ensure!(p.inspect(&n, "{{.State.Status}}")? == "exited");
    p.ok(&["container", "restore", &n])?;
    ensure!(p.inspect(&n, "{{.State.Status}}")? == "running");
    let restored = p.counter(&n)?;
    ensure!(
        restored >= c,
        "the restored counter restarted: {restored} < {c}"
    );
    p.ok(&["stop", "-t", "10", &n])?;
    Ok(())
}

fn pod(p: &Podman, name: &str) -> Result<()> {
    let n = p.name(name);
    let c1 = format!("{n}-a");
    p.ok(&[
        "pod",
        "create",
        "--name",
        &n,
        "--network",
        "none",
        "--cgroup-parent",
        CGROUP_PARENT,
    ])?;
    p.ok(&[
        "run", "-d", "--pod", &n, "--name", &c1, "busybox", "sleep", "100",
    ])?;
    // The container shares the infra container's namespaces (uts, ipc, net).
    let infra_pid: i32 = p
        .ok(&["pod", "inspect", "-f", "{{.InfraContainerID}}", &n])
        .and_then(|o| p.inspect(o.stdout.trim(), "{{.State.Pid}}"))?
        .parse()?;
    let pid: i32 = p.inspect(&c1, "{{.State.Pid}}")?.parse()?;
    for ns in ["net", "ipc", "uts"] {
        let a = integration::proc::ns_link(&infra_pid.to_string(), ns)?;
        let b = integration::proc::ns_link(&pid.to_string(), ns)?;
        ensure!(
            a == b,
            "{ns} namespace not shared with the infra container: {a} != {b}"
        );
    }
    let out = p.ok(&["exec", &c1, "sh", "-c", "echo in-pod"])?;
    ensure!(out.stdout == "in-pod\n");
    p.ok(&["pod", "stop", "-t", "0", &n])?;
    ensure!(p.inspect(&c1, "{{.State.Status}}")? == "exited");
    let pod_id = p
        .ok(&["pod", "inspect", "-f", "{{.ID}}", &n])?
        .stdout
        .trim()
        .to_owned();
    p.ok(&["pod", "rm", "-f", &n])?;
    // Podman 4.3 (cgroupfs) removes the pod's cgroup only in the hierarchies of the
    // controllers it knows and leaves it in the named `systemd` one and in the cgroup2
    // one of a hybrid host, with runc as with runrs: that is podman's, removed here so
    // the leak check sees what the runtime left.
    common::remove_cgroup_tree_in(
        &format!("{CGROUP_PARENT}/{pod_id}"),
        &["systemd", "unified"],
    );
    Ok(())
}
