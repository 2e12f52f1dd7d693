//! `binary://` stdio: containerd's pluggable logging binaries. The binary gets the read
//! ends of the container's stdout and stderr pipes as fds 3 and 4 and a readiness pipe
//! as fd 5, with CONTAINER_ID and CONTAINER_NAMESPACE in its environment; the shim waits
//! until it writes a byte there (or exits) before the container runs. Arguments come
//! from the URI's query (`binary:///bin/logger?--driver=x&-v` gives `--driver x -v`).
//! The container writes into the pipes directly; the shim copies nothing. When the
//! process is deleted the logger gets SIGTERM, and SIGKILL 12 s later, as with
//! containerd-shim-runc-v2.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::{Result, ShimError};
use crate::reaper::Reaper;

/// How long a logger gets to flush after SIGTERM.
const TERM_GRACE: Duration = Duration::from_secs(12);

/// A running logging binary.
pub struct Logger {
    pid: i32,
    /// Signals go through a pidfd: the logger may exit (and its pid be reused) first.
    pidfd: Option<OwnedFd>,
    reaper: Reaper,
}

/// Percent-decode a URI component; an invalid escape stays as it is, and bytes that are
/// not UTF-8 become U+FFFD.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// A query component: `+` is a space there (Go's `url.Query`, which containerd uses),
/// not in the path.
fn query_decode(s: &str) -> String {
    percent_decode(&s.replace('+', " "))
}

/// Split `binary:///path?k=v&k2` into the program and its arguments.
pub fn parse(uri: &str) -> Result<(String, Vec<String>)> {
    let rest = uri
        .strip_prefix("binary://")
        .ok_or_else(|| ShimError::InvalidArgument(format!("{uri}: not a binary:// URI")))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = percent_decode(path);
    if !path.starts_with('/') {
        return Err(ShimError::InvalidArgument(format!(
            "{uri}: the logging binary must be an absolute path"
        )));
    }
    let mut args = Vec::new();
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        args.push(query_decode(k));
        if !v.is_empty() {
            args.push(query_decode(v));
        }
    }
    Ok((path, args))
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    crate::sys::pipe().map_err(|e| ShimError::Internal(runtime_core::chain(&e)))
}

/// Start the logger of `uri`; returns the container's stdout and stderr write ends.
pub async fn start(
    uri: &str,
    id: &str,
    namespace: &str,
    reaper: &Reaper,
) -> Result<(OwnedFd, OwnedFd, Logger)> {
    let (path, args) = parse(uri)?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    let src = [out_r.as_raw_fd(), err_r.as_raw_fd(), ready_w.as_raw_fd()];
    let mut cmd = Command::new(&path);
    cmd.args(&args)
        .env_clear()
        .env("CONTAINER_ID", id)
        .env("CONTAINER_NAMESPACE", namespace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    crate::sys::pass_fds(&mut cmd, src.to_vec());
    let child = runtime_core::spawn_command(&mut cmd)
        .map_err(|e| ShimError::InvalidArgument(format!("start logging binary {path}: {e}")))?;
    let pid = child.id() as i32;
    drop((out_r, err_r, ready_w));
    let logger = Logger {
        pid,
        pidfd: runtime_core::host::pidfd_open(pid).ok(),
        reaper: reaper.clone(),
    };
    // Ready: one byte, or EOF when the logger exits without signalling.
    let mut b = [0u8; 1];
    let ready = tokio::task::spawn_blocking(move || crate::sys::read(ready_r.as_fd(), &mut b))
        .await
        .map_err(|e| ShimError::Internal(format!("wait for logging binary: {e}")))?;
    if let Err(e) = ready {
        return Err(ShimError::Internal(format!(
            "wait for logging binary {path}: read the readiness pipe: {e}"
        )));
    }
    Ok((out_w, err_w, logger))
}

impl Drop for Logger {
    fn drop(&mut self) {
        let Some(pidfd) = self.pidfd.take() else {
            return;
        };
        let pid = self.pid;
        let signal =
            move |sig: i32| runtime_core::signal_pidfd(std::os::fd::AsFd::as_fd(&pidfd), sig, pid);
        if signal(crate::sys::SIGTERM).is_err() {
            return; // already gone
        }
        let exited = self.reaper.subscribe(self.pid);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if tokio::time::timeout(TERM_GRACE, exited).await.is_err() {
                    let _ = signal(crate::sys::SIGKILL);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uri() {
        let (p, a) =
            parse("binary:///usr/bin/logger?--log-driver=awslogs&-v&--name=a%20b").expect("parse");
        assert_eq!(p, "/usr/bin/logger");
        assert_eq!(a, vec!["--log-driver", "awslogs", "-v", "--name", "a b"]);
        assert!(parse("binary://relative").is_err());
    }

    // Issue 15, found again by fuzz_log_uri: the hand-written decoder sliced the &str
    // at byte offsets, so an escape before a multi-byte character panicked (and the
    // shim aborts on panic).
    #[test]
    fn escape_before_a_multibyte_character_does_not_panic() {
        let (p, a) = parse("binary:///x?a=%a\u{e9}&%\u{e9}").expect("parse");
        assert_eq!(p, "/x");
        assert_eq!(a, vec!["a", "%a\u{e9}", "%\u{e9}"]);
        let (p, _) = parse("binary:///x%\u{e9}%").expect("parse");
        assert_eq!(p, "/x%\u{e9}%");
    }

    // The copies made while placing the pipes at 3, 4 and 5 were made with F_DUPFD (no
    // close-on-exec) and reached the logger too (from descriptor 10 on): a logger that
    // forks a daemon kept the readiness pipe open, so the shim's wait never saw EOF.
    #[tokio::test]
    async fn the_logger_gets_its_pipes_only_as_3_4_and_5() {
        let uri = "binary:///bin/sh?-c=printf%20x%20%3E%265%3B%20exec%20/bin/sleep%2030";
        let (_o, _e, logger) = start(uri, "c1", "default", &Reaper::default())
            .await
            .expect("start the logger");
        // The shell signals readiness with `printf x >&5`, which points its descriptor 1
        // at the pipe for a moment: look once it has become `sleep`.
        let comm = format!("/proc/{}/comm", logger.pid);
        for _ in 0..500 {
            if std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "sleep") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let dir = format!("/proc/{}/fd", logger.pid);
        let target = |n: &str| std::fs::read_link(format!("{dir}/{n}")).ok();
        let ours: Vec<_> = ["3", "4", "5"].iter().map(|n| target(n)).collect();
        assert!(ours.iter().all(Option::is_some), "{ours:?}");
        for e in std::fs::read_dir(&dir).expect("the logger's descriptors") {
            let n = e.expect("entry").file_name().to_string_lossy().into_owned();
            if !["3", "4", "5"].contains(&n.as_str()) {
                assert!(
                    !ours.contains(&target(&n)),
                    "descriptor {n} is a copy of a pipe"
                );
            }
        }
        drop(logger);
    }

    // Go's url.Parse (containerd) keeps `+` in the path and reads it as a space only
    // in the query.
    #[test]
    fn plus_is_a_space_only_in_the_query() {
        let (p, a) = parse("binary:///opt/c++log?a+b=c%2Bd").expect("parse");
        assert_eq!(p, "/opt/c++log");
        assert_eq!(a, vec!["a b", "c+d"]);
    }
}
