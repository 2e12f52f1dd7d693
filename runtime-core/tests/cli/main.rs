//! Privileged CLI tests of issue 8 (hooks, sd_notify, Intel RDT, features) and of
//! issue 4's runrs-specific resource control (resources, the v2 device filter), run
//! against the real `runrs` binary and a busybox rootfs. Each test skips with a
//! printed reason when the machine cannot run it (not root, no gcc, ...).
#![allow(
    clippy::disallowed_methods,
    reason = "the harness writes host-side fixtures: bundles it builds, cgroupfs, attack set-ups"
)]

mod bpf_devices;
mod common;
mod features;
mod hooks;
mod notify;
mod rdt;
mod resources;
mod resources_support;
mod systemd_helper;
