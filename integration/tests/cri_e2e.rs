//! CRI end-to-end suite (issue 13, item 3): containerd's CRI gRPC API driven directly,
//! on every installed containerd (1.6, 1.7, 2.1), each scenario with runtime handler
//! `runc` (the reference) and `runrs` (deploy/'s snippet), under the leak checker.
//!
//! Needs root, containerd (integration/scripts/e2e-deps.sh), containernetworking-plugins,
//! gcc (the pause image), the shared e2e scripts (`RUNRS_E2E_DIR`) and the shim:
//!
//!     cargo build --workspace
//!     cargo test -p integration --test cri_e2e [-- SCENARIO...]
//!
//! `RUNRS_E2E_CONTAINERD=1.7,2.1` picks containerd lines, `RUNRS_E2E_RUNTIMES=runrs`
//! picks handlers, `RUNRS_CRI_CGROUP_DRIVER=systemd` runs with `SystemdCgroup = true`
//! and a `*.slice` cgroup parent (for the systemd VM), `RUNRS_E2E_KEEP=1` keeps each
//! instance's directory. `RUNRS_E2E_REQUIRE_ALL=1`: a missing containerd line or CNI
//! plugin fails the run.

#[path = "cri_e2e/checkpoint.rs"]
mod checkpoint;
#[path = "cri_e2e/pods.rs"]
mod pods;
#[path = "cri_e2e/scenarios.rs"]
mod scenarios;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use integration::containerd::runner::Runner;
use integration::containerd::{matrix, scripts_dir, ShimDir, Version};
use integration::cri::{handlers, CgroupDriver, CriContainerd, Images, CNI_BIN_DIR};
use integration::leaks::{assert_no_leaks, Snapshot};
use pods::Ctx;
use scenarios::SCENARIOS;

/// How long the leak checker waits for a scenario's processes and dirs to go.
const LEAK_WAIT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let mut r = Runner::from_args();
    if r.list_only {
        for (name, _) in SCENARIOS {
            println!("{name}: test");
        }
        return r.finish();
    }
    if let Err(e) = run(&mut r) {
        r.fail("setup", "prerequisites", format!("{e:#}"));
    }
    r.finish()
}

fn run(r: &mut Runner) -> Result<()> {
    integration::rootfs::check_prerequisites()?;
    for plugin in ["bridge", "host-local", "loopback"] {
        if !Path::new(CNI_BIN_DIR).join(plugin).is_file() {
            bail!(
                "CNI plugin {CNI_BIN_DIR}/{plugin} missing: apt-get install containernetworking-plugins \
                 (the test runner's deps stage does)"
            );
        }
    }
    let driver = CgroupDriver::from_env()?;
    let scripts = scripts_dir()?;
    let shim = ShimDir::new()?;
    let images = Images::build()?;
    let m = matrix()?;
    for (line, why) in &m.skipped {
        println!("containerd {line}: skipped: {why}");
        r.skip(&format!("containerd {line}"), "all", why);
    }
    if !SCENARIOS.iter().any(|(n, _)| r.selected(n)) {
        return Ok(());
    }
    for v in &m.versions {
        run_version(r, v, &scripts, &shim, driver, &images);
    }
    Ok(())
}

fn run_version(
    r: &mut Runner,
    v: &Version,
    scripts: &Path,
    shim: &ShimDir,
    driver: CgroupDriver,
    images: &Images,
) {
    let group = format!("{} cri ({driver:?})", v.label());
    let mut up = None;
    r.always(&group, "containerd-up", || {
        let cd = CriContainerd::up(v, scripts, shim.path(), driver, images)?;
        println!("[{group}] containerd in {}", cd.dir.display());
        up = Some(cd);
        Ok(())
    });
    let Some(cd) = up else { return };
    let dir = cd.dir.clone();
    for handler in handlers() {
        let ctx = Ctx { cd: &cd, handler };
        let g = format!("{group} / {handler}");
        for (name, f) in SCENARIOS {
            if let Some(why) = checkpoint::skip_reason(name, handler, &v.line) {
                r.skip(&g, name, why);
                continue;
            }
            r.check(&g, name, || {
                let from = cd.log_len();
                let scope = cd.leak_scope();
                let before = Snapshot::take(&scope);
                f(&ctx)
                    .and_then(|()| assert_no_leaks(&before, &scope, LEAK_WAIT))
                    .map_err(|e| {
                        anyhow!(
                            "{e:#}\n--- containerd.log during this check ---\n{}",
                            cd.log_tail(from, 40)
                        )
                    })
            });
        }
    }
    r.always(&group, "teardown", move || {
        drop(cd);
        let mut found = Vec::new();
        if let Ok(mounts) = integration::proc::self_mounts() {
            found.extend(
                mounts
                    .iter()
                    .filter(|m| m.mount_point.starts_with(&*dir.to_string_lossy()))
                    .map(|m| format!("mount {}", m.mount_point)),
            );
        }
        if dir.exists() && std::env::var_os("RUNRS_E2E_KEEP").is_none() {
            found.push(format!("{} still exists", dir.display()));
        }
        anyhow::ensure!(found.is_empty(), "teardown left:\n  {}", found.join("\n  "));
        Ok(())
    });
}
