//! `start` either takes effect and reports success, or fails and leaves the container
//! as it was (issue 16). runrs wrote state.json after releasing init, so a full disk
//! made `start` fail while the container went on running. Validated against runc with
//! `RUNRS_TEST_RUNTIME=/usr/sbin/runc` (runc writes nothing at start and succeeds).
//! cli_state_dir.rs covers create, and start/delete on a root turned read-only.

use std::io::Write;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use integration::cmd::host;
use integration::config::{add_mount, sh};
use integration::{Bundle, Runtime};

/// Force-deletes the container and unmounts the tmpfs over the state root, also when
/// the test fails half-way (before the runtime's own cleanup looks at the root).
struct FullRoot<'a> {
    rt: &'a Runtime,
    id: String,
}

impl Drop for FullRoot<'_> {
    fn drop(&mut self) {
        let _ = self.rt.delete_force(&self.id);
        let _ = host("umount", &["-l", &self.rt.root().to_string_lossy()]);
    }
}

/// Fills the filesystem holding `dir` until a write fails.
fn fill(dir: &std::path::Path) -> Result<()> {
    let mut f = std::fs::File::create(dir.join("fill"))?;
    let chunk = vec![0u8; 64 << 10];
    while f.write_all(&chunk).is_ok() {}
    Ok(())
}

#[test]
fn start_on_a_full_state_root_runs_or_changes_nothing() -> Result<()> {
    let rt = Runtime::new()?;
    let root = rt.root().to_string_lossy().into_owned();
    host("mount", &["-t", "tmpfs", "-o", "size=1m", "tmpfs", &root])?.ok()?;
    let b = Bundle::new("start-full")?;
    let out_dir = b.host_dir("out")?;
    let src = out_dir.to_string_lossy().into_owned();
    b.configure(|c| {
        sh(c, "touch /out/started; sleep 60");
        add_mount(c, "/out", "bind", &src, &["rbind", "rw"]);
    })?;
    let _guard = FullRoot {
        rt: &rt,
        id: b.id().to_owned(),
    };
    rt.create(&b)?.ok()?;
    fill(rt.root())?;
    let marker = out_dir.join("started");
    let out = rt.start(b.id())?;
    if out.success() {
        let st = rt.wait_for_status(b.id(), "running", Duration::from_secs(5))?;
        ensure!(st.pid > 0, "running without a pid: {}", st.raw);
    } else {
        // Failed: the container is still created and its program never ran.
        std::thread::sleep(Duration::from_millis(300));
        let st = rt.state(b.id())?;
        ensure!(
            st.status == "created",
            "start failed ({out}) but the container is {}",
            st.status
        );
        ensure!(!marker.exists(), "start failed ({out}) but the program ran");
        std::fs::remove_file(rt.root().join("fill")).context("free the root")?;
        rt.start(b.id())?.ok()?;
    }
    rt.wait_for_status(b.id(), "running", Duration::from_secs(5))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !marker.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    ensure!(marker.exists(), "the started program did not run");
    rt.delete_force(b.id())?.ok()?;
    rt.assert_no_leftovers(&b)
}
