//! The busybox root filesystem every test bundle copies, built once and cached.
//!
//! Built by `make-busybox-image.sh` (vendored in integration/scripts/, else found in
//! `$RUNRS_E2E_DIR`, default `<workspace>/../shared/e2e`) into
//! `/var/tmp/runrs-it-rootfs/rootfs` (override the directory with `RUNRS_TEST_CACHE`).
//! A stamp of the script and the busybox binary decides when to rebuild. Concurrent test
//! threads share one build (`OnceLock`), concurrent test processes serialise on a file lock.
//! It is the one busybox build of the Rust suites: suites that need a rootfs of their own
//! to use in place get a copy of it ([`busybox_rootfs_in`]).
//!
//! The same directory holds `cgroup.lock`, which decides who may remove the shared
//! `/runrs-it` parent cgroups (see [`CgroupLease`]).

use std::collections::hash_map::DefaultHasher;
use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};

use crate::cmd::{run_capture, CMD_TIMEOUT};
use crate::{proc, workspace_dir, CGROUP_PARENT};

const BUSYBOX: &str = "/bin/busybox";

/// The cache directory (`RUNRS_TEST_CACHE`, default /var/tmp/runrs-it-rootfs).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("RUNRS_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/runrs-it-rootfs"))
}

/// The e2e helper directory (`RUNRS_E2E_DIR`, default `<workspace>/../shared/e2e`).
pub fn e2e_dir() -> PathBuf {
    std::env::var_os("RUNRS_E2E_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("../shared/e2e"))
}

/// The image script: the vendored copy first, then the e2e directory's.
pub fn image_script() -> Result<PathBuf> {
    let vendored = workspace_dir().join("integration/scripts/make-busybox-image.sh");
    let shared = e2e_dir().join("make-busybox-image.sh");
    [vendored.clone(), shared.clone()]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "make-busybox-image.sh not found at {} nor {}",
                vendored.display(),
                shared.display()
            )
        })
}

fn lock_file(name: &str) -> Result<File> {
    lock_file_in(&cache_dir(), name)
}

fn lock_file_in(dir: &Path, name: &str) -> Result<File> {
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let path = dir.join(name);
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))
}

fn stamp(script: &Path) -> Result<String> {
    let mut h = DefaultHasher::new();
    fs::read(script)
        .with_context(|| format!("read {}", script.display()))?
        .hash(&mut h);
    fs::read(BUSYBOX)
        .with_context(|| {
            format!(
                "read {BUSYBOX} (install busybox-static: integration/scripts/install-test-deps.sh)"
            )
        })?
        .hash(&mut h);
    Ok(format!("{:016x}\n", h.finish()))
}

fn build(cache: &Path) -> Result<PathBuf> {
    let script = image_script()?;
    let _lock = Flock::lock(lock_file_in(cache, "build.lock")?, FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow!("lock {}/build.lock: {e}", cache.display()))?;
    let rootfs = cache.join("rootfs");
    let stamp_path = cache.join("stamp");
    let want = stamp(&script)?;
    if rootfs.join("bin/busybox").is_file()
        && fs::read_to_string(&stamp_path).ok().as_deref() == Some(&want)
    {
        return Ok(rootfs);
    }
    let tmp = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(cache)?;
    let new_rootfs = tmp.path().join("rootfs");
    let mut cmd = Command::new("bash");
    cmd.arg(&script)
        .arg(tmp.path().join("image.tar"))
        .env("ROOTFS_DIR", &new_rootfs);
    run_capture(cmd, None, CMD_TIMEOUT)?
        .ok()
        .context("build the busybox rootfs (needs busybox-static and jq: integration/scripts/install-test-deps.sh)")?;
    install(&new_rootfs, &rootfs, &stamp_path, &want)?;
    Ok(rootfs)
}

