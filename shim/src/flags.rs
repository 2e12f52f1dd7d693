//! The shim's command line, as containerd writes it: Go `flag` syntax (`-name value`,
//! `-name=value`, `--name`, booleans alone or as `-name=true|false`), then the action
//! (`start`, `delete`, or none for the daemon). Parsed here rather than through the
//! containerd-shim crate, which the shim used for nothing else (issue 15: dropping it
//! removed its dependency tree from the binary).

use std::path::Path;

use sha2::{Digest, Sha256};

/// Where containerd's shims put their sockets (containerd-shim-runc-v2's `s/` dir).
const SOCKET_ROOT: &str = "/run/containerd";

/// The flags containerd passes to a shim.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flags {
    /// Debug logging.
    pub debug: bool,
    /// containerd namespace.
    pub namespace: String,
    /// Container id.
    pub id: String,
    /// The socket to serve (daemon).
    pub socket: String,
    /// The bundle directory, if not the working directory.
    pub bundle: String,
    /// containerd's ttrpc address.
    pub address: String,
    /// containerd's binary for publishing events (unused: events go over ttrpc).
    pub publish_binary: String,
    /// `start`, `delete` or "" (the daemon).
    pub action: String,
}

/// Parse `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Flags, String> {
    let mut f = Flags::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            f.action = it.next().cloned().unwrap_or_default();
            break;
        }
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            f.action = arg.clone();
            break;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (flag, None),
        };
        if name == "debug" {
            f.debug = match inline {
                None | Some("true") | Some("1") | Some("t") | Some("T") | Some("TRUE") => true,
                Some("false") | Some("0") | Some("f") | Some("F") | Some("FALSE") => false,
                Some(v) => return Err(format!("invalid boolean value {v:?} for -debug")),
            };
            continue;
        }
        let slot = match name {
            "namespace" => &mut f.namespace,
            "id" => &mut f.id,
            "socket" => &mut f.socket,
            "bundle" => &mut f.bundle,
            "address" => &mut f.address,
            "publish-binary" => &mut f.publish_binary,
            _ => return Err(format!("flag provided but not defined: -{name}")),
        };
        *slot = match inline {
            Some(v) => v.to_string(),
            None => it
                .next()
                .cloned()
                .ok_or_else(|| format!("flag needs an argument: -{name}"))?,
        };
    }
    Ok(f)
}

/// The socket address of the shim for `id` in `namespace`, derived from containerd's
/// address as every containerd shim does: `unix:///run/containerd/s/<sha256 hex>` of
/// `<address>/<namespace>/<id>`.
pub fn socket_address(address: &str, namespace: &str, id: &str) -> String {
    let path = Path::new(address).join(namespace).join(id);
    let hash = Sha256::digest(path.display().to_string().as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("unix://{SOCKET_ROOT}/s/{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn parses_what_containerd_passes() {
        let f = parse(&args(&[
            "-namespace",
            "k8s.io",
            "-address",
            "/run/containerd/containerd.sock",
            "-publish-binary",
            "/usr/bin/containerd",
            "-id",
            "c1",
            "-debug",
            "start",
        ]))
        .expect("parse");
        assert_eq!(f.namespace, "k8s.io");
        assert_eq!(f.address, "/run/containerd/containerd.sock");
        assert_eq!(f.id, "c1");
        assert!(f.debug);
        assert_eq!(f.action, "start");
        let f = parse(&args(&["--id=c2", "-debug=false", "-bundle=/b", "delete"])).expect("parse");
        assert_eq!(
            (f.id.as_str(), f.debug, f.bundle.as_str()),
            ("c2", false, "/b")
        );
        assert_eq!(f.action, "delete");
        assert_eq!(parse(&args(&["-id", "x"])).expect("daemon").action, "");
    }

    #[test]
    fn refuses_what_go_flag_refuses() {
        assert!(parse(&args(&["-bogus", "x"])).is_err());
        assert!(parse(&args(&["-id"])).is_err());
        assert!(parse(&args(&["-debug=maybe"])).is_err());
    }

    /// The same address as containerd-shim 0.11's `socket_address` (and containerd's Go
    /// `shim.SocketAddress`): sha256 of "<address>/<namespace>/<id>" (the digest below
    /// from `sha256sum`).
    #[test]
    fn the_socket_address_is_containerds() {
        assert_eq!(
            socket_address("/run/containerd/containerd.sock.ttrpc", "default", "c1"),
            "unix:///run/containerd/s/4d5adb6f84210a4715404208038669e343a6eb1282b40892b9d313ca7bd89d2e"
        );
    }
}
