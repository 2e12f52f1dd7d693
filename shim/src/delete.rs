//! `containerd-shim-runrs-v2 delete`: containerd runs it after a shim went away (and
//! after every shim exit). It kills and removes whatever is left of the container,
//! unmounts its rootfs and prints a DeleteResponse with the persisted exit status (or
//! 137, as the Go shim reports, when none was recorded). It must always succeed.

use std::io::Write;
use std::path::PathBuf;

use crate::flags::Flags;
use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::Message;

use crate::bundle;
use crate::events::timestamp;

/// Run `delete` and write the response to stdout.
pub fn run(flags: &Flags) {
    let bundle = if flags.bundle.is_empty() {
        std::env::current_dir().unwrap_or_default()
    } else {
        PathBuf::from(&flags.bundle)
    };
    let root = bundle::recorded_root(&bundle)
        .unwrap_or_else(|| PathBuf::from(bundle::DEFAULT_ROOT).join(&flags.namespace));
    let mut pid = 0;
    let mut status = 128 + crate::sys::SIGKILL;
    match runtime_core::Container::load(&root, &flags.id) {
        Ok(c) => {
            pid = c.pid();
            if let Some(s) = c.state.exit_status {
                status = s;
            }
            if let Err(e) = c.delete(true) {
                eprintln!("delete container {}: {}", flags.id, runtime_core::chain(&e));
            }
        }
        Err(e) if e.kind() == runtime_core::Kind::NotFound => {}
        Err(e) => eprintln!("load container {}: {}", flags.id, runtime_core::chain(&e)),
    }
    if let Err(e) = bundle::unmount_rootfs(&bundle) {
        eprintln!("unmount rootfs: {e}");
    }
    bundle::forget_root(&bundle);
    remove_stale_socket(&bundle);
    let resp = DeleteResponse {
        pid: pid as u32,
        exit_status: status as u32,
        exited_at: Some(timestamp(std::time::SystemTime::now())).into(),
        ..Default::default()
    };
    let bytes = resp.write_to_bytes().unwrap_or_default();
    let mut out = std::io::stdout();
    let _ = out.write_all(&bytes);
    let _ = out.flush();
}

/// Remove the shim's socket if nothing listens on it any more (the daemon was killed);
/// a live daemon still serving other containers of the pod keeps it.
fn remove_stale_socket(bundle: &std::path::Path) {
    let Ok(address) = std::fs::read_to_string(bundle.join("address")) else {
        return;
    };
    let path = address.trim().trim_start_matches("unix://");
    if path.is_empty() || std::os::unix::net::UnixStream::connect(path).is_ok() {
        return;
    }
    let _ = std::fs::remove_file(path);
}
