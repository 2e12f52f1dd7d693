//! The container's filesystem seen from inside: its /proc/self/mountinfo, bind and tmpfs
//! mounts, a read-only root, masked and read-only paths, hostname, default devices and
//! /dev symlinks.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use integration::config::{add_mount, sh};
use integration::proc::{parse_mountinfo, MountInfo};
use integration::{Bundle, Runtime};
use serde_json::{json, Value};

/// runc's default mounts (`runc spec`), set explicitly so these tests check mount handling
/// and not the `spec` defaults (cli_spec checks those).
fn default_mounts() -> Value {
    json!([
        { "destination": "/proc", "type": "proc", "source": "proc" },
        { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
          "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
        { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
          "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
        { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
          "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
        { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
          "options": ["nosuid", "noexec", "nodev"] },
        { "destination": "/sys", "type": "sysfs", "source": "sysfs",
          "options": ["nosuid", "noexec", "nodev", "ro"] },
        { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
          "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
    ])
}

/// The mount table in a container's output (the lines of `cat /proc/self/mountinfo`).
fn mounts_of(out: &str) -> Vec<MountInfo> {
    parse_mountinfo(
        &out.lines()
            .filter(|l| l.contains(" - "))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// The last (topmost) mount at `point`.
fn mount_at<'a>(mounts: &'a [MountInfo], point: &str) -> Result<&'a MountInfo> {
    mounts
        .iter()
        .rev()
        .find(|m| m.mount_point == point)
        .with_context(|| {
            format!(
                "no mount at {point}; mounts: {:#?}",
                mounts.iter().map(|m| &m.mount_point).collect::<Vec<_>>()
            )
        })
}

fn check(m: &MountInfo, fstype: &str, opts: &[&str], super_opts: &[&str]) -> Result<()> {
    ensure!(
        m.fstype == fstype,
        "{} is {}, want {fstype}: {m:?}",
        m.mount_point,
        m.fstype
    );
    for o in opts {
        ensure!(
            m.has_option(o),
            "{} lacks mount option {o}: {m:?}",
            m.mount_point
        );
    }
    for o in super_opts {
        ensure!(
            m.has_super_option(o),
            "{} lacks superblock option {o}: {m:?}",
            m.mount_point
        );
    }
    Ok(())
}

/// `key=value` lines of the output.
fn kv(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

fn get<'a>(m: &'a BTreeMap<String, String>, k: &str) -> Result<&'a str> {
    m.get(k)
        .map(String::as_str)
        .with_context(|| format!("no {k} in {m:?}"))
}

#[test]
fn default_mounts_in_mountinfo() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("mnt-default", |c| {
        c["mounts"] = default_mounts();
        sh(
            c,
            "cat /proc/self/mountinfo; echo shm_mode=$(stat -c %a /dev/shm)",
        );
    })?;
    let out = rt.output(&b)?;
    let mounts = mounts_of(&out);
    let root = mount_at(&mounts, "/")?;
    ensure!(
        root.is_ro(),
        "root.readonly is true but / is not ro: {root:?}"
    );
    check(mount_at(&mounts, "/proc")?, "proc", &[], &[])?;
    check(
        mount_at(&mounts, "/dev")?,
        "tmpfs",
        &["nosuid"],
        &["mode=755", "size=65536k"],
    )?;
    check(
        mount_at(&mounts, "/dev/pts")?,
        "devpts",
        &["nosuid", "noexec"],
        &["mode=620", "ptmxmode=666", "gid=5"],
    )?;
    check(
        mount_at(&mounts, "/dev/shm")?,
        "tmpfs",
        &["nosuid", "nodev", "noexec"],
        &["size=65536k"],
    )?;
    ensure!(
        get(&kv(&out), "shm_mode")? == "1777",
        "/dev/shm mode: {out}"
    );
    check(
        mount_at(&mounts, "/dev/mqueue")?,
        "mqueue",
        &["nosuid", "nodev", "noexec"],
        &[],
    )?;
    check(
        mount_at(&mounts, "/sys")?,
        "sysfs",
        &["ro", "nosuid", "nodev", "noexec"],
        &[],
    )?;

    let cg = mount_at(&mounts, "/sys/fs/cgroup")?;
    if cg.fstype == "cgroup2" {
        ensure!(cg.is_ro(), "/sys/fs/cgroup (cgroup2) is not ro: {cg:?}");
    } else {
        // cgroup v1 / hybrid: a tmpfs with one read-only bind of the container's own cgroup
        // per v1 hierarchy (no cgroup namespace: the mount root is the cgroupsPath).
        ensure!(
            cg.fstype == "tmpfs",
            "/sys/fs/cgroup is {}: {cg:?}",
            cg.fstype
        );
        let v1: Vec<&MountInfo> = mounts
            .iter()
            .filter(|m| m.mount_point.starts_with("/sys/fs/cgroup/") && m.fstype == "cgroup")
            .collect();
        ensure!(
            !v1.is_empty(),
            "no cgroup v1 hierarchies under /sys/fs/cgroup:\n{out}"
        );
        for m in v1 {
            ensure!(m.is_ro(), "{} is not ro: {m:?}", m.mount_point);
            ensure!(
                m.root == b.cgroups_path(),
                "{} shows cgroup {}, want {}",
                m.mount_point,
                m.root,
                b.cgroups_path()
            );
        }
    }
    rt.assert_no_leftovers(&b)
}

#[test]
fn bind_mounts_rw_and_ro() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::new("mnt-bind")?;
    let rw = b.host_dir("rw")?;
    let ro = b.host_dir("ro")?;
    fs::write(ro.join("hello"), "from-host\n")?;
    let (rw_s, ro_s) = (
        rw.to_string_lossy().into_owned(),
        ro.to_string_lossy().into_owned(),
    );
    b.configure(|c| {
        add_mount(c, "/mnt/rw", "bind", &rw_s, &["bind", "rw"]);
        add_mount(c, "/mnt/ro", "bind", &ro_s, &["bind", "ro"]);
        sh(
            c,
            "echo inside > /mnt/rw/new && echo rw=ok; echo ro_read=$(cat /mnt/ro/hello); \
             if echo x > /mnt/ro/new; then echo ro_write=allowed; else echo ro_write=denied; fi; \
             cat /proc/self/mountinfo",
        );
    })?;
    let out = rt.run(&b, b"", std::time::Duration::from_secs(30))?.ok()?;
    let v = kv(&out.stdout);
    ensure!(get(&v, "rw")? == "ok", "{out}");
    ensure!(
        fs::read_to_string(rw.join("new"))? == "inside\n",
        "write through the rw bind not seen on the host"
    );
    ensure!(get(&v, "ro_read")? == "from-host", "{out}");
    ensure!(
        get(&v, "ro_write")? == "denied",
        "writing to the ro bind worked: {out}"
    );
    ensure!(
        out.stderr.contains("Read-only file system"),
        "no EROFS for the ro bind: {out}"
    );
    ensure!(!ro.join("new").exists(), "file written through the ro bind");
    let mounts = mounts_of(&out.stdout);
    ensure!(mount_at(&mounts, "/mnt/ro")?.is_ro(), "/mnt/ro not ro");
    ensure!(
        mount_at(&mounts, "/mnt/rw")?.has_option("rw"),
        "/mnt/rw not rw"
    );
    rt.assert_no_leftovers(&b)
}

/// A tmpfs mounted on the host for the duration of a test.
struct HostTmpfs(PathBuf);

impl HostTmpfs {
    fn mount(at: &Path) -> Result<Self> {
        fs::create_dir_all(at)?;
        nix::mount::mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=1m"),
        )
        .with_context(|| format!("mount tmpfs on {}", at.display()))?;
        Ok(Self(at.to_path_buf()))
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn rbind_includes_submounts_bind_does_not() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::new("mnt-rbind")?;
    let src = b.host_dir("src")?;
    fs::write(src.join("top"), "top\n")?;
    let sub = HostTmpfs::mount(&src.join("sub"))?;
    fs::write(sub.0.join("marker"), "submount\n")?;
    let src_s = src.to_string_lossy().into_owned();
    b.configure(|c| {
        add_mount(c, "/mnt/r", "bind", &src_s, &["rbind"]);
        add_mount(c, "/mnt/b", "bind", &src_s, &["bind"]);
        sh(
            c,
            "echo r_top=$(cat /mnt/r/top); echo r_marker=$(cat /mnt/r/sub/marker); \
             echo b_top=$(cat /mnt/b/top); echo b_sub=$(ls -A /mnt/b/sub | wc -l)",
        );
    })?;
    let v = kv(&rt.output(&b)?);
    drop(sub);
    ensure!(
        get(&v, "r_top")? == "top" && get(&v, "b_top")? == "top",
        "{v:?}"
    );
    ensure!(
        get(&v, "r_marker")? == "submount",
        "rbind did not carry the submount: {v:?}"
    );
    ensure!(
        get(&v, "b_sub")? == "0",
        "bind (non-recursive) carried the submount: {v:?}"
    );
    rt.assert_no_leftovers(&b)
}

#[test]
fn tmpfs_with_size_and_mode() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("mnt-tmpfs", |c| {
        add_mount(
            c,
            "/mnt/t",
            "tmpfs",
            "tmpfs",
            &["size=1m", "mode=700", "nosuid", "nodev"],
        );
        sh(c, "echo mode=$(stat -c %a /mnt/t); echo x > /mnt/t/f && echo write=ok; cat /proc/self/mountinfo");
    })?;
    let out = rt.output(&b)?;
    let v = kv(&out);
    ensure!(
        get(&v, "mode")? == "700" && get(&v, "write")? == "ok",
        "{out}"
    );
    check(
        mount_at(&mounts_of(&out), "/mnt/t")?,
        "tmpfs",
        &["nosuid", "nodev", "rw"],
        &["size=1024k", "mode=700"],
    )?;
    rt.assert_no_leftovers(&b)
}

