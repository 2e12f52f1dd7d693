//! Namespaces seen from inside the container: /proc/self/ns/<x> differs from the host's when
//! the namespace is requested and equals it when not; joining another container's
//! namespaces by path; a user namespace with id mappings.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use integration::config::{add_mount, remove, remove_namespace, set_args, set_namespace, sh};
use integration::{proc, skip, Bundle, Runtime};
use serde_json::json;

/// /proc/self/ns link names, with the spec's namespace type for each.
const NAMESPACES: [(&str, &str); 6] = [
    ("pid", "pid"),
    ("mnt", "mount"),
    ("uts", "uts"),
    ("ipc", "ipc"),
    ("net", "network"),
    ("cgroup", "cgroup"),
];

/// A script printing `<link>=<target>` for each namespace link.
fn ns_script(links: &[&str]) -> String {
    let mut s = String::new();
    for l in links {
        s.push_str(&format!("echo {l}=$(readlink /proc/self/ns/{l}); "));
    }
    s
}

fn parse_kv(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
fn requested_namespaces_are_new() -> Result<()> {
    let rt = Runtime::new()?;
    let links: Vec<&str> = NAMESPACES.iter().map(|(l, _)| *l).collect();
    let b = Bundle::with_config("ns-new", |c| {
        set_namespace(c, "cgroup", None);
        sh(c, &ns_script(&links));
    })?;
    let seen = parse_kv(&rt.output(&b)?);
    for (link, ty) in NAMESPACES {
        let host = proc::ns_link("self", link)?;
        let inside = seen
            .get(link)
            .with_context(|| format!("no {link} in {seen:?}"))?;
        ensure!(
            inside.starts_with(&format!("{link}:[")),
            "{link}: {inside:?}"
        );
        ensure!(
            *inside != host,
            "namespace {ty} was requested but the container shares the host's {host}"
        );
    }
    rt.assert_no_leftovers(&b)
}

#[test]
fn unrequested_namespaces_are_the_hosts() -> Result<()> {
    let rt = Runtime::new()?;
    let links: Vec<&str> = NAMESPACES.iter().map(|(l, _)| *l).collect();
    // Only a mount namespace: runc cannot run a container without one (it needs to
    // pivot_root and mount /proc), see the compatibility notes.
    let b = Bundle::with_config("ns-host", |c| {
        for (_, ty) in NAMESPACES {
            if ty != "mount" {
                remove_namespace(c, ty);
            }
        }
        // Without a UTS namespace the hostname may not be set.
        remove(c, "hostname");
        sh(c, &ns_script(&links));
    })?;
    let seen = parse_kv(&rt.output(&b)?);
    for (link, ty) in NAMESPACES {
        let host = proc::ns_link("self", link)?;
        let inside = seen
            .get(link)
            .with_context(|| format!("no {link} in {seen:?}"))?;
        if ty == "mount" {
            ensure!(
                *inside != host,
                "mount namespace requested but shared with the host"
            );
        } else {
            ensure!(
                *inside == host,
                "namespace {ty} not requested but the container has {inside}, host {host}"
            );
        }
    }
    rt.assert_no_leftovers(&b)
}

#[test]
fn hostname_without_uts_namespace_is_rejected() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("ns-nouts", |c| {
        remove_namespace(c, "uts");
        c["hostname"] = json!("runrs-it-host");
    })?;
    let out = rt.create(&b)?.fails()?;
    out.stderr_mentions("hostname")?;
    rt.assert_no_leftovers(&b)
}

#[test]
fn time_namespace() -> Result<()> {
    let rt = Runtime::new()?;
    if proc::ns_link("self", "time").is_err() {
        skip("the kernel has no time namespaces");
        return Ok(());
    }
    let b = Bundle::with_config("ns-time", |c| {
        set_namespace(c, "time", None);
        sh(c, "readlink /proc/self/ns/time");
    })?;
    if rt.supports_namespace("time") {
        let inside = rt.output(&b)?;
        ensure!(
            inside.trim() != proc::ns_link("self", "time")?,
            "time namespace requested but shared"
        );
    } else {
        // The runtime does not list it in `features` (runc 1.1): it must refuse cleanly.
        skip("the runtime's features do not list the time namespace; checking it is refused");
        let out = rt.create(&b)?.fails()?;
        out.stderr_mentions("time")?;
    }
    rt.assert_no_leftovers(&b)
}

