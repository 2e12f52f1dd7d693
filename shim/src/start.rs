//! `containerd-shim-runrs-v2 start`: find or start the shim daemon for this container
//! and print its ttrpc address. Containers of one pod (same
//! `io.kubernetes.cri.sandbox-id`, or runc's `io.containerd.runc.v2.group`) share one
//! daemon, as with containerd-shim-runc-v2. The socket is bound here and passed to the
//! daemon as fd 3, so `start` returns at once: containerd's first request waits in the
//! listen backlog until the daemon accepts it.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::flags::Flags;

/// Environment variable telling the daemon its listener is fd 3.
pub const LISTEN_FD_ENV: &str = "RUNRS_SHIM_LISTEN_FD";

const GROUP_LABELS: [&str; 2] = [
    "io.containerd.runc.v2.group",
    "io.kubernetes.cri.sandbox-id",
];

#[derive(serde::Deserialize, Default)]
struct Annotations {
    #[serde(default)]
    annotations: std::collections::HashMap<String, String>,
}

/// The grouping key of the container whose bundle is the current directory.
fn group(id: &str) -> String {
    let a: Annotations = std::fs::read("config.json")
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    GROUP_LABELS
        .iter()
        .find_map(|k| a.annotations.get(*k).filter(|v| !v.is_empty()).cloned())
        .unwrap_or_else(|| id.to_string())
}

fn write_address(address: &str) -> std::io::Result<()> {
    std::fs::write(".address.tmp", address)?;
    std::fs::rename(".address.tmp", "address")
}

/// Run `start`; returns the address to print.
pub fn run(flags: &Flags) -> Result<String, String> {
    let address = crate::flags::socket_address(&flags.address, &flags.namespace, &group(&flags.id));
    let path = address
        .strip_prefix("unix://")
        .unwrap_or(&address)
        .to_string();
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if UnixStream::connect(&path).is_ok() {
                // A live shim of the same group serves this container too.
                write_address(&address).map_err(|e| format!("write address: {e}"))?;
                return Ok(address);
            }
            let _ = std::fs::remove_file(&path);
            UnixListener::bind(&path).map_err(|e| format!("bind {path}: {e}"))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = std::path::Path::new(&path).parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("create {}: {e}", dir.display()))?;
            }
            UnixListener::bind(&path).map_err(|e| format!("bind {path}: {e}"))?
        }
        Err(e) => return Err(format!("bind {path}: {e}")),
    };
    let exe = std::env::current_exe().map_err(|e| format!("find own executable: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "-namespace",
        &flags.namespace,
        "-id",
        &flags.id,
        "-address",
        &flags.address,
    ]);
    if flags.debug {
        cmd.arg("-debug");
    }
    cmd.env(LISTEN_FD_ENV, "3")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    crate::sys::pass_fds(&mut cmd, vec![listener.as_raw_fd()]);
    let child = cmd.spawn().map_err(|e| {
        let _ = std::fs::remove_file(&path);
        format!("start shim daemon: {e}")
    })?;
    drop(listener);
    let pid = child.id() as i32;
    // The runtime options on stdin may name a cgroup for the shim (runc's ShimCgroup).
    let mut input = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut input);
    if let Some(cg) = shim_cgroup(&input) {
        move_to_cgroup(pid, &cg);
    }
    adjust_oom_score(pid);
    write_address(&address).map_err(|e| format!("write address: {e}"))?;
    Ok(address)
}

fn shim_cgroup(input: &[u8]) -> Option<String> {
    use containerd_shim_protos::protobuf::Message;
    let any = containerd_shim_protos::protobuf::well_known_types::any::Any::parse_from_bytes(input)
        .ok()?;
    crate::options::decode(Some(&any)).ok()?.shim_cgroup
}

fn move_to_cgroup(pid: i32, cg: &str) {
    let root = std::path::Path::new(runtime_core::CGROUP_ROOT);
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    let mut dirs: Vec<std::path::PathBuf> = rd.flatten().map(|e| e.path()).collect();
    dirs.push(root.to_path_buf());
    for d in dirs {
        let procs = d.join(cg.trim_start_matches('/')).join("cgroup.procs");
        if procs.exists() {
            let _ = std::fs::write(procs, pid.to_string());
        }
    }
}

/// The daemon gets its parent's (containerd's) oom_score_adj + 1, as the Go shim does.
fn adjust_oom_score(pid: i32) {
    let Ok(own) = std::fs::read_to_string("/proc/self/oom_score_adj") else {
        return;
    };
    let Ok(v) = own.trim().parse::<i32>() else {
        return;
    };
    let _ = std::fs::write(
        format!("/proc/{pid}/oom_score_adj"),
        (v + 1).min(1000).to_string(),
    );
}

/// Print the address the way every containerd version accepts: bare, no newline.
pub fn print(address: &str) {
    let mut out = std::io::stdout();
    let _ = out.write_all(address.as_bytes());
    let _ = out.flush();
}
