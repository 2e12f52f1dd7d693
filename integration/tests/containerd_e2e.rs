//! containerd end-to-end suite: issue 3's acceptance as checks, against every installed
//! containerd (1.6 always; 1.7 and 2.1 when in /opt/containerd-LINE), each scenario with
//! `io.containerd.runrs.v2` and, to validate the test itself, `io.containerd.runc.v2`.
//!
//! Needs root, containerd (integration/scripts/e2e-deps.sh), the shared e2e scripts
//! (`RUNRS_E2E_DIR`) and the shim and runrs binaries:
//!
//!     cargo build -p containerd-shim-runrs-v2 -p runtime-core
//!     cargo test -p integration --test containerd_e2e [-- SCENARIO...]
//!
//! `RUNRS_E2E_CONTAINERD=1.6,2.1` picks containerd lines, `RUNRS_E2E_RUNTIMES=runrs`
//! picks runtimes, `RUNRS_E2E_KEEP=1` keeps each instance's directory (logs),
//! `RUNRS_E2E_REPEAT=N` runs each ctr scenario N times.
//! See integration/src/containerd/runner.rs for why this target has its own runner.

#[path = "containerd_e2e/checkpoint.rs"]
mod checkpoint;
#[path = "containerd_e2e/closeio.rs"]
mod closeio;
#[path = "containerd_e2e/create_errors.rs"]
mod create_errors;
#[path = "containerd_e2e/exec.rs"]
mod exec;
#[path = "containerd_e2e/faults.rs"]
mod faults;
#[path = "containerd_e2e/notify.rs"]
mod notify;
#[path = "containerd_e2e/resources.rs"]
mod resources;
#[path = "containerd_e2e/scenarios.rs"]
mod scenarios;

use std::process::ExitCode;

use anyhow::{anyhow, Result};
use integration::containerd::events::EventLog;
use integration::containerd::runner::Runner;
use integration::containerd::{
    host, matrix, scripts_dir, Containerd, ShimDir, Version, NAMESPACE, RUNC, RUNRS,
};
use integration::leaks::{assert_no_leaks, Snapshot};
use scenarios::{Ctx, Reference, SCENARIOS};

fn main() -> ExitCode {
    let mut r = Runner::from_args();
    if r.list_only {
        for (name, _) in SCENARIOS {
            println!("{name}: test");
        }
        println!("closeio: test");
        println!("restore-from-path: test");
        return r.finish();
    }
    if let Err(e) = run(&mut r) {
        r.fail("setup", "prerequisites", format!("{e:#}"));
    }
    // Per-namespace dirs that shims and runtimes create and never remove (ours only).
    for d in ["/run/containerd/runrs", "/run/containerd/runc"] {
        host::remove_if_empty(&std::path::Path::new(d).join(NAMESPACE));
    }
    // The namespace's parent cgroup (containerd-down.sh removes it too, but `closeio`
    // runs without containerd).
    if let Ok(mounts) = integration::proc::cgroup_mounts() {
        for m in mounts {
            if let Some(d) = integration::proc::cgroup_dir(&m, &format!("/{NAMESPACE}")) {
                host::remove_if_empty(&d);
            }
        }
    }
    r.finish()
}

/// The runtimes to run the ctr scenarios with: runc first (its results are the
/// reference), then runrs. `RUNRS_E2E_RUNTIMES=runrs` (or `runc`) picks one.
fn runtimes() -> Vec<(&'static str, &'static str)> {
    let wanted = std::env::var("RUNRS_E2E_RUNTIMES").unwrap_or_default();
    [("runc", RUNC), ("runrs", RUNRS)]
        .into_iter()
        .filter(|(short, _)| {
            wanted.trim().is_empty() || wanted.split(',').any(|w| w.trim() == *short)
        })
        .collect()
}

