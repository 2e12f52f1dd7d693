//! runc parity of the container's filesystem setup (issue 16): a read-only /dev tmpfs
//! and a config without namespaces. Validated against runc with
//! `RUNRS_TEST_RUNTIME=/usr/sbin/runc`.

use anyhow::{ensure, Result};
use integration::config::sh;
use integration::{Bundle, Runtime};

/// Issue 16: `/dev` as a read-only tmpfs is populated first (devices, symlinks, pts,
/// shm), then made read-only, as runc does; the mounts below it stay writable. runrs
/// mounted it read-only first and failed (`mkdir pts: Read-only file system`).
#[test]
fn a_read_only_dev_tmpfs_is_populated_first() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("par-rodev", |c| {
        sh(
            c,
            "test -c /dev/null && test -c /dev/zero && test -d /dev/pts && test -L /dev/stdout \
             && echo populated; echo x >/dev/null && echo null=ok; \
             if touch /dev/x 2>/dev/null; then echo dev=rw; else echo dev=ro; fi; \
             touch /dev/shm/x && echo shm=rw",
        );
        for m in c["mounts"].as_array_mut().into_iter().flatten() {
            if m["destination"] == "/dev" {
                if let Some(o) = m["options"].as_array_mut() {
                    o.push("ro".into());
                }
            }
        }
    })?;
    let out = rt.output(&b)?;
    for want in ["populated", "null=ok", "dev=ro", "shm=rw"] {
        ensure!(out.lines().any(|l| l == want), "no {want:?} in: {out}");
    }
    rt.assert_no_leftovers(&b)
}
