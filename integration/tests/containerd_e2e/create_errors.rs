//! Create failing at each step through ctr (issue 17), and kill -9 of the shim while a
//! createRuntime hook holds Create open.
//!
//! ctr cannot add hooks or seccomp to an image's spec, so these scenarios hand it a
//! whole spec (`ctr run --config`): `ctr oci spec`, pointed at a copy of the busybox
//! rootfs and the cgroup `/<ns>/<id>`, then broken one way per case. Malformed JSON,
//! wrong types and bad ids are left to the CLI suite: ctr and containerd reject those
//! before a runtime sees them.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use integration::cmd::host as host_cmd;
use integration::containerd::{host, NAMESPACE};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::faults::{signal, wait_for, Background};
use crate::scenarios::{Ctx, GONE};

/// A busybox rootfs copy for specs of this scenario, inside the instance's directory
/// (so containerd-down.sh removes it if the scenario does not).
struct Rootfs(PathBuf);

impl Rootfs {
    fn new(c: &Ctx<'_>, id: &str) -> Result<Self> {
        let dst = c.cd.dir.join(format!("{id}-rootfs"));
        let src = integration::rootfs::busybox_rootfs()?;
        host_cmd(
            "cp",
            &["-a", &src.to_string_lossy(), &dst.to_string_lossy()],
        )?;
        // A file that is not executable, and one to give as cwd.
        for (name, mode) in [("runrs-e2e-noexec", 0o644), ("runrs-e2e-cwd", 0o644)] {
            let p = dst.join(name);
            fs::write(&p, "#!/bin/sh\necho never\n")?;
            fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
        }
        Ok(Self(dst))
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `ctr oci spec` for container `id`: rootfs `rootfs`, cgroup `/<ns>/<id>`, `sh -c
/// script`, then `edit`; written next to the rootfs, returns the file.
fn spec_file(
    c: &Ctx<'_>,
    id: &str,
    rootfs: &Path,
    script: &str,
    edit: impl FnOnce(&mut Value),
) -> Result<PathBuf> {
    let out = c.cd.ctr.ok(["oci", "spec"])?;
    let mut s: Value = serde_json::from_str(&out.stdout)
        .with_context(|| format!("`ctr oci spec` is not JSON: {out}"))?;
    s["root"] = json!({ "path": rootfs, "readonly": false });
    s["process"]["args"] = json!(["sh", "-c", script]);
    s["process"]["terminal"] = json!(false);
    s["linux"]["cgroupsPath"] = json!(format!("/{NAMESPACE}/{id}"));
    edit(&mut s);
    let p = c.cd.dir.join(format!("{id}.json"));
    fs::write(&p, serde_json::to_vec_pretty(&s)?)?;
    Ok(p)
}

/// A hook that runs `script` with the host's /bin/sh.
fn sh_hook(script: &str, timeout: Option<u64>) -> Value {
    let mut h = json!({ "path": "/bin/sh", "args": ["sh", "-c", script] });
    if let Some(t) = timeout {
        h["timeout"] = json!(t);
    }
    h
}

type Edit = fn(&mut Value);

/// (case, a word the error must contain, how the spec is broken).
const CASES: &[(&str, &str, Edit)] = &[
    ("mount-source", "/runrs-e2e-no-such-source", |s| {
        if let Some(m) = s["mounts"].as_array_mut() {
            m.push(json!({"destination": "/mnt", "type": "bind",
                          "source": "/runrs-e2e-no-such-source", "options": ["rbind"]}));
        }
    }),
    ("missing-binary", "/runrs-e2e-nonexistent", |s| {
        s["process"]["args"] = json!(["/runrs-e2e-nonexistent"]);
    }),
    ("noexec-binary", "/runrs-e2e-noexec", |s| {
        s["process"]["args"] = json!(["/runrs-e2e-noexec"]);
    }),
    // runrs names the path relative to the rootfs ("openat2 runrs-e2e-cwd").
    ("cwd-is-a-file", "runrs-e2e-cwd", |s| {
        s["process"]["cwd"] = json!("/runrs-e2e-cwd");
    }),
    ("prestart-fails", "hook", |s| {
        s["hooks"]["prestart"] = json!([sh_hook("exit 3", None)]);
    }),
    ("create-runtime-fails", "hook", |s| {
        s["hooks"]["createRuntime"] = json!([sh_hook("exit 3", None)]);
    }),
    ("hook-timeout", "hook", |s| {
        s["hooks"]["createRuntime"] = json!([sh_hook("exec sleep 29.123", Some(1))]);
    }),
    ("bad-seccomp", "SCMP_ACT_RUNRS_BOGUS", |s| {
        s["linux"]["seccomp"] = json!({ "defaultAction": "SCMP_ACT_RUNRS_BOGUS" });
    }),
    ("cgroup-rejected", "cpuset.cpus", |s| {
        s["linux"]["resources"]["cpu"] = json!({ "cpus": "1023" });
    }),
    ("rootfs-missing", "/runrs-e2e-no-such-rootfs", |s| {
        s["root"]["path"] = json!("/runrs-e2e-no-such-rootfs");
    }),
];

/// Each broken spec: `ctr run --rm --config` fails, its error names the problem, and
/// nothing of the container is left (the runner's leak check covers the rest, e.g. a
/// hook still sleeping).
pub fn create_errors(c: &Ctx<'_>) -> Result<()> {
    let rootfs = Rootfs::new(c, &c.id("errors"))?;
    let mut failures = Vec::new();
    for (case, keyword, edit) in CASES {
        let id = c.id(&format!("err-{case}"));
        let g = c.guard(&id);
        let r = (|| -> Result<()> {
            let spec = spec_file(c, &id, &rootfs.0, "echo created-and-ran", edit)?;
            let out = c.cd.ctr.run(
                [
                    "run",
                    "--rm",
                    "--null-io",
                    "--runtime",
                    c.runtime,
                    "--config",
                    &spec.to_string_lossy(),
                    &id,
                ],
                None,
            )?;
            let _ = fs::remove_file(&spec);
            ensure!(!out.success(), "a broken spec ({case}) was run: {out}");
            ensure!(
                out.stderr.to_lowercase().contains(&keyword.to_lowercase()),
                "the error should mention {keyword:?}: {out}"
            );
            ensure!(
                c.cd.ctr.task(&id)?.is_none(),
                "`ctr task ls` lists {id} after its create failed"
            );
            let listed = c.cd.ctr.ok(["container", "ls", "-q"])?;
            ensure!(
                !listed.stdout.lines().any(|l| l == id),
                "`ctr run --rm` left the container {id}"
            );
            c.assert_clean(&id)
        })();
        match r {
            Ok(()) => g.disarm(),
            Err(e) => failures.push(format!("{case}: {e:#}")),
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n\n"));
    Ok(())
}

/// kill -9 of the shim while a createRuntime hook (which sleeps) holds Create open:
/// ctr's run fails, and the container, its cgroup and state, the shim and the hook go.
pub fn shim_kill9_in_create(c: &Ctx<'_>) -> Result<()> {
    let id = c.id("createkill9");
    let g = c.guard(&id);
    let rootfs = Rootfs::new(c, &id)?;
    let marker = c.cd.dir.join(format!("{id}.hook-ran"));
    let hook = format!("touch {}; exec sleep 2.345", marker.display());
    let spec = spec_file(c, &id, &rootfs.0, "sleep 30", |s| {
        s["hooks"]["createRuntime"] = json!([sh_hook(&hook, None)]);
    })?;
    let spec_s = spec.to_string_lossy().into_owned();
    let run = Background::ctr(
        c,
        &[
            "run",
            "-d",
            "--null-io",
            "--runtime",
            c.runtime,
            "--config",
            &spec_s,
            &id,
        ],
    );
    wait_for("the createRuntime hook runs", GONE, || marker.exists())?;
    let shims = host::shim_pids(&id);
    ensure!(shims.len() == 1, "expected one shim for {id}: {shims:?}");
    signal(i64::from(shims[0]), Signal::SIGKILL)?;
    let out = run.join()?;
    ensure!(
        !out.success(),
        "ctr run should fail when the shim dies in Create: {out}"
    );
    wait_for("the task is gone from `ctr task ls`", GONE, || {
        c.cd.ctr.task(&id).is_ok_and(|t| t.is_none())
    })?;
    // The hook outlives the shim at most by its own sleep.
    wait_for("the hook's `sleep 2.345` exits", GONE, || {
        !hook_running("sleep 2.345")
    })?;
    c.cd.ctr.ok(["container", "rm", &id])?;
    let _ = fs::remove_file(&spec);
    let _ = fs::remove_file(&marker);
    c.assert_clean(&id)?;
    g.disarm();
    Ok(())
}

/// True if a process with exactly this command line runs.
fn hook_running(cmdline: &str) -> bool {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .any(|p| {
            host::cmdline(p).join(" ") == cmdline && integration::proc::pid_alive(i64::from(p))
        })
}
