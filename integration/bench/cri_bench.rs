//! CRI path benchmark (issue 13, item 6): what the kubelet waits for when it starts a
//! pod, through containerd's CRI API, runtime handler `runrs` vs `runc` (the runc-v2
//! shim), in one run, interleaved.
//!
//! 1. Latency: RunPodSandbox + CreateContainer + StartContainer of a one-container pod
//!    (host network, busybox), N samples per handler after 3 warm-ups (each pod stopped
//!    and removed, untimed, before the next); median and p90 of each step and the sum.
//! 2. 50 pods started concurrently (CONC): wall time until every pod's container has
//!    started, per handler.
//!
//! Run through `integration/bench/bench.sh cri` (it builds this, points it at the
//! shipped shim and writes `$OUT/cri.json`). Env: N (30), CONC (50), OUT,
//! RUNRS_TEST_SHIM (the shim), RUNRS_E2E_CONTAINERD (the containerd line; default the
//! newest installed), RUNRS_E2E_DIR. Never a pass/fail test.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use integration::containerd::{matrix, scripts_dir, ShimDir, IMAGE};
use integration::cri::{CgroupDriver, Cri, CriContainerd, Images};
use runrs_cri_proto::v1 as cri;

const HANDLERS: [&str; 2] = ["runrs", "runc"];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pod_config(cd: &CriContainerd, tag: &str) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: tag.into(),
            uid: tag.into(),
            namespace: "runrs-cri-bench".into(),
            attempt: 0,
        }),
        log_directory: cd.dir.join("pods").join(tag).to_string_lossy().into_owned(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: cd.driver.parent().into(),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: 2, // NODE
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Starts one pod with one container; returns (pod id, [run, create, start] durations).
fn start_pod(
    c: &Cri,
    cd: &CriContainerd,
    handler: &str,
    tag: &str,
) -> Result<(String, [Duration; 3])> {
    let config = pod_config(cd, tag);
    std::fs::create_dir_all(&config.log_directory)?;
    let t = Instant::now();
    let req = cri::RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: handler.into(),
    };
    let pod = c
        .rt("RunPodSandbox", |mut c| async move {
            c.run_pod_sandbox(req).await
        })?
        .pod_sandbox_id;
    let run = t.elapsed();
    let t = Instant::now();
    let req = cri::CreateContainerRequest {
        pod_sandbox_id: pod.clone(),
        config: Some(cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: "main".into(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: IMAGE.into(),
                ..Default::default()
            }),
            command: vec!["sleep".into(), "3600".into()],
            log_path: "main.log".into(),
            ..Default::default()
        }),
        sandbox_config: Some(config),
    };
    let ctr = c
        .rt("CreateContainer", |mut c| async move {
            c.create_container(req).await
        })?
        .container_id;
    let create = t.elapsed();
    let t = Instant::now();
    c.rt("StartContainer", |mut c| async move {
        c.start_container(cri::StartContainerRequest { container_id: ctr })
            .await
    })?;
    Ok((pod, [run, create, t.elapsed()]))
}

fn remove_pod(c: &Cri, pod: &str) -> Result<()> {
    let p = pod.to_owned();
    c.rt("StopPodSandbox", |mut c| async move {
        c.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: p })
            .await
    })?;
    let p = pod.to_owned();
    c.rt("RemovePodSandbox", |mut c| async move {
        c.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: p })
            .await
    })?;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let i = ((s.len() - 1) as f64 * q).round() as usize;
    s[i.min(s.len() - 1)]
}

