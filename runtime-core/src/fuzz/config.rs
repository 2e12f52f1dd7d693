//! config.json: the bytes of a bundle's config go through what `create` does with them
//! before it touches the system (parse, then every validation in create's order, then
//! the pure conversions: namespaces, capabilities, mount flags). Properties: a parsed
//! spec serializes and parses back to itself, and a spec that passed validation has what
//! create later `expect`s (a process with a program to run).

use std::path::Path;

use runrs_fuzzkit::{shape, sig};

use crate::spec::{self, SpecError};

/// Which stage stopped an input, with the shape of its error: the signature.
fn stopped(stage: u8, e: &dyn std::fmt::Display) -> u64 {
    sig(&(stage, shape(&e.to_string())))
}

fn check(data: &[u8]) -> u64 {
    let origin = Path::new("config.json");
    let spec = match spec::parse(data, origin) {
        Ok(s) => s,
        Err(SpecError::Parse { field, message, .. }) => {
            return sig(&(0u8, shape(&field), shape(&message)));
        }
        Err(e) => panic!("parse failed with a non-parse error: {e}"),
    };
    let again = serde_json::to_vec(&spec).expect("a parsed spec serializes");
    let reparsed = spec::parse(&again, origin).unwrap_or_else(|e| {
        panic!(
            "a serialized spec does not parse back: {e}: {}",
            String::from_utf8_lossy(&again)
        )
    });
    assert_eq!(reparsed, spec, "config.json round trip");

    if let Err(e) = spec::validate(&spec) {
        return stopped(1, &e);
    }
    let process = spec
        .process()
        .as_ref()
        .expect("validate passed: process is present");
    let args = process.args().as_ref().expect("validate passed: args");
    assert!(!args.is_empty() && !args[0].is_empty(), "validated args");
    assert!(process.cwd().is_absolute(), "validated cwd");

    if let Err(e) = crate::sysctl::validate(&spec) {
        return stopped(2, &e);
    }
    if let Err(e) = crate::security::preflight(&spec) {
        return stopped(3, &e);
    }
    if let Err(e) = crate::hooks::validate(&spec) {
        return stopped(4, &e);
    }
    if let Err(e) = crate::rdt::validate(&spec, "fuzz") {
        return stopped(5, &e);
    }
    if let Err(e) = crate::notify::requested(&spec) {
        return stopped(6, &e);
    }
    let linux = spec.linux().as_ref().expect("validate passed: linux");
    if let Some(r) = linux.resources() {
        if let Err(e) = crate::cgroups::limits::validate(r) {
            return stopped(7, &e);
        }
    }
    let namespaces = crate::namespaces::from_spec(&spec);
    if let Some(caps) = process.capabilities() {
        let _ = crate::capabilities::resolve(caps);
    }
    for m in spec.mounts().iter().flatten() {
        let o = crate::rootfs::flags::parse(m.options().as_deref().unwrap_or_default());
        let _ = crate::sys::describe_mount_flags(o.flags);
    }
    sig(&(8u8, namespaces.len()))
}

#[test]
fn fuzz_config_json() {
    super::target("config_json")
        .dict(&[
            "\"ociVersion\": \"1.0.2\"",
            "\"process\"",
            "\"args\"",
            "\"cwd\"",
            "\"env\"",
            "\"user\"",
            "\"uid\"",
            "\"capabilities\"",
            "\"bounding\"",
            "\"CAP_SYS_ADMIN\"",
            "\"rlimits\"",
            "\"RLIMIT_NOFILE\"",
            "\"root\"",
            "\"path\"",
            "\"mounts\"",
            "\"destination\"",
            "\"source\"",
            "\"options\"",
            "\"rbind\"",
            "\"linux\"",
            "\"namespaces\"",
            "\"type\"",
            "\"user\"",
            "\"uidMappings\"",
            "\"containerID\"",
            "\"hostID\"",
            "\"size\"",
            "\"resources\"",
            "\"memory\"",
            "\"limit\"",
            "\"swappiness\"",
            "\"cpu\"",
            "\"shares\"",
            "\"pids\"",
            "\"devices\"",
            "\"allow\"",
            "\"access\"",
            "\"seccomp\"",
            "\"defaultAction\"",
            "\"SCMP_ACT_ERRNO\"",
            "\"SCMP_ACT_NOTIFY\"",
            "\"syscalls\"",
            "\"names\"",
            "\"sysctl\"",
            "\"net.ipv4.ip_forward\"",
            "\"hooks\"",
            "\"prestart\"",
            "\"timeout\"",
            "\"intelRdt\"",
            "\"closID\"",
            "\"l3CacheSchema\"",
            "\"memBwSchema\"",
            "\"annotations\"",
            "\"run.oci.systemd.notify\"",
            "\"rootfsPropagation\"",
            "\"maskedPaths\"",
            "\"hostname\"",
            "\"cgroupsPath\"",
            "null",
            "true",
            "[]",
            "{}",
        ])
        .max_len(32 * 1024)
        .run(check);
}

/// The seeds that stand for real configs still pass validation.
#[test]
fn seeds_validate() {
    for file in [
        "runc-default.json",
        "runc-rootless.json",
        "cri-pod-userns.json",
    ] {
        let spec = spec::parse(&super::seed("config_json", file), Path::new(file)).expect(file);
        spec::validate(&spec).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}
