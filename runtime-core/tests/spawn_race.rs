//! std's `Command::spawn` reaps the child itself when its exec fails, and panics if
//! somebody else reaped it first ("wait() should either return Ok or panic"). The
//! shim's reaper collects every child with waitpid(-1); it holds
//! `runtime_core::hold_spawns()` while it does, and every spawn goes through
//! `runtime_core::spawn_command`, so a hook, criu or logging binary that cannot be
//! exec'd is an error, not an aborted shim. Its own test binary: the reaper below takes
//! every child of the process.
#![allow(
    clippy::disallowed_methods,
    reason = "writes its fixture file in its own temporary directory"
)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A reaper as busy as it can be, beside spawns whose exec fails. `guarded`: the
/// reaper holds `hold_spawns` and the spawns go through `spawn_command`.
fn failed_execs_beside_a_reaper(guarded: bool, rounds: usize) -> std::thread::Result<()> {
    let dir = tempfile::tempdir().expect("tempdir");
    // Exists, but cannot be exec'd (EACCES): the exec fails after the fork.
    let path = dir.path().join("not-executable");
    std::fs::write(&path, "#!/bin/sh\n").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let stop = Arc::new(AtomicBool::new(false));
    let reaper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let hold = guarded.then(runtime_core::hold_spawns);
                while runtime_core::host::wait_any_nohang().is_some() {}
                drop(hold);
                std::thread::yield_now();
            }
        })
    };
    let (uid, _) = runtime_core::host::real_ids();
    let result = std::panic::catch_unwind(|| {
        for _ in 0..rounds {
            let mut cmd = Command::new(&path);
            // Our own uid: std then forks itself (no posix_spawn, whose failures glibc
            // reaps quietly), as for every runtime-core spawn with a pre_exec step.
            cmd.uid(uid);
            let res = if guarded {
                runtime_core::spawn_command(&mut cmd)
            } else {
                cmd.spawn()
            };
            let e = res.expect_err("a file without x bits was exec'd");
            assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
        }
    });
    stop.store(true, Ordering::Relaxed);
    reaper.join().expect("reaper");
    result
}

/// One test: a second one would run in parallel, and its reaper would take this one's
/// children.
#[test]
fn a_failed_exec_is_an_error_beside_a_busy_reaper() {
    failed_execs_beside_a_reaper(true, 500).expect("a guarded spawn panicked");
    // The race is real: without the guard, std's own wait loses the child to the reaper.
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = failed_execs_beside_a_reaper(false, 5000);
    std::panic::set_hook(prev);
    assert!(
        r.is_err(),
        "5000 failed execs beside a busy reaper never lost a child"
    );
}