fn main() -> Result<()> {
    let n = env_usize("N", 30);
    let conc = env_usize("CONC", 50);
    let out = std::path::PathBuf::from(
        std::env::var("OUT").unwrap_or_else(|_| "/tmp/runrs-bench-results".into()),
    );
    std::fs::create_dir_all(&out)?;
    let scripts = scripts_dir()?;
    let shim = ShimDir::new()?;
    let images = Images::build()?;
    let m = matrix()?;
    let version = m
        .versions
        .last()
        .ok_or_else(|| anyhow!("no containerd installed"))?
        .clone();
    let cd = CriContainerd::up(
        &version,
        &scripts,
        shim.path(),
        CgroupDriver::Cgroupfs,
        &images,
    )?;
    eprintln!(
        "cri-bench: {} in {}, shim {}, N={n}, CONC={conc}",
        version.label(),
        cd.dir.display(),
        shim.binary.display()
    );

    // 1. Latency, interleaved, order alternating every round.
    let mut samples: Vec<(&str, [f64; 3])> = Vec::new();
    for round in 0..(n + 3) {
        let order: Vec<&str> = if round % 2 == 0 {
            HANDLERS.to_vec()
        } else {
            HANDLERS.iter().rev().copied().collect()
        };
        for h in order {
            let (pod, d) = start_pod(&cd.cri, &cd, h, &format!("lat-{h}-{round}"))?;
            remove_pod(&cd.cri, &pod)?;
            if round >= 3 {
                samples.push((h, [ms(d[0]), ms(d[1]), ms(d[2])]));
            }
        }
    }

    // 2. CONC pods at once, each from its own thread and connection.
    let mut conc_wall = Vec::new();
    for h in HANDLERS {
        let barrier = Arc::new(Barrier::new(conc + 1));
        let sock = cd.address();
        let cdr = &cd;
        let (wall, pods) = thread::scope(|s| -> Result<(Duration, Vec<String>)> {
            let workers: Vec<_> = (0..conc)
                .map(|i| {
                    let b = Arc::clone(&barrier);
                    let sock = sock.clone();
                    s.spawn(move || -> Result<String> {
                        let c = Cri::connect(&sock)?;
                        b.wait();
                        Ok(start_pod(&c, cdr, h, &format!("conc-{h}-{i}"))?.0)
                    })
                })
                .collect();
            barrier.wait();
            let t = Instant::now();
            let mut pods = Vec::new();
            for w in workers {
                pods.push(w.join().map_err(|_| anyhow!("worker panicked"))??);
            }
            Ok((t.elapsed(), pods))
        })?;
        conc_wall.push((h, ms(wall)));
        for p in pods {
            remove_pod(&cd.cri, &p)?;
        }
    }

    // Report.
    let mut text = format!(
        "CRI path, {} (host-network pods, busybox `sleep`), N={n}, ms\n\n{:<8} {:>22} {:>22} {:>22} {:>22}\n",
        version.label(),
        "handler",
        "RunPodSandbox med/p90",
        "CreateContainer",
        "StartContainer",
        "sum"
    );
    let mut json = serde_json::Map::new();
    for h in HANDLERS {
        let rows: Vec<[f64; 3]> = samples
            .iter()
            .filter(|(x, _)| *x == h)
            .map(|(_, d)| *d)
            .collect();
        let col = |i: usize| rows.iter().map(|r| r[i]).collect::<Vec<_>>();
        let sum: Vec<f64> = rows.iter().map(|r| r.iter().sum()).collect();
        let cell = |v: &[f64]| format!("{:.1} / {:.1}", quantile(v, 0.5), quantile(v, 0.9));
        text += &format!(
            "{h:<8} {:>22} {:>22} {:>22} {:>22}\n",
            cell(&col(0)),
            cell(&col(1)),
            cell(&col(2)),
            cell(&sum)
        );
        json.insert(
            h.to_owned(),
            serde_json::json!({
                "run_pod_sandbox_ms": col(0), "create_container_ms": col(1),
                "start_container_ms": col(2), "sum_ms": sum,
                "concurrent_wall_ms": conc_wall.iter().find(|(x, _)| *x == h).map(|(_, w)| *w),
            }),
        );
    }
    text += &format!("\n{conc} pods started concurrently (RunPodSandbox+CreateContainer+StartContainer each), wall ms:\n");
    for (h, w) in &conc_wall {
        text += &format!("{h:<8} {w:>10.0}\n");
    }
    json.insert(
        "meta".into(),
        serde_json::json!({ "containerd": version.full, "n": n, "concurrent": conc }),
    );
    print!("{text}");
    std::fs::write(out.join("cri.txt"), &text)?;
    std::fs::write(
        out.join("cri.json"),
        serde_json::to_string_pretty(&serde_json::Value::Object(json))?,
    )
    .context("write cri.json")?;
    drop(cd);
    Ok(())
}
