//! Issue 6's acceptance through containerd: exec'd processes (namespaces, cgroup,
//! capabilities, exit codes), an interactive exec with a window resize, 100 concurrent
//! execs leaving no descriptor or zombie in the shim, and 1 GiB of stdout delivered
//! intact with the shim's memory sampled while it flows.

use std::io::Read;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use integration::cmd::CmdOutput;
use integration::containerd::host;
use integration::containerd::pty::PtyChild;
use integration::containerd::{IMAGE, RUNC};

use crate::scenarios::{Ctx, TRAP_LOOP};

/// A running container for exec checks; removed (and checked clean) on `finish`.
fn running(c: &Ctx<'_>, name: &str) -> Result<(String, i32)> {
    let id = c.id(name);
    c.cd.ctr.ok([
        "run",
        "-d",
        "--runtime",
        c.runtime,
        IMAGE,
        &id,
        "sh",
        "-c",
        TRAP_LOOP,
    ])?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(t) = c.cd.ctr.task(&id)? {
            if t.status == "RUNNING" && t.pid > 0 {
                return Ok((id, t.pid as i32));
            }
        }
        ensure!(Instant::now() < deadline, "{id} did not reach RUNNING");
        thread::sleep(Duration::from_millis(20));
    }
}

fn finish(c: &Ctx<'_>, id: &str) -> Result<()> {
    c.cd.ctr.force_remove(id);
    c.assert_clean(id)
}

fn status_field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
}

/// `ctr task exec`: the process is in the container's pid namespace and cgroup, with
/// the container's capabilities, and its exit code reaches ctr.
pub fn exec_basic(c: &Ctx<'_>) -> Result<()> {
    let (id, init) = running(c, "exec")?;
    let r = (|| -> Result<()> {
        let out = c.cd.ctr.ok([
            "task",
            "exec",
            "--exec-id",
            "e1",
            &id,
            "sh",
            "-c",
            "echo pid=$$; echo ns=$(readlink /proc/self/ns/pid); cat /proc/self/status; \
             echo cg=$(grep -E '^[0-9]+:pids:' /proc/self/cgroup)",
        ])?;
        let o = &out.stdout;
        let pid: i32 = o
            .lines()
            .find_map(|l| l.strip_prefix("pid="))
            .context("no pid= line")?
            .parse()?;
        ensure!(
            pid > 1,
            "the exec'd process should not be pid 1 of the container: {o}"
        );
        let ns = std::fs::read_link(format!("/proc/{init}/ns/pid"))?;
        ensure!(
            o.contains(&format!("ns={}", ns.display())),
            "not in the init's pid namespace ({}): {o}",
            ns.display()
        );
        let init_status = std::fs::read_to_string(format!("/proc/{init}/status"))?;
        for key in ["CapEff:", "CapBnd:", "CapPrm:"] {
            let want = status_field(&init_status, key);
            let got = status_field(o, key);
            ensure!(
                want == got,
                "{key} of the exec {got:?} differs from the init's {want:?}"
            );
        }
        let cg = std::fs::read_to_string(format!("/proc/{init}/cgroup"))?;
        let line = cg
            .lines()
            .find(|l| l.contains(":pids:"))
            .context("pids cgroup")?;
        ensure!(
            o.contains(&format!("cg={line}")),
            "cgroup differs from the init's ({line}): {o}"
        );
        let out = c.cd.ctr.run(
            ["task", "exec", "--exec-id", "e2", &id, "sh", "-c", "exit 9"],
            None,
        )?;
        ensure!(
            out.code() == 9,
            "exit code of the exec should reach ctr: {out}"
        );
        Ok(())
    })();
    let f = finish(c, &id);
    r.and(f)
}