#[test]
fn join_namespaces_by_path() -> Result<()> {
    let rt = Runtime::new()?;
    let first = Bundle::with_config("ns-join1", |c| {
        set_args(c, &["sleep", "30"]);
        c["hostname"] = json!("runrs-it-joined");
    })?;
    let pid = rt.create_and_start(&first)?.pid.to_string();
    let shared = ["net", "uts", "ipc"];
    let second = Bundle::with_config("ns-join2", |c| {
        set_namespace(c, "network", Some(&format!("/proc/{pid}/ns/net")));
        set_namespace(c, "uts", Some(&format!("/proc/{pid}/ns/uts")));
        set_namespace(c, "ipc", Some(&format!("/proc/{pid}/ns/ipc")));
        // Setting a hostname in a joined UTS namespace would rename the first container.
        remove(c, "hostname");
        sh(
            c,
            &format!(
                "{} echo hostname=$(hostname)",
                ns_script(&["net", "uts", "ipc", "pid", "mnt"])
            ),
        );
    })?;
    let seen = parse_kv(&rt.output(&second)?);
    for l in shared {
        let theirs = proc::ns_link(&pid, l)?;
        ensure!(
            seen.get(l) == Some(&theirs),
            "{l}: joined container has {:?}, first has {theirs}",
            seen.get(l)
        );
    }
    for l in ["pid", "mnt"] {
        let theirs = proc::ns_link(&pid, l)?;
        ensure!(
            seen.get(l).is_some_and(|v| *v != theirs),
            "{l} should be the second container's own: {seen:?}"
        );
    }
    ensure!(
        seen.get("hostname").map(String::as_str) == Some("runrs-it-joined"),
        "hostname: {seen:?}"
    );
    rt.assert_no_leftovers(&second)?;
    rt.delete_force(first.id())?.ok()?;
    rt.assert_no_leftovers(&first)
}

#[test]
fn user_namespace_with_mappings() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::new("ns-user")?;
    b.chown_rootfs(100_000, 100_000)?;
    let share = b.host_dir("share")?;
    std::fs::set_permissions(&share, std::fs::Permissions::from_mode(0o777))?;
    let share_s = share.to_string_lossy().into_owned();
    b.configure(|c| {
        set_namespace(c, "user", None);
        c["linux"]["uidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
        c["linux"]["gidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
        add_mount(c, "/share", "bind", &share_s, &["rbind", "rw"]);
        sh(
            c,
            "echo uid_map=$(cat /proc/self/uid_map); echo gid_map=$(cat /proc/self/gid_map); \
             echo uid=$(id -u); echo gid=$(id -g); echo user=$(readlink /proc/self/ns/user); \
             touch /share/made-inside",
        );
    })?;
    let seen = parse_kv(&rt.run(&b, b"", Duration::from_secs(30))?.ok()?.stdout);
    let map = |k: &str| -> Result<Vec<String>> {
        Ok(seen
            .get(k)
            .with_context(|| format!("no {k}: {seen:?}"))?
            .split_whitespace()
            .map(str::to_owned)
            .collect())
    };
    ensure!(
        map("uid_map")? == ["0", "100000", "65536"],
        "uid_map: {seen:?}"
    );
    ensure!(
        map("gid_map")? == ["0", "100000", "65536"],
        "gid_map: {seen:?}"
    );
    ensure!(
        seen.get("uid").map(String::as_str) == Some("0"),
        "id -u: {seen:?}"
    );
    ensure!(
        seen.get("gid").map(String::as_str) == Some("0"),
        "id -g: {seen:?}"
    );
    ensure!(
        seen.get("user") != Some(&proc::ns_link("self", "user")?),
        "user namespace shared with the host"
    );
    let meta = std::fs::metadata(share.join("made-inside"))
        .context("file made inside is not on the host")?;
    ensure!(
        meta.uid() == 100_000 && meta.gid() == 100_000,
        "host sees {}:{}, want 100000:100000",
        meta.uid(),
        meta.gid()
    );
    rt.assert_no_leftovers(&b)
}

#[test]
fn loopback_is_up_in_a_new_network_namespace() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("ns-lo", |c| sh(c, "cat /sys/class/net/lo/flags"))?;
    let out = rt.output(&b)?;
    let flags = u32::from_str_radix(out.trim().trim_start_matches("0x"), 16)?;
    ensure!(
        flags & 1 == 1,
        "lo should be up (IFF_UP) like with runc: flags {out:?}"
    );
    rt.assert_no_leftovers(&b)
}
