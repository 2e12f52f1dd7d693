//! Podman 4.3 rootless (issue 14, item 1): the test user `runrs-rootless` (subuid and
//! subgid ranges, made by install-clients.sh) runs podman with `--runtime` pointing at
//! runrs, and at runc as the reference. Podman runs the runtime as uid 0 of the user
//! namespace it made: the runtime keeps its state under XDG_RUNTIME_DIR, creates no
//! cgroup it may not (this host's hierarchies belong to the real root) and bind-mounts
//! the device nodes. Private storage and XDG_RUNTIME_DIR in a directory of the user's;
//! at the end podman's storage is reset and no process of the user may remain.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use integration::cmd::CmdOutput;
use integration::containerd::runner::Runner;

use crate::common::{expect_code, podman_flags, run, wait_for, Work, RUNC};

/// The test user (install-clients.sh makes it).
pub const USER: &str = "runrs-rootless";

/// The checks.
pub const CHECKS: &[&str] = &["podman-rootless"];

const PODMAN: &str = "/usr/bin/podman";

struct Rootless {
    dir: PathBuf,
    runtime: PathBuf,
}

impl Rootless {
    /// `podman` as the test user with private storage and the runtime under test.
    fn cmd(&self, args: &[&str]) -> Command {
        let d = &self.dir;
        let mut c = Command::new("runuser");
        c.args(["-u", USER, "--", "env", "-i"])
            .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .arg(format!("HOME={}", d.join("home").display()))
            .arg(format!("XDG_RUNTIME_DIR={}", d.join("xdg").display()))
            .arg(format!(
                "CONTAINERS_CONF={}",
                d.join("containers.conf").display()
            ))
            .arg(PODMAN);
        podman_flags(
            &mut c,
            &d.join("storage"),
            &d.join("xdg/containers"),
            None,
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
}

/// A directory owned by the test user, mode 0700.
fn user_dir(path: &Path, uid: nix::unistd::Uid, gid: nix::unistd::Gid) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path)?;
    nix::unistd::chown(path, Some(uid), Some(gid))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// Runs the rootless check with runc, then with runrs.
pub fn suite(r: &mut Runner, work: &Work) {
    let group = "podman rootless";
    let mut setup = None;
    r.always(group, "podman-rootless-setup", || {
        let user = nix::unistd::User::from_name(USER)?.with_context(|| {
            format!("user {USER} missing: run integration/scripts/install-clients.sh (deps stage)")
        })?;
        for f in ["/etc/subuid", "/etc/subgid"] {
            let has = std::fs::read_to_string(f)?
                .lines()
                .any(|l| l.starts_with(&format!("{USER}:")));
            ensure!(
                has,
                "{f} has no range for {USER}: run integration/scripts/install-clients.sh"
            );
        }
        // Not under the work dir: the user must reach it.
        let dir = tempfile::Builder::new()
            .prefix("runrs-rootless-")
            .tempdir_in("/tmp")?
            .keep();
        for d in ["", "home", "xdg", "storage"] {
            user_dir(&dir.join(d), user.uid, user.gid)?;
        }
        std::fs::write(
            dir.join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n",
        )?;
        let archive = dir.join("busybox.tar");
        std::fs::copy(&work.oci_archive, &archive)?;
        nix::unistd::chown(&archive, Some(user.uid), Some(user.gid))?;
        let p = Rootless {
            dir: dir.clone(),
            runtime: PathBuf::from(RUNC),
        };
        p.ok(&["load", "-i", &archive.to_string_lossy()])?;
        setup = Some(dir);
        Ok(())
    });
    let Some(dir) = setup else { return };
    for (short, runtime) in [("runc", PathBuf::from(RUNC)), ("runrs", work.runrs.clone())] {
        let p = Rootless {
            dir: dir.clone(),
            runtime,
        };
        r.check(&format!("{group} / {short}"), "podman-rootless", || {
            let result = check(&p, short);
            let _ = p.out(&["rm", "-a", "-f", "-t", "0"]);
            result
        });
    }
    r.always(group, "podman-rootless-teardown", || {
        let p = Rootless {
            dir: dir.clone(),
            runtime: PathBuf::from(RUNC),
        };
        let _ = p.out(&["system", "reset", "-f"]);
        // Podman's pause process (it holds the user namespace) and any conmon.
        let _ = Command::new("pkill").args(["-KILL", "-u", USER]).status();
        wait_for(
            &format!("every process of {USER} to end"),
            Duration::from_secs(10),
            || {
                let out = Command::new("pgrep").args(["-u", USER]).output().ok()?;
                (!out.status.success()).then_some(())
            },
        )?;
        std::fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))
    });
}

/// Run (output, exit code), a detached container with exec and stop, all as the user.
fn check(p: &Rootless, short: &str) -> Result<()> {
    let out = p.out(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo hi-rootless; exit 3",
    ])?;
    expect_code(&out, 3)?;
    ensure!(
        out.stdout.contains("hi-rootless"),
        "podman run output: {out}"
    );
    let name = format!("rl-{short}");
    p.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "busybox",
        "sleep",
        "100",
    ])?;
    let out = p.ok(&["exec", &name, "sh", "-c", "echo exec-$((40+2)); id -u"])?;
    ensure!(
        out.stdout.contains("exec-42") && out.stdout.lines().nth(1) == Some("0"),
        "podman exec: {out}"
    );
    let out = p.ok(&["stop", "-t", "1", &name])?;
    ensure!(out.stdout.trim() == name, "podman stop: {out}");
    let state = p.ok(&["inspect", "-f", "{{.State.Status}}", &name])?;
    ensure!(state.stdout.trim() == "exited", "after stop: {state}");
    p.ok(&["rm", &name])?;
    Ok(())
}
