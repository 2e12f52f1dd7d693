//! The last steps before the container's program runs: find it on the container's
//! PATH, build its environment, reset signal state inherited from the runtime, mark
//! every descriptor past the preserved ones close-on-exec, and execve(2).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::sys::SysError;

/// PATH used when the process environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why the program cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Not found on PATH.
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
    /// Found but not runnable. Worded as runc (Go's exec.LookPath) words it:
    /// `exec: "/x": stat /x: no such file or directory`, `exec: "/etc/passwd": permission
    /// denied`. Docker matches on that text to exit 127 or 126 instead of 125.
    #[error("exec: {path:?}: {reason}")]
    NotRunnable {
        /// The resolved path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// execve itself failed. Worded as runc's (Go's os.PathError):
    /// `exec /bin/true: argument list too long`.
    #[error("exec {}: {}", .0.display(), go_errno(&.1.source))]
    Exec(PathBuf, SysError),
}

/// The value of `key` in a KEY=value list.
pub fn env_get<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// An OS error as Go prints it: strerror in lower case, without Rust's "(os error N)".
fn go_errno(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut c = text.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn check_runnable(p: &Path) -> Result<(), String> {
    let md = std::fs::metadata(p).map_err(|e| format!("stat {}: {}", p.display(), go_errno(&e)))?;
    // Like Go's findExecutable: a directory or a file without an x bit is EACCES.
    if md.is_dir() {
        return Err("permission denied".into());
    }
    let c = CString::new(p.as_os_str().as_bytes()).map_err(|_| "bad path".to_string())?;
    crate::sys::access_executable(&c).map_err(|e| go_errno(&e))
}

/// Resolve `prog` like execvp, with the container's PATH (in the current root).
pub fn lookup(prog: &str, env: &[String]) -> Result<PathBuf, ExecError> {
    if prog.contains('/') {
        let p = PathBuf::from(prog);
        return check_runnable(&p)
            .map(|()| p.clone())
            .map_err(|reason| ExecError::NotRunnable { path: p, reason });
    }
    let path = env_get(env, "PATH").unwrap_or(DEFAULT_PATH);
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(prog);
        if check_runnable(&cand).is_ok() {
            return Ok(cand);
        }
    }
    Err(ExecError::NotFound(prog.to_string()))
}

/// Restore default signal dispositions and an empty mask (a Rust runtime ignores
/// SIGPIPE, and callers may block signals; neither must leak into the container).
pub fn reset_signals() {
    crate::sys::reset_signals();
}

/// Mark every descriptor from `first` upwards close-on-exec.
pub fn cloexec_from(first: u32) {
    if crate::sys::close_range_cloexec(first).is_err() {
        // Older kernels: walk /proc/self/fd.
        if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
            for e in rd.flatten() {
                if let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                    if fd >= first as i32 {
                        crate::sys::set_cloexec_raw(fd);
                    }
                }
            }
        }
    }
}

/// Whether the working directory lies under the process' root: the kernel's getcwd
/// prefixes "(unreachable)" to a directory outside it (e.g. one entered through a
/// leaked descriptor, CVE-2024-21626).
pub fn cwd_is_reachable() -> bool {
    crate::sys::cwd_is_reachable()
}

/// execve(2); returns only on failure.
pub fn exec(path: &Path, args: &[String], env: &[String]) -> ExecError {
    let to_c = |s: &String| CString::new(s.as_str());
    let cpath = match CString::new(path.as_os_str().as_bytes()) {
        Ok(c) => c,
        Err(_) => {
            return ExecError::NotRunnable {
                path: path.into(),
                reason: "path contains a NUL byte".into(),
            }
        }
    };
    let (Ok(argv), Ok(envp)) = (
        args.iter().map(to_c).collect::<Result<Vec<CString>, _>>(),
        env.iter().map(to_c).collect::<Result<Vec<CString>, _>>(),
    ) else {
        return ExecError::NotRunnable {
            path: path.into(),
            reason: "an argument or environment variable contains a NUL byte".into(),
        };
    };
    let e = crate::sys::execve(&cpath, &argv, &envp, &path.display().to_string());
    ExecError::Exec(path.into(), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lookup_takes_last() {
        let env = vec!["PATH=/a".to_string(), "X=1".into(), "PATH=/b".into()];
        assert_eq!(env_get(&env, "PATH"), Some("/b"));
        assert_eq!(env_get(&env, "PAT"), None);
    }

    /// Issue 14: Docker exits 127/126 only when it recognises runc's wording.
    #[test]
    fn not_runnable_is_worded_like_runc() {
        let e = lookup("/runrs-no-such-prog", &[]).expect_err("missing");
        assert_eq!(
            e.to_string(),
            r#"exec: "/runrs-no-such-prog": stat /runrs-no-such-prog: no such file or directory"#
        );
        let e = lookup("/etc/passwd", &[]).expect_err("not executable");
        assert_eq!(e.to_string(), r#"exec: "/etc/passwd": permission denied"#);
        let e = lookup("/", &[]).expect_err("a directory");
        assert_eq!(e.to_string(), r#"exec: "/": permission denied"#);
        let e = lookup("no-such-prog-xyz", &["PATH=/bin".into()]).expect_err("not on PATH");
        assert_eq!(
            e.to_string(),
            r#"exec: "no-such-prog-xyz": executable file not found in $PATH"#
        );
    }

    #[test]
    fn finds_sh() {
        let env = vec!["PATH=/nonexistent:/bin".to_string()];
        assert_eq!(lookup("sh", &env).expect("sh"), PathBuf::from("/bin/sh"));
        assert!(matches!(
            lookup("no-such-prog-xyz", &env),
            Err(ExecError::NotFound(_))
        ));
        assert!(matches!(
            lookup("/etc/passwd", &env),
            Err(ExecError::NotRunnable { .. })
        ));
    }
}