/// `RUNRS_E2E_REPEAT=N` runs each ctr scenario N times in a row (hunting flakes).
fn repeat() -> usize {
    std::env::var("RUNRS_E2E_REPEAT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

fn run(r: &mut Runner) -> Result<()> {
    integration::rootfs::check_prerequisites()?;
    let scripts = scripts_dir()?;
    let shim = ShimDir::new()?;
    // Build the busybox rootfs (used by `closeio`) once, before anything is timed.
    integration::rootfs::busybox_rootfs()?;
    let m = matrix()?;
    for (line, why) in &m.skipped {
        println!("containerd {line}: skipped: {why}");
        r.skip(&format!("containerd {line}"), "all", why);
    }
    let wanted = SCENARIOS.iter().any(|(n, _)| r.selected(n));
    for (i, v) in m.versions.iter().enumerate() {
        if wanted {
            run_version(r, v, &scripts, &shim, i == 0);
        }
    }
    for (short, runtime, bin) in closeio::shims(&shim.binary) {
        let group = format!("shim {short} (ttrpc, no containerd)");
        if !bin.is_file() {
            r.skip(
                &group,
                "closeio",
                &format!("{} not installed", bin.display()),
            );
            continue;
        }
        if runtimes().iter().any(|(s, _)| *s == short) {
            r.check(&group, "closeio", || closeio::closeio(&bin, runtime, short));
            if short == "runrs" {
                r.check(&group, "restore-from-path", || {
                    closeio::restore_from_path(&bin, runtime)
                });
            } else {
                r.skip(
                    &group,
                    "restore-from-path",
                    "runrs only: containerd-shim-runc-v2 leaves CriuImagePath to containerd",
                );
            }
        }
    }
    Ok(())
}

/// How long the leak checker waits for a check's processes, connections and
/// directories to go (a shim's `delete` runs after containerd notices its death).
const LEAK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Checks of runrs-only features (runc's shim has nothing to validate them against).
/// `shim-kill9-create` checks that nothing is left, and runc's shim killed in Create
/// leaves the container's cgroup (its `runc delete` finds no state yet) and its socket.
const RUNRS_ONLY: &[&str] = &["notify", "checkpoint", "shim-kill9-create"];

/// Checks that measure throughput or load: one containerd version is enough for them.
const HEAVY: &[&str] = &["exec-concurrent", "stdout-1g"];

fn heavy_everywhere() -> bool {
    std::env::var("RUNRS_E2E_HEAVY").is_ok_and(|v| v == "all")
}

fn run_version(
    r: &mut Runner,
    v: &Version,
    scripts: &std::path::Path,
    shim: &ShimDir,
    first: bool,
) {
    let group = v.label();
    let mut up = None;
    r.always(&group, "containerd-up", || {
        let cd = Containerd::up(v, scripts, shim.path())?;
        println!("[{group}] containerd in {}", cd.dir.display());
        up = Some(cd);
        Ok(())
    });
    let Some(cd) = up else { return };
    let dir = cd.dir.clone();
    let socket = cd.address().to_string_lossy().into_owned();
    match EventLog::start(&cd.ctr, &cd.dir.join("events.log")) {
        Ok(events) => {
            let reference = Reference::default();
            for (short, runtime) in runtimes() {
                let ctx = Ctx {
                    cd: &cd,
                    events: &events,
                    runtime,
                    short,
                    reference: &reference,
                };
                let g = format!("{group} / {short}");
                for (name, f) in SCENARIOS
                    .iter()
                    .flat_map(|s| std::iter::repeat_n(s, repeat()))
                {
                    if RUNRS_ONLY.contains(name) && short != "runrs" {
                        let why = if *name == "notify" {
                            "runrs only: sd_notify readiness has no runc-shim equivalent"
                        } else if *name == "shim-kill9-create" {
                            "runrs only: runc's shim killed in Create leaves the cgroup and its socket"
                        } else {
                            "runrs only: runc 1.1.5 cannot checkpoint on this host (its criu settings need iptables)"
                        };
                        r.skip(&g, name, why);
                        continue;
                    }
                    if HEAVY.contains(name) && !first && !heavy_everywhere() {
                        r.skip(
                            &g,
                            name,
                            "throughput/concurrency check runs on the first containerd only (RUNRS_E2E_HEAVY=all for every version)",
                        );
                        continue;
                    }
                    r.check(&g, name, || {
                        let from = cd.log_len();
                        // Nothing new on the host after any check: the shared leak checker.
                        let scope = cd.leak_scope();
                        let before = Snapshot::take(&scope);
                        f(&ctx)
                            .and_then(|()| assert_no_leaks(&before, &scope, LEAK_WAIT))
                            .map_err(|e| {
                            anyhow!(
                                "{e:#}\n--- containerd.log during this check (shim log lines included) ---\n{}",
                                cd.log_tail(from, 60)
                            )
                        })
                    });
                }
            }
        }
        Err(e) => r.fail(&group, "ctr events", format!("{e:#}")),
    }
    // containerd-down.sh (dropping the instance), then nothing of the instance may be
    // left: no process naming its socket, no mount below its directory, no directory.
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
        found.extend(
            std::fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
                .filter(|&p| host::cmdline(p).iter().any(|a| a.contains(&socket)))
                .map(|p| format!("process {p}: {}", host::cmdline(p).join(" "))),
        );
        if dir.exists() && std::env::var_os("RUNRS_E2E_KEEP").is_none() {
            found.push(format!("{} still exists", dir.display()));
        }
        anyhow::ensure!(
            found.is_empty(),
            "containerd-down.sh left:\n  {}",
            found.join("\n  ")
        );
        Ok(())
    });
}