#[test]
fn readonly_root() -> Result<()> {
    let rt = Runtime::new()?;
    let ro = Bundle::with_config("mnt-roroot", |c| {
        c["root"]["readonly"] = json!(true);
        sh(
            c,
            "if touch /probe; then echo touch=ok; else echo touch=denied; fi",
        );
    })?;
    let out = rt.run(&ro, b"", std::time::Duration::from_secs(30))?.ok()?;
    ensure!(
        get(&kv(&out.stdout), "touch")? == "denied",
        "touch / worked on a readonly root: {out}"
    );
    ensure!(out.stderr.contains("Read-only file system"), "{out}");
    ensure!(!ro.rootfs().join("probe").exists());
    rt.assert_no_leftovers(&ro)?;

    let rw = Bundle::with_config("mnt-rwroot", |c| {
        c["root"]["readonly"] = json!(false);
        sh(c, "touch /probe && echo touch=ok");
    })?;
    ensure!(get(&kv(&rt.output(&rw)?), "touch")? == "ok");
    ensure!(
        rw.rootfs().join("probe").exists(),
        "file created in a rw root is not in the bundle rootfs"
    );
    rt.assert_no_leftovers(&rw)
}

/// runc's default maskedPaths (`runc spec`).
const DEFAULT_MASKED: [&str; 10] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

