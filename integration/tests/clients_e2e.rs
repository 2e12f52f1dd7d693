//! Client end-to-end suite (issue 14): runrs under the clients people use, each scenario
//! also run with runc as the reference.
//!
//! - Podman 4.3 (Debian 12) with `--runtime <runrs>` / `--runtime /usr/sbin/runc`, as
//!   root and as the rootless test user `runrs-rootless`;
//! - Docker 20.10 (Debian 12) with `--add-runtime runrs=<runrs>`: runrs driven by
//!   containerd's runc shim (`BinaryName`), against Docker's own runc;
//! - Docker 26.1 (Debian 13's binaries in /opt/docker-26) with
//!   `runtimeType: io.containerd.runrs.v2`: runrs's own shim, against Docker's runc.
//!
//! Everything is private: podman `--root/--runroot/--tmpdir` and a containers.conf, each
//! dockerd with its own `--data-root/--exec-root/-H/--pidfile` and the containerd it starts
//! under its exec root, cgroup parents `/runrs-clients-*`. The image is the locally built
//! busybox (make-busybox-image.sh), loaded with `podman load` / `docker load` from archives
//! built here: nothing is pulled. Every check runs under the shared leak checker.
//!
//! A client the deps stage installs (integration/scripts/install-clients.sh) that is
//! missing is a failure, not a skip. Needs root and the runrs binaries:
//!
//!     cargo build --workspace
//!     cargo test -p integration --test clients_e2e [-- CHECK...]
//!
//! `RUNRS_CLIENTS_KEEP=1` keeps the work directory (daemon logs).

#[path = "clients_e2e/common.rs"]
mod common;
#[path = "clients_e2e/docker.rs"]
mod docker;
#[path = "clients_e2e/podman.rs"]
mod podman;
#[path = "clients_e2e/rootless.rs"]
mod rootless;

use std::process::ExitCode;

use integration::containerd::runner::Runner;

fn main() -> ExitCode {
    let mut r = Runner::from_args().labelled("clients e2e");
    if r.list_only {
        for name in podman::CHECKS
            .iter()
            .chain(rootless::CHECKS)
            .chain(docker::CHECKS)
        {
            println!("{name}: test");
        }
        return r.finish();
    }
    match common::Work::new() {
        Ok(work) => {
            podman::suite(&mut r, &work);
            if r.selected("podman-rootless") {
                rootless::suite(&mut r, &work);
            }
            for d in docker::Engine::all() {
                docker::suite(&mut r, &work, &d);
            }
        }
        Err(e) => r.fail("setup", "prerequisites", format!("{e:#}")),
    }
    r.finish()
}
