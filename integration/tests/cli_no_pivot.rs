//! `run --no-pivot` (MS_MOVE + chroot instead of pivot_root) must not let the container
//! mount a bare /proc (issue 16): the host's full proc mount stayed in the container's
//! mount namespace, so a nested `unshare -mrpf` could mount proc without the masked
//! paths (runc's "runc run --no-pivot must not expose bare /proc"). Validated against
//! runc with `RUNRS_TEST_RUNTIME=/usr/sbin/runc`.

use anyhow::{ensure, Result};
use integration::cmd::{run_capture, CMD_TIMEOUT};
use integration::config::sh;
use integration::{Bundle, Runtime};

#[test]
fn no_pivot_does_not_expose_a_bare_proc() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("nopivot-proc", |c| {
        sh(
            c,
            "test -r /proc/self/status && echo own-proc=ok; \
             unshare -mrpf true && echo nested=ok; \
             unshare -mrpf sh -c 'mount -t proc none /proc && echo bare-proc=mounted'; true",
        );
        // Mapping root in a new user namespace needs CAP_SETFCAP (Linux 5.12).
        for set in ["bounding", "effective", "permitted"] {
            if let Some(a) = c["process"]["capabilities"][set].as_array_mut() {
                a.push("CAP_SETFCAP".into());
            }
        }
    })?;
    let mut cmd = rt.command(["run", "--no-pivot", "--bundle"]);
    cmd.arg(b.path()).arg(b.id());
    let out = run_capture(cmd, None, CMD_TIMEOUT)?.ok()?;
    ensure!(out.stdout.contains("own-proc=ok"), "output: {out}");
    if !out.stdout.contains("nested=ok") {
        integration::skip(&format!(
            "this host refuses a nested user namespace: {}",
            out.stderr.trim()
        ));
        return rt.assert_no_leftovers(&b);
    }
    ensure!(
        !out.stdout.contains("bare-proc=mounted"),
        "a nested namespace mounted a bare /proc: {out}"
    );
    rt.assert_no_leftovers(&b)
}