#[test]
fn masked_paths() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::new("mnt-masked")?;
    fs::write(b.rootfs().join("etc/secret-file"), "top-secret\n")?;
    fs::create_dir(b.rootfs().join("secret-dir"))?;
    fs::write(b.rootfs().join("secret-dir/inner"), "x\n")?;
    let mut masked: Vec<&str> = DEFAULT_MASKED.to_vec();
    masked.extend([
        "/etc/secret-file",
        "/secret-dir",
        "/runrs-it-does-not-exist",
    ]);
    let mut script = String::new();
    for p in &masked {
        script.push_str(&format!(
            "if [ -d {p} ]; then echo '{p}'=dir:$(ls -A {p} | wc -l); \
             elif [ -e {p} ]; then echo '{p}'=file:$(cat {p} 2>/dev/null | wc -c); \
             else echo '{p}'=absent; fi; "
        ));
    }
    script.push_str("if touch /secret-dir/new; then echo dir_write=ok; else echo dir_write=denied; fi; cat /proc/self/mountinfo");
    b.configure(|c| {
        c["linux"]["maskedPaths"] = json!(masked);
        sh(c, &script);
    })?;
    let out = rt.output(&b)?;
    let v = kv(&out);
    for p in &masked {
        let r = get(&v, p)?;
        ensure!(
            r == "absent" || r == "dir:0" || r == "file:0",
            "masked path {p} is readable: {r} ({out})"
        );
    }
    ensure!(get(&v, "/etc/secret-file")? == "file:0", "{out}");
    ensure!(get(&v, "/secret-dir")? == "dir:0", "{out}");
    ensure!(get(&v, "/runrs-it-does-not-exist")? == "absent", "{out}");
    ensure!(
        get(&v, "dir_write")? == "denied",
        "masked dir is writable: {out}"
    );
    let mounts = mounts_of(&out);
    let dir = mount_at(&mounts, "/secret-dir")?;
    ensure!(
        dir.fstype == "tmpfs" && dir.is_ro(),
        "masked dir is not a ro tmpfs: {dir:?}"
    );
    mount_at(&mounts, "/etc/secret-file")?;
    rt.assert_no_leftovers(&b)
}

