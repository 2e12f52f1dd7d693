//! The default state root of a non-root caller (issue 14, item 1's first step): runc
//! uses `$XDG_RUNTIME_DIR/runc` (created 0700 and sticky) when it does not run as the
//! real root, and /run/runc otherwise; runrs does the same with `runrs`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use anyhow::{ensure, Result};
use integration::cmd::{run_capture, CMD_TIMEOUT};
use integration::{runtime_name, runtime_path};

#[test]
fn a_non_root_caller_keeps_state_in_xdg_runtime_dir() -> Result<()> {
    integration::rootfs::check_prerequisites()?;
    let xdg = tempfile::Builder::new().prefix("runrs-it-xdg-").tempdir()?;
    let nobody = nix::unistd::Uid::from_raw(65534);
    let nogroup = nix::unistd::Gid::from_raw(65534);
    nix::unistd::chown(xdg.path(), Some(nobody), Some(nogroup))?;
    std::fs::set_permissions(xdg.path(), std::fs::Permissions::from_mode(0o700))?;
    let mut c = Command::new("setpriv");
    c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(runtime_path()?)
        .arg("list")
        .env("XDG_RUNTIME_DIR", xdg.path());
    let out = run_capture(c, None, CMD_TIMEOUT)?;
    ensure!(out.success(), "list as uid 65534: {out}");
    let root = xdg.path().join(runtime_name());
    let m = std::fs::metadata(&root)?;
    ensure!(
        m.is_dir() && m.uid() == 65534 && m.mode() & 0o7777 == 0o1700,
        "{}: mode {:o} owner {}",
        root.display(),
        m.mode(),
        m.uid()
    );
    // The real root ignores XDG_RUNTIME_DIR.
    let root_xdg = tempfile::Builder::new().prefix("runrs-it-xdg-").tempdir()?;
    let mut c = Command::new(runtime_path()?);
    c.arg("list").env("XDG_RUNTIME_DIR", root_xdg.path());
    run_capture(c, None, CMD_TIMEOUT)?.ok()?;
    ensure!(
        std::fs::read_dir(root_xdg.path())?.next().is_none(),
        "root used XDG_RUNTIME_DIR"
    );
    Ok(())
}

/// A caller with `uid`/`gid` (by setpriv), its XDG_RUNTIME_DIR, and a bundle it owns
/// with a copy of the busybox rootfs and the config `spec --rootless` wrote.
struct Unprivileged {
    uid: u32,
    gid: u32,
    xdg: tempfile::TempDir,
    bundle: tempfile::TempDir,
}

impl Unprivileged {
    fn new(uid: u32, gid: u32) -> Result<Self> {
        integration::rootfs::check_prerequisites()?;
        let u = Unprivileged {
            uid,
            gid,
            xdg: tempfile::Builder::new().prefix("runrs-it-xdg-").tempdir()?,
            bundle: tempfile::Builder::new().prefix("runrs-it-rl-").tempdir()?,
        };
        for (p, mode) in [(u.xdg.path(), 0o700), (u.bundle.path(), 0o755)] {
            nix::unistd::chown(
                p,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )?;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
        }
        let mut cp = Command::new("cp");
        cp.arg("-a")
            .arg(integration::rootfs::busybox_rootfs()?)
            .arg(u.bundle.path().join("rootfs"));
        run_capture(cp, None, CMD_TIMEOUT)?.ok()?;
        u.run(&["spec", "--rootless"])?.ok()?;
        Ok(u)
    }

    /// The runtime with `args`, as this caller, in the bundle.
    fn run(&self, args: &[&str]) -> Result<integration::CmdOutput> {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            &self.uid.to_string(),
            "--regid",
            &self.gid.to_string(),
        ])
        .arg("--clear-groups")
        .arg(runtime_path()?)
        .args(args)
        .current_dir(self.bundle.path())
        .env("XDG_RUNTIME_DIR", self.xdg.path())
        .env_remove("NOTIFY_SOCKET");
        run_capture(c, None, CMD_TIMEOUT)
    }

    fn spec(&self) -> Result<serde_json::Value> {
        Ok(serde_json::from_slice(&std::fs::read(
            self.bundle.path().join("config.json"),
        )?)?)
    }

    /// Writes `spec` with `args` as a non-terminal process.
    fn write(&self, spec: &mut serde_json::Value, args: &[&str]) -> Result<()> {
        spec["process"]["terminal"] = false.into();
        spec["process"]["args"] = serde_json::json!(args);
        std::fs::write(
            self.bundle.path().join("config.json"),
            serde_json::to_vec(spec)?,
        )?;
        Ok(())
    }

    /// Nothing left in the state root.
    fn assert_clean(&self) -> Result<()> {
        let list = self.run(&["list", "-q"])?;
        ensure!(
            list.success() && list.stdout.trim().is_empty(),
            "left behind: {list}"
        );
        Ok(())
    }
}