/// The cached busybox rootfs, built on first use. Never modify it: copy it
/// ([`crate::Bundle`] does).
pub fn busybox_rootfs() -> Result<PathBuf> {
    static ROOTFS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    ROOTFS
        .get_or_init(|| build(&cache_dir()).map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

/// A working copy of the one cached rootfs ([`busybox_rootfs`]) in `<dir>/rootfs`, made
/// (under a lock) when missing or older than the cache: for suites that use a rootfs in
/// place rather than copying it per container, so that what their containers leave in
/// it (mount points) stays out of the cache [`busybox_rootfs`] hands to
/// [`crate::Bundle`]. An error (never a skip) when it cannot be made: a suite without its
/// fixture has not run.
pub fn busybox_rootfs_in(dir: &Path) -> Result<PathBuf> {
    let cached = busybox_rootfs()?;
    let want = fs::read_to_string(cache_dir().join("stamp"))
        .with_context(|| format!("read {}/stamp", cache_dir().display()))?;
    let _lock = Flock::lock(lock_file_in(dir, "build.lock")?, FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow!("lock {}/build.lock: {e}", dir.display()))?;
    let rootfs = dir.join("rootfs");
    let stamp_path = dir.join("stamp");
    if rootfs.join("bin/busybox").is_file()
        && fs::read_to_string(&stamp_path).ok().as_deref() == Some(&want)
    {
        return Ok(rootfs);
    }
    let tmp = tempfile::Builder::new().prefix("copy-").tempdir_in(dir)?;
    let new_rootfs = tmp.path().join("rootfs");
    let mut cmd = Command::new("cp");
    cmd.arg("-a").arg(&cached).arg(&new_rootfs);
    run_capture(cmd, None, CMD_TIMEOUT)?
        .ok()
        .with_context(|| format!("copy {} to {}", cached.display(), new_rootfs.display()))?;
    install(&new_rootfs, &rootfs, &stamp_path, &want)?;
    Ok(rootfs)
}

/// Replaces `rootfs` with `new_rootfs` and records `stamp`.
fn install(new_rootfs: &Path, rootfs: &Path, stamp_path: &Path, stamp: &str) -> Result<()> {
    if rootfs.exists() {
        fs::remove_dir_all(rootfs).with_context(|| format!("remove stale {}", rootfs.display()))?;
    }
    fs::rename(new_rootfs, rootfs).with_context(|| format!("install {}", rootfs.display()))?;
    fs::write(stamp_path, stamp)?;
    Ok(())
}

/// A shared claim on the `/runrs-it` parent cgroups. Every [`crate::Bundle`] holds one
/// (a shared `flock` on `cgroup.lock`); when the last one in any process goes away, the
/// parent directories are removed from every hierarchy. A test that is still setting up
/// keeps its shared lock, so the parent cannot vanish under a runtime creating a child.
pub struct CgroupLease {
    lock: Option<Flock<File>>,
}

impl CgroupLease {
    /// Takes a shared claim (blocks while someone is removing the parents).
    pub fn acquire() -> Result<Self> {
        let lock = Flock::lock(lock_file("cgroup.lock")?, FlockArg::LockShared)
            .map_err(|(_, e)| anyhow!("lock {}/cgroup.lock: {e}", cache_dir().display()))?;
        Ok(Self { lock: Some(lock) })
    }
}

/// Removes the (empty) `/runrs-it` parent cgroup from every hierarchy; errors are ignored
/// (busy: someone else's container is still there).
pub fn remove_cgroup_parents() {
    if let Ok(mounts) = proc::cgroup_mounts() {
        for m in mounts {
            if let Some(dir) = proc::cgroup_dir(&m, CGROUP_PARENT) {
                let _ = fs::remove_dir(dir);
            }
        }
    }
}

impl Drop for CgroupLease {
    fn drop(&mut self) {
        let Some(lock) = self.lock.take() else { return };
        let Ok(file) = lock.unlock() else { return };
        if let Ok(exclusive) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            remove_cgroup_parents();
            drop(exclusive);
        }
    }
}

/// Checks the prerequisites every test needs; an error explains what is missing.
pub fn check_prerequisites() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the integration tests must run as root");
    }
    Ok(())
}