/// runc's default readonlyPaths (`runc spec`).
const DEFAULT_READONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

#[test]
fn readonly_paths() -> Result<()> {
    let rt = Runtime::new()?;
    let mut ro: Vec<&str> = DEFAULT_READONLY.to_vec();
    ro.extend(["/etc", "/runrs-it-does-not-exist"]);
    let b = Bundle::with_config("mnt-ropaths", |c| {
        c["root"]["readonly"] = json!(false);
        c["linux"]["readonlyPaths"] = json!(ro);
        // Never write to /proc/sysrq-trigger: if it were writable that would act on the host.
        sh(
            c,
            "if echo runrs-it > /proc/sys/kernel/hostname; then echo sys=ok; else echo sys=denied; fi; \
             if touch /etc/new; then echo etc=ok; else echo etc=denied; fi; \
             echo passwd=$(head -c 4 /etc/passwd); touch /rootfile && echo root=ok; cat /proc/self/mountinfo",
        );
    })?;
    let out = rt.run(&b, b"", std::time::Duration::from_secs(30))?.ok()?;
    let v = kv(&out.stdout);
    ensure!(get(&v, "sys")? == "denied", "/proc/sys is writable: {out}");
    ensure!(
        get(&v, "etc")? == "denied",
        "/etc (readonlyPaths) is writable: {out}"
    );
    ensure!(get(&v, "passwd")? == "root", "/etc not readable: {out}");
    ensure!(get(&v, "root")? == "ok", "rw root not writable: {out}");
    let mounts = mounts_of(&out.stdout);
    for p in DEFAULT_READONLY.iter().chain(&["/etc"]) {
        match mounts.iter().rev().find(|m| m.mount_point == *p) {
            Some(m) => ensure!(m.is_ro(), "{p} is not mounted ro: {m:?}"),
            None if *p == "/etc" || *p == "/proc/sys" => bail!("{p} is not a (ro) mount"),
            // Absent on this kernel.
            None => {}
        }
    }
    rt.assert_no_leftovers(&b)
}

#[test]
fn hostname_is_set() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("mnt-hostname", |c| {
        c["hostname"] = json!("runrs-it-host");
        sh(
            c,
            "echo hostname=$(hostname); echo proc=$(cat /proc/sys/kernel/hostname)",
        );
    })?;
    let v = kv(&rt.output(&b)?);
    ensure!(
        get(&v, "hostname")? == "runrs-it-host" && get(&v, "proc")? == "runrs-it-host",
        "{v:?}"
    );
    rt.assert_no_leftovers(&b)
}

#[test]
fn default_devices_and_symlinks() -> Result<()> {
    let rt = Runtime::new()?;
    let devices = ["null", "zero", "full", "random", "urandom", "tty"];
    let links = ["fd", "stdin", "stdout", "stderr", "ptmx"];
    let mut script = String::new();
    for d in devices {
        script.push_str(&format!("echo {d}=$(stat -c '%F %t:%T %a' /dev/{d}); "));
    }
    for l in links {
        script.push_str(&format!("echo {l}=$(readlink /dev/{l}); "));
    }
    script.push_str(
        "echo zeros=$(head -c 4 /dev/zero | od -An -tx1); echo gone > /dev/null && echo devnull=ok",
    );
    let b = Bundle::with_config("mnt-devices", |c| {
        c["mounts"] = default_mounts();
        sh(c, &script);
    })?;
    let v = kv(&rt.output(&b)?);
    let want = [
        ("null", "1:3"),
        ("zero", "1:5"),
        ("full", "1:7"),
        ("random", "1:8"),
        ("urandom", "1:9"),
        ("tty", "5:0"),
    ];
    for (d, majmin) in want {
        ensure!(
            get(&v, d)? == format!("character special file {majmin} 666"),
            "/dev/{d}: {v:?}"
        );
    }
    for (l, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        ensure!(
            get(&v, l)? == target,
            "/dev/{l} -> {:?}, want {target}",
            v.get(l)
        );
    }
    ensure!(
        get(&v, "zeros")? == "00 00 00 00" && get(&v, "devnull")? == "ok",
        "{v:?}"
    );
    rt.assert_no_leftovers(&b)
}
