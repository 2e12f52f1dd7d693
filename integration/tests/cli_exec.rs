//! `exec`: a process joins a running container (namespaces, cgroup, capabilities, user),
//! its exit code and errors reach the caller; plus descriptors passed to the container
//! with `--preserve-fds` and systemd socket activation (LISTEN_FDS).

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use integration::cmd::{host, run_capture, run_to_files};
use integration::config::{set_args, sh};
use integration::{Bundle, ConsoleSocket, Runtime};
use serde_json::json;

const T: Duration = Duration::from_secs(20);

fn running(rt: &Runtime, name: &str) -> Result<Bundle> {
    let b = Bundle::with_config(name, |c| set_args(c, &["sleep", "60"]))?;
    rt.create_and_start(&b)?;
    Ok(b)
}

fn exec(rt: &Runtime, args: &[&str]) -> Result<integration::CmdOutput> {
    let mut full = vec!["exec"];
    full.extend_from_slice(args);
    run_capture(rt.command(&full), None, T)
}

#[test]
fn exec_joins_the_containers_namespaces_and_cgroup() -> Result<()> {
    let rt = Runtime::new()?;
    let b = running(&rt, "exec-ns")?;
    let init_pid = rt.state(b.id())?.pid;
    let out = exec(&rt, &[
            b.id(),
            "sh",
            "-c",
            "echo pid=$$; for n in pid mnt net ipc uts; do echo $n=$(readlink /proc/self/ns/$n); done; \
             grep -E '^CapEff' /proc/self/status; echo cg=$(grep -E '^[0-9]+:pids:' /proc/self/cgroup)",
        ],
    )?
    .ok()?;
    let v = out.stdout;
    let pid: i32 = v
        .lines()
        .find_map(|l| l.strip_prefix("pid="))
        .context("pid")?
        .parse()?;
    ensure!(
        pid > 1,
        "exec'd process should be a non-init pid inside the container's pid namespace: {v}"
    );
    for n in ["pid", "mnt", "net", "ipc", "uts"] {
        let host_view = std::fs::read_link(format!("/proc/{init_pid}/ns/{n}"))?;
        let want = format!("{n}={}", host_view.display());
        ensure!(
            v.lines().any(|l| l == want),
            "{n} namespace differs from the init's: {v}"
        );
    }
    let init_cg = std::fs::read_to_string(format!("/proc/{init_pid}/cgroup"))?;
    let init_pids = init_cg
        .lines()
        .find(|l| l.contains(":pids:"))
        .context("init pids cgroup")?;
    ensure!(
        v.contains(&format!("cg={init_pids}")),
        "cgroup differs: {v} vs {init_pids}"
    );
    // The default spec's capabilities: AUDIT_WRITE, KILL, NET_BIND_SERVICE.
    ensure!(v.contains("CapEff:\t0000000020000420"), "capabilities: {v}");
    rt.delete_force(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}

#[test]
fn exec_exit_codes_and_errors() -> Result<()> {
    let rt = Runtime::new()?;
    let b = running(&rt, "exec-codes")?;
    let out = exec(&rt, &[b.id(), "sh", "-c", "exit 5"])?;
    ensure!(out.code() == 5, "exit code: {out:?}");
    let out = exec(&rt, &[b.id(), "/nonexistent-binary"])?.fails()?;
    out.stderr_mentions("nonexistent-binary")?;
    let out = exec(&rt, &[b.id(), "sh", "-c", "kill -9 $$"])?;
    ensure!(out.code() == 137, "signalled exec: {out:?}");
    rt.delete_force(b.id())?.ok()?;
    let out = exec(&rt, &[b.id(), "true"])?.fails()?;
    out.stderr_mentions("not exist")?;
    rt.assert_no_leftovers(&b)
}

#[test]
fn exec_user_env_cwd_and_process_file() -> Result<()> {
    let rt = Runtime::new()?;
    let b = running(&rt, "exec-user")?;
    let out = exec(
        &rt,
        &[
            "--user",
            "1000:1001",
            "--env",
            "FOO=bar",
            "--cwd",
            "/tmp",
            b.id(),
            "sh",
            "-c",
            "echo id=$(id -u):$(id -g) foo=$FOO cwd=$(pwd) path=$PATH",
        ],
    )?
    .ok()?;
    ensure!(out.stdout.contains("id=1000:1001"), "{out:?}");
    ensure!(
        out.stdout.contains("foo=bar") && out.stdout.contains("cwd=/tmp"),
        "{out:?}"
    );
    // The container's own env is inherited.
    ensure!(out.stdout.contains("path=/usr/local/sbin"), "{out:?}");

    let p = b.path().join("process.json");
    std::fs::write(
        &p,
        json!({
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", "echo from-file $X"],
            "env": ["PATH=/bin:/usr/bin", "X=42"],
            "cwd": "/"
        })
        .to_string(),
    )?;
    let out = exec(&rt, &["--process", p.to_str().context("path")?, b.id()])?.ok()?;
    ensure!(out.stdout.trim() == "from-file 42", "{out:?}");
    rt.delete_force(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}

#[test]
fn exec_detached_with_pid_file() -> Result<()> {
    let rt = Runtime::new()?;
    let b = running(&rt, "exec-detach")?;
    let init_pid = rt.state(b.id())?.pid;
    let pidfile = b.path().join("exec.pid");
    // A detached exec keeps the runtime's stdio (pass-through): give it files, not pipes.
    let cmd = rt.command([
        "exec",
        "--detach",
        "--pid-file",
        pidfile.to_str().context("path")?,
        b.id(),
        "sleep",
        "30",
    ]);
    run_to_files(
        cmd,
        &b.path().join("exec.out"),
        &b.path().join("exec.err"),
        T,
    )?
    .ok()?;
    let pid: i32 = std::fs::read_to_string(&pidfile)?.trim().parse()?;
    ensure!(
        std::fs::read_link(format!("/proc/{pid}/ns/pid"))?
            == std::fs::read_link(format!("/proc/{init_pid}/ns/pid"))?,
        "detached exec not in the container's pid namespace"
    );
    rt.delete_force(b.id())?.ok()?;
    ensure!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true),
        "exec'd process survived delete --force"
    );
    rt.assert_no_leftovers(&b)
}

