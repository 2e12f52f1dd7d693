//! Test harness for the runrs integration tests.
//!
//! The CLI suite (tests/cli_*.rs) drives a runc-compatible runtime binary and checks what
//! it does from the outside: the container's own view (its stdout, /proc inside it), the
//! kernel's view (cgroup files, /proc on the host) and the runtime's JSON. The suite is
//! validated against runc: a test that fails on runc is wrong.
//!
//! - Runtime: `RUNRS_TEST_RUNTIME=/path/to/cli` (default `<target>/debug/runrs`).
//! - Rootfs: busybox, built once into `/var/tmp/runrs-it-rootfs` ([`rootfs`]).
//! - Containers: ids `runrs-it-<name>-<pid>-<n>`, cgroups `/runrs-it/<id>`, state roots
//!   `/run/runrs-it-XXXXXX`; everything is removed when the test's values drop.
//!
//! Run: `RUNRS_TEST_RUNTIME=/usr/sbin/runc cargo test -p integration` (as root).

pub mod bundle;
pub mod cmd;
pub mod console;
pub mod containerd;
pub mod cri;
pub mod leaks;
pub mod proc;
pub mod rootfs;
pub mod runtime;
pub mod time;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, Result};

pub use bundle::{config, Bundle};
pub use cmd::CmdOutput;
pub use console::{ConsoleSocket, Pty};
pub use runtime::{Runtime, State};

/// The parent cgroup of every test container.
pub const CGROUP_PARENT: &str = "/runrs-it";

/// The workspace root (the directory above integration/).
pub fn workspace_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Build the static sd_notify client (runtime-core/tests/cli/sdnotify.c: sends its
/// arguments to $NOTIFY_SOCKET) into `dir`, for containers that report readiness.
pub fn sdnotify_helper(dir: &Path) -> Result<PathBuf> {
    let src = workspace_dir().join("runtime-core/tests/cli/sdnotify.c");
    let out = dir.join("sdnotify");
    let st = std::process::Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .map_err(|e| anyhow!("run gcc for the sdnotify helper: {e}"))?;
    anyhow::ensure!(st.success(), "gcc -static {} failed", src.display());
    Ok(out)
}

/// The runtime binary under test: `RUNRS_TEST_RUNTIME`, else `<target>/debug/runrs`;
/// an error says how to get one.
pub fn runtime_path() -> Result<PathBuf> {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PATH.get_or_init(|| runtime::resolve_runtime().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

/// The name of the runtime under test: the first word of `<bin> --version` ("runc",
/// "runrs"), else the binary's file name. For the rare check that only applies to one
/// runtime; prefer feature detection ([`Runtime::supports_namespace`]).
pub fn runtime_name() -> String {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let Ok(bin) = runtime_path() else {
            return String::from("unknown");
        };
        let from_version = std::process::Command::new(&bin)
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .next()
                    .map(str::to_owned)
            });
        from_version.unwrap_or_else(|| {
            bin.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
    })
    .clone()
}

/// Prints why (part of) the current test is skipped, naming the test, and records it
/// in the skip log ([`record_skip`]).
pub fn skip(reason: &str) {
    let t = std::thread::current();
    let what = format!("{} on {}", t.name().unwrap_or("?"), runtime_name());
    println!("SKIPPED {what}: {reason}");
    record_skip(&what, reason);
}

/// Appends `SKIPPED <what>: <reason>` to the file named by `RUNRS_SKIP_LOG`, if set.
///
/// cargo counts a test that returned early as passed and hides its output; the test
/// runner (integration/run-tests.sh) sets `RUNRS_SKIP_LOG` per stage and prints how many
/// tests each stage skipped, so a stage that silently ran nothing is visible. Every
/// suite's skip helper calls this.
pub fn record_skip(what: &str, reason: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os("RUNRS_SKIP_LOG") else {
        return;
    };
    let line = format!("SKIPPED {what}: {}\n", reason.replace('\n', " "));
    // One write(2) of a short line to an O_APPEND file: lines of concurrent tests do not mix.
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("cannot record the skip in {}: {e}", path.to_string_lossy());
    }
}