/// `ctr task exec -t … sh` on a pty: input, output, and `stty size` following a resize
/// of the terminal ctr runs on (ctr turns SIGWINCH into ResizePty).
pub fn exec_tty(c: &Ctx<'_>) -> Result<()> {
    let (id, _) = running(c, "exectty")?;
    let r = (|| -> Result<()> {
        let cmd =
            c.cd.ctr
                .command(["task", "exec", "-t", "--exec-id", "t1", &id, "sh"]);
        let mut t = PtyChild::spawn(cmd, 24, 80)?;
        let step = Duration::from_secs(15);
        t.read_until(0, "# ", step)
            .context("waiting for the prompt")?;
        let m = t.mark();
        t.write(b"echo in-$((20+3))\r")?;
        t.read_until(m, "in-23", step)
            .context("input was not evaluated")?;
        let m = t.mark();
        t.write(b"stty size; echo sz1-$((1+1))\r")?;
        let seen = t.read_until(m, "sz1-2", step)?;
        ensure!(
            seen.contains("24 80"),
            "initial size should be 24 80: {seen:?}"
        );
        t.resize(33, 111)?;
        // ResizePty travels ctr -> containerd -> shim; poll until the shell sees it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = t.mark();
            t.write(b"stty size; echo sz2-$((2+2))\r")?;
            let seen = t.read_until(m, "sz2-4", step)?;
            if seen.contains("33 111") {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "size did not follow the resize: {seen:?}"
            );
            thread::sleep(Duration::from_millis(100));
        }
        t.write(b"exit 4\r")?;
        let status = t.wait(Duration::from_secs(20))?;
        ensure!(
            status.code() == Some(4),
            "ctr should exit 4 like the shell, got {status}"
        );
        Ok(())
    })();
    let f = finish(c, &id);
    r.and(f)
}

fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn zombie_children(pid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s[s.rfind(')')? + 2..].to_string();
                    let f: Vec<&str> = rest.split(' ').collect();
                    Some(f.first()? == &"Z" && f.get(1)?.parse::<i32>().ok()? == pid)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// How many concurrent execs (RUNRS_E2E_EXECS, default 100).
fn exec_count() -> usize {
    std::env::var("RUNRS_E2E_EXECS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100)
}

/// 100 concurrent execs into one container all complete with their own exit code; the
/// shim has no more descriptors and no zombie child afterwards.
pub fn exec_concurrent(c: &Ctx<'_>) -> Result<()> {
    let (id, _) = running(c, "execmany")?;
    let r = (|| -> Result<()> {
        let shims = host::shim_pids(&id);
        ensure!(
            shims.len() == 1,
            "expected one shim for {id}, found {shims:?}"
        );
        let shim = shims[0];
        let fds_before = fd_count(shim);
        // containerd-shim-runc-v2 runs one `runc exec` per exec (~1 s each when 100 run
        // at once on 2 cores): the reference run only validates the check, with 10.
        let n = if c.short == "runc" {
            exec_count().min(10)
        } else {
            exec_count()
        };
        let started = Instant::now();
        let mut children = Vec::with_capacity(n);
        for i in 0..n {
            let mut cmd = c.cd.ctr.command([
                "task".to_string(),
                "exec".into(),
                "--exec-id".into(),
                format!("m{i}"),
                id.clone(),
                "sh".into(),
                "-c".into(),
                format!("exit {}", i % 7),
            ]);
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            children.push((i, cmd.spawn().context("spawn ctr task exec")?));
        }
        let mut wrong = Vec::new();
        for (i, mut ch) in children {
            let st = ch.wait()?;
            if st.code() != Some((i % 7) as i32) {
                let mut err = String::new();
                if let Some(mut e) = ch.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                wrong.push(format!("m{i}: {st} {err}"));
            }
        }
        println!(
            "[{} / {}] {n} concurrent execs in {:.2}s",
            c.cd.version.label(),
            c.short,
            started.elapsed().as_secs_f64()
        );
        ensure!(
            wrong.is_empty(),
            "execs with a wrong exit code:\n  {}",
            wrong.join("\n  ")
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (fds, zombies) = (fd_count(shim), zombie_children(shim));
            if fds <= fds_before && zombies.is_empty() {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "after {n} execs the shim holds {fds} fds (before: {fds_before}) and zombie children {zombies:?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    })();
    let f = finish(c, &id);
    r.and(f)
}

/// Bytes of stdout (RUNRS_E2E_STDOUT_MIB, default 1024).
fn stdout_bytes() -> u64 {
    std::env::var("RUNRS_E2E_STDOUT_MIB")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(1024)
        << 20
}

/// The shim's RSS must stay under this while the output flows.
const RSS_BOUND_KIB: u64 = 32 * 1024;

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| status_field(&s, "VmRSS:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// 1 GiB written to stdout by the container reaches ctr's stdout complete and in order
/// (compared byte for byte with the generator's pattern); the shim's RSS, sampled while
/// it flows, stays under RSS_BOUND_KIB; the throughput is printed.
pub fn stdout_gib(c: &Ctx<'_>) -> Result<()> {
    let id = c.id("stdout");
    let total = stdout_bytes();
    let pattern = b"0123456789abcdef\n";
    let mut cmd = c.cd.ctr.command([
        "run".to_string(),
        "--rm".into(),
        "--runtime".into(),
        c.runtime.into(),
        IMAGE.into(),
        id.clone(),
        "sh".into(),
        "-c".into(),
        format!("yes 0123456789abcdef | head -c {total}"),
    ]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().context("spawn ctr run")?;
    let mut out = child.stdout.take().context("stdout")?;
    // Sample the shim's memory from another thread while this one reads.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let id2 = id.clone();
    let s2 = stop.clone();
    let sampler = thread::spawn(move || {
        let mut max = 0;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            for p in host::shim_pids(&id2) {
                max = max.max(rss_kib(p));
            }
            thread::sleep(Duration::from_millis(25));
        }
        max
    });
    let mut buf = vec![0u8; 1 << 20];
    let mut got: u64 = 0;
    let mut bad_at = None;
    loop {
        let n = out.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if bad_at.is_none() {
            for (k, b) in buf[..n].iter().enumerate() {
                if *b != pattern[((got + k as u64) % pattern.len() as u64) as usize] {
                    bad_at = Some(got + k as u64);
                    break;
                }
            }
        }
        got += n as u64;
    }
    let status = child.wait()?;
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let max_rss = sampler.join().unwrap_or(0);
    println!(
        "[{} / {}] stdout {} MiB in {secs:.2}s = {:.0} MB/s; shim max RSS {} KiB",
        c.cd.version.label(),
        c.short,
        total >> 20,
        total as f64 / secs / 1e6,
        max_rss
    );
    if let Some(at) = bad_at {
        bail!("stdout differs from the generated pattern at byte {at}");
    }
    ensure!(status.success(), "ctr run exited {status}");
    if c.runtime == RUNC && got < total {
        // containerd-shim-runc-v2 may publish the exit before its copy of the output is
        // done, and ctr then stops reading: the tail is lost (seen once on 1.6: the last
        // 52 KiB of 1 GiB). The reference is only checked for what it delivered; runrs drains
        // the output before TaskExit and must deliver all of it.
        println!(
            "[{} / {}] reference lost the last {} bytes of output (known runc-shim race)",
            c.cd.version.label(),
            c.short,
            total - got
        );
    } else {
        ensure!(
            got == total,
            "ctr printed {got} bytes, the container wrote {total}"
        );
    }
    ensure!(
        max_rss > 0 && max_rss < RSS_BOUND_KIB,
        "shim RSS while the output flowed: {max_rss} KiB (bound {RSS_BOUND_KIB} KiB; 0 means it was never seen)"
    );
    c.assert_clean(&id)
}

/// A containerd logging binary for `log_uri`: stdout arrives on fd 3, stderr on fd 4, and
/// it reports readiness on fd 5 (containerd's binary:// protocol). It records what it got,
/// its CONTAINER_ID and CONTAINER_NAMESPACE next to itself.
const LOGGER: &str = r#"#!/bin/sh
out="$(dirname "$0")/$CONTAINER_ID"
echo "$CONTAINER_NAMESPACE" > "$out.ns.tmp" && mv "$out.ns.tmp" "$out.ns"
cat <&3 > "$out.stdout.tmp" && mv "$out.stdout.tmp" "$out.stdout" &
cat <&4 > "$out.stderr.tmp" && mv "$out.stderr.tmp" "$out.stderr" &
printf x >&5
exec 5>&-
wait
"#;

/// Waits until `path` exists (the logger renames its files into place when its input ends).
fn wait_for_file(path: &std::path::Path) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            return Ok(s);
        }
        ensure!(
            Instant::now() < deadline,
            "{} did not appear within 15 s",
            path.display()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// `ctr run --log-uri`: with `file://` the container's stdout and stderr land in the file;
/// with `binary://` a logging binary gets them on fds 3 and 4 (and the container's id and
/// namespace in its environment), and the container only runs once it reported ready.
pub fn log_uri(c: &Ctx<'_>) -> Result<()> {
    let dir = c.cd.dir.join(format!("logs-{}", c.short));
    std::fs::create_dir_all(&dir)?;
    let run = |id: &str, uri: &str| -> Result<CmdOutput> {
        let script = "echo to-stdout; echo to-stderr >&2";
        let out = c.cd.ctr.run(
            [
                "run",
                "--rm",
                "--log-uri",
                uri,
                "--runtime",
                c.runtime,
                IMAGE,
                id,
                "sh",
                "-c",
                script,
            ],
            None,
        )?;
        ensure!(out.success(), "ctr run --log-uri {uri} failed: {out}");
        Ok(out)
    };

    let id = c.id("logfile");
    let file = dir.join(format!("{id}.log"));
    let uri = format!("file://{}", file.display());
    let out = run(&id, &uri)?;
    let got = std::fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?;
    let has = |line: &str| got.lines().any(|l| l == line);
    if c.runtime == RUNC && !(has("to-stdout") && has("to-stderr")) {
        // containerd-shim-runc-v2 may end its copy when the exit is published ("error
        // copying stderr" in its log; seen once on 1.6): the reference is only checked for
        // holding nothing but those lines. runrs drains both before TaskExit.
        ensure!(
            got.lines().all(|l| l == "to-stdout" || l == "to-stderr"),
            "{} holds unexpected output: {got:?}",
            file.display()
        );
    } else {
        ensure!(
            has("to-stdout") && has("to-stderr"),
            "{} should hold both output lines, holds {got:?}",
            file.display()
        );
    }
    ensure!(
        out.stdout.is_empty(),
        "with a file:// log, ctr should print nothing: {out}"
    );
    c.assert_clean(&id)?;

    let id = c.id("logbin");
    let logger = dir.join("logger.sh");
    std::fs::write(&logger, LOGGER)?;
    std::fs::set_permissions(&logger, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let uri = format!("binary://{}", logger.display());
    run(&id, &uri)?;
    let stdout = wait_for_file(&dir.join(format!("{id}.stdout")))?;
    let stderr = wait_for_file(&dir.join(format!("{id}.stderr")))?;
    let ns = wait_for_file(&dir.join(format!("{id}.ns")))?;
    ensure!(
        stdout == "to-stdout\n" && stderr == "to-stderr\n",
        "the logger got stdout {stdout:?} and stderr {stderr:?}"
    );
    ensure!(
        ns.trim() == integration::containerd::NAMESPACE,
        "the logger's CONTAINER_NAMESPACE was {ns:?}"
    );
    c.assert_clean(&id)?;

    // A logging binary that cannot be exec'd: the create fails and leaves nothing. The
    // shim's reaper used to be able to take the failed child before std's spawn did,
    // which then panicked and aborted the shim (runtime-core/tests/spawn_race.rs proves
    // that race; here the error itself is checked).
    let id = c.id("lognox");
    let noexec = dir.join("not-executable.sh");
    std::fs::write(&noexec, LOGGER)?;
    std::fs::set_permissions(&noexec, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    let uri = format!("binary://{}", noexec.display());
    let out = c.cd.ctr.run(
        [
            "run",
            "--rm",
            "--log-uri",
            &uri,
            "--runtime",
            c.runtime,
            IMAGE,
            &id,
            "true",
        ],
        None,
    )?;
    ensure!(
        !out.success(),
        "ctr run with a non-executable logging binary succeeded: {out}"
    );
    if c.runtime != RUNC {
        ensure!(
            out.stderr.contains("start logging binary") && out.stderr.contains("ermission denied"),
            "the error should name the logging binary and EACCES: {out}"
        );
    }
    let _ = c.cd.ctr.run(["containers", "rm", id.as_str()], None);
    c.assert_clean(&id)
}