#[test]
fn exec_with_a_terminal() -> Result<()> {
    let rt = Runtime::new()?;
    let b = running(&rt, "exec-tty")?;
    let sock = ConsoleSocket::new()?;
    let mut cmd = rt.command([
        "exec",
        "--tty",
        "--detach",
        "--console-socket",
        sock.path().to_str().context("path")?,
        b.id(),
        "sh",
        "-c",
        "tty; sleep 1",
    ]);
    cmd.stdin(std::process::Stdio::null());
    let out = run_capture(cmd, None, T)?.ok()?;
    let pty = sock
        .receive(T)
        .with_context(|| format!("no pty master received ({out:?})"))?;
    let text = pty.read_until("/dev/pts/", T)?;
    ensure!(text.contains("/dev/pts/"), "{text}");
    rt.delete_force(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}

#[test]
fn preserved_and_socket_activation_fds() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("exec-fds", |c| {
        sh(c, "echo via-fd3 >&3; echo fds=$LISTEN_FDS pid=$LISTEN_PID");
    })?;
    let bin = rt.bin().display().to_string();
    let root = rt.root().display().to_string();
    let out_file = b.path().join("fd3.txt");
    // --preserve-fds 1: fd 3 of the runtime becomes fd 3 of the container.
    let script = format!(
        "exec 3>{f}; exec {bin} --root {root} run --preserve-fds 1 --bundle {b} {id}",
        f = out_file.display(),
        b = b.path().display(),
        id = b.id()
    );
    let out = host("sh", &["-c", &script])?;
    ensure!(
        std::fs::read_to_string(&out_file)?.trim() == "via-fd3",
        "{out:?}"
    );
    ensure!(
        out.stdout.contains("fds= pid="),
        "no LISTEN_* without activation: {out:?}"
    );
    // LISTEN_FDS for this very process (LISTEN_PID = $$ survives the exec).
    let out_file2 = b.path().join("fd3-listen.txt");
    let script = format!(
        "exec 3>{f}; LISTEN_FDS=1 LISTEN_PID=$$ exec {bin} --root {root} run --bundle {b} {id}",
        f = out_file2.display(),
        b = b.path().display(),
        id = b.id()
    );
    let out = host("sh", &["-c", &script])?;
    ensure!(
        std::fs::read_to_string(&out_file2)?.trim() == "via-fd3",
        "{out:?}"
    );
    ensure!(out.stdout.contains("fds=1 pid=1"), "{out:?}");
    rt.assert_no_leftovers(&b)
}
