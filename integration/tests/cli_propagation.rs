//! Mount propagation between the host and a container (config-linux.md "Rootfs Mount
//! Propagation"; mount_namespaces(7)): a rootfs that is itself a shared mount point (as
//! containerd's overlay rootfs is on a host whose `/` is shared) with
//! `rootfsPropagation: rshared` and a `rshared` bind (Kubernetes' Bidirectional), a
//! `rslave` bind (HostToContainer) and a `rprivate` bind (None).
//!
//! Regression: runrs failed `pivot_root .: Invalid argument` when the rootfs mount was
//! shared; runc makes the mount holding the rootfs private before binding it onto itself.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use integration::config::{add_mount, sh};
use integration::{Bundle, Runtime};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde_json::json;

/// A host mount (bind or tmpfs) removed (lazily) when dropped.
struct HostMount(PathBuf);

impl HostMount {
    /// Binds `dir` onto itself and makes it a shared mount (its own peer group).
    fn shared_bind(dir: &Path) -> Result<Self> {
        mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .with_context(|| format!("bind {} onto itself", dir.display()))?;
        let m = HostMount(dir.to_path_buf());
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .with_context(|| format!("make {} shared", dir.display()))?;
        Ok(m)
    }

    /// A 1 MiB tmpfs on `dir` holding `marker` with `text`.
    fn tmpfs_with_marker(dir: &Path, text: &str) -> Result<Self> {
        mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=1m"),
        )
        .with_context(|| format!("mount tmpfs on {}", dir.display()))?;
        let m = HostMount(dir.to_path_buf());
        fs::write(dir.join("marker"), text)?;
        Ok(m)
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = umount2(&self.0, MntFlags::MNT_DETACH);
    }
}

/// Unmounts every mount stacked on `dir` (propagated from a container), lazily.
fn umount_all(dir: &Path) {
    while umount2(dir, MntFlags::MNT_DETACH).is_ok() {}
}

/// One bind propagation: whether a mount made in the container shows on the host, and
/// whether a host mount made after `create` shows in the container.
fn propagation_case(name: &str, bind_prop: &str, to_host: bool, to_container: bool) -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::new(name)?;
    let shared = b.host_dir("shared")?;
    for d in ["in", "fromhost"] {
        fs::create_dir_all(shared.join(d))?;
    }
    let result = (|| -> Result<()> {
        let _rootfs = HostMount::shared_bind(&b.rootfs())?;
        let _shared = HostMount::shared_bind(&shared)?;
        let src = shared.to_string_lossy().into_owned();
        b.configure(|c| {
            c["linux"]["rootfsPropagation"] = json!("rshared");
            for set in ["bounding", "effective", "permitted"] {
                if let Some(a) = c["process"]["capabilities"][set].as_array_mut() {
                    a.push(json!("CAP_SYS_ADMIN"));
                }
            }
            add_mount(c, "/mnt/p", "bind", &src, &["rbind", bind_prop]);
            sh(
                c,
                "mount -t tmpfs -o size=1m tmpfs /mnt/p/in && echo from-container > /mnt/p/in/marker \
                 && echo mounted=yes; echo seen=$(cat /mnt/p/fromhost/marker 2>/dev/null || echo none)",
            );
        })?;
        let created = rt.detached("create", &b, &[])?;
        ensure!(created.success(), "create failed: {created}");
        let host_side = HostMount::tmpfs_with_marker(&shared.join("fromhost"), "from-host\n")?;
        ensure!(rt.start(b.id())?.success(), "start failed");
        rt.wait_for_status(b.id(), "stopped", Duration::from_secs(20))?;
        let out = b.stdout()?;
        ensure!(
            out.contains("mounted=yes"),
            "mount inside failed: {out} {}",
            b.stderr()?
        );
        let seen_inside = out.contains("seen=from-host");
        let seen_on_host = fs::read_to_string(shared.join("in/marker")).ok();
        drop(host_side);
        umount_all(&shared.join("in"));
        umount_all(&shared.join("fromhost"));
        ensure!(
            seen_inside == to_container,
            "{bind_prop}: host mount seen in the container = {seen_inside}, want {to_container}: {out}"
        );
        ensure!(
            seen_on_host.is_some() == to_host,
            "{bind_prop}: container mount seen on the host = {:?}, want {to_host}",
            seen_on_host
        );
        if let Some(text) = seen_on_host {
            ensure!(text == "from-container\n", "host read {text:?}");
        }
        ensure!(rt.delete(b.id())?.success(), "delete failed");
        Ok(())
    })();
    umount_all(&shared.join("in"));
    umount_all(&shared.join("fromhost"));
    result?;
    rt.assert_no_leftovers(&b)
}

#[test]
fn bidirectional_rshared_rootfs_and_bind() -> Result<()> {
    propagation_case("prop-bidi", "rshared", true, true)
}

#[test]
fn host_to_container_rslave_bind() -> Result<()> {
    propagation_case("prop-h2c", "rslave", false, true)
}

#[test]
fn private_rprivate_bind() -> Result<()> {
    propagation_case("prop-priv", "rprivate", false, false)
}
