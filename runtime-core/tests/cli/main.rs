//! Privileged CLI tests of issue 8 (hooks, sd_notify, Intel RDT, features), run
//! against the real `runrs` binary and a busybox rootfs. Each test skips with a
//! printed reason when the machine cannot run it (not root, no gcc, ...).

mod common;
mod features;
mod hooks;
mod notify;
mod rdt;