/// runc's rootless mode (issue 14, item 1): an unprivileged caller runs `spec --rootless`
/// and `run` (its own user namespace mapping only its uid, no cgroup it may not create,
/// device nodes bind-mounted); a limit for a cgroup it could not create fails naming it,
/// and `--rootless false` makes a cgroup it may not create fail the run.
#[test]
fn an_unprivileged_caller_runs_a_rootless_container() -> Result<()> {
    let u = Unprivileged::new(65534, 65534)?;
    let mut spec = u.spec()?;
    let args = [
        "sh",
        "-c",
        "cat /proc/self/uid_map; ls -l /dev/null; echo rootless-ok",
    ];
    u.write(&mut spec, &args)?;
    let id = format!("runrs-it-rl-{}", std::process::id());
    let out = u.run(&["run", &id])?;
    ensure!(
        out.success() && out.stdout.contains("rootless-ok"),
        "rootless run: {out}"
    );
    let map: Vec<&str> = out
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    ensure!(
        map == ["0", "65534", "1"],
        "uid_map in the container: {out}"
    );
    ensure!(
        out.stdout.contains("crw-rw-rw-"),
        "/dev/null is not the host's device node: {out}"
    );
    // An empty cgroupsPath is no cgroupsPath (runc).
    spec["linux"]["cgroupsPath"] = "".into();
    u.write(&mut spec, &args)?;
    let out = u.run(&["run", &id])?;
    ensure!(
        out.success() && out.stdout.contains("rootless-ok"),
        "rootless run with an empty cgroupsPath: {out}"
    );
    if let Some(l) = spec["linux"].as_object_mut() {
        l.remove("cgroupsPath");
    }

    // A limit on a cgroup it could not create: runc's message.
    spec["linux"]["resources"] = serde_json::json!({"pids": {"limit": 10}});
    u.write(&mut spec, &args)?;
    let out = u.run(&["run", &id])?;
    ensure!(
        !out.success()
            && out
                .stderr
                .contains("cannot set pids limit: container could not join or create cgroup"),
        "rootless run with a pids limit: {out}"
    );
    // --rootless false: the cgroup it may not create fails the run.
    spec["linux"]["resources"] = serde_json::json!({});
    u.write(&mut spec, &args)?;
    let out = u.run(&["--rootless", "false", "run", &id])?;
    ensure!(
        !out.success() && out.stderr.contains("ermission denied"),
        "--rootless false as uid 65534: {out}"
    );
    u.assert_clean()
}

/// An unprivileged caller's user namespace with more than its own id (runc: through the
/// setuid newuidmap/newgidmap, which check /etc/subuid and /etc/subgid): the test user
/// `runrs-rootless` (integration/scripts/install-clients.sh gives it its ranges) maps
/// its own uid to 0 and 65536 subordinate ids from 1, as the container's maps show.
#[test]
fn an_unprivileged_caller_maps_its_subordinate_ids() -> Result<()> {
    const USER: &str = "runrs-rootless";
    let user = nix::unistd::User::from_name(USER)?.ok_or_else(|| {
        anyhow::anyhow!("user {USER} missing: run integration/scripts/install-clients.sh")
    })?;
    let range = |file: &str| -> Result<u32> {
        std::fs::read_to_string(file)?
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() == 3 && f[0] == USER)
                    .then(|| f[1].parse().ok())
                    .flatten()
            })
            .ok_or_else(|| anyhow::anyhow!("{file} has no range for {USER}"))
    };
    let (sub_u, sub_g) = (range("/etc/subuid")?, range("/etc/subgid")?);
    let (uid, gid) = (user.uid.as_raw(), user.gid.as_raw());
    let u = Unprivileged::new(uid, gid)?;
    let mut spec = u.spec()?;
    spec["linux"]["uidMappings"] = serde_json::json!([
        {"containerID": 0, "hostID": uid, "size": 1},
        {"containerID": 1, "hostID": sub_u, "size": 65536}
    ]);
    spec["linux"]["gidMappings"] = serde_json::json!([
        {"containerID": 0, "hostID": gid, "size": 1},
        {"containerID": 1, "hostID": sub_g, "size": 65536}
    ]);
    u.write(
        &mut spec,
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map /proc/self/gid_map; echo mapped-ok",
        ],
    )?;
    let id = format!("runrs-it-rlmap-{}", std::process::id());
    let out = u.run(&["run", &id])?;
    let lines: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let sub = |start: u32| ["1".to_string(), start.to_string(), "65536".to_string()];
    let own = |id: u32| ["0".to_string(), id.to_string(), "1".to_string()];
    ensure!(
        out.success()
            && lines.len() == 5
            && lines[0] == own(uid)
            && lines[1] == sub(sub_u)
            && lines[2] == own(gid)
            && lines[3] == sub(sub_g)
            && out.stdout.contains("mapped-ok"),
        "run as {USER} with subordinate ids: {out}"
    );
    u.assert_clean()
}
