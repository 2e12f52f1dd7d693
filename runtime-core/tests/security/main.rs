//! Privileged end-to-end tests of issue 5 (security), run against the `runrs` CLI:
//! seccomp, capabilities, no_new_privs, LSM refusal, masked/read-only paths, sysctl,
//! user namespaces, and regression tests for runc's container-escape CVEs. Each test
//! reads what it asserts from inside the container or from the host kernel, and checks
//! that nothing is left behind. They skip (printing why) when not run as root.
//!
//! RUNRS_SEC_RUNTIME=/usr/sbin/runc runs the CVE tests against another runtime, to see
//! them fail where that runtime is vulnerable (runc 1.1.5 for the 2024/2025 ones).
#![allow(
    clippy::disallowed_methods,
    reason = "the harness writes host-side fixtures: bundles it builds, cgroupfs, attack set-ups"
)]

mod caps;
mod cve_fd;
mod cve_paths;
mod lsm;
mod paths;
mod seccomp;
mod support;
mod userns;
