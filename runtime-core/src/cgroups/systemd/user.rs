//! systemd's user instance, for the systemd driver run by an unprivileged user: runc's
//! rootless systemd driver, which rootless Podman uses on a systemd host with cgroup v2
//! (`--systemd-cgroup`, cgroupsPath `user.slice:libpod:<id>`). The unit is made by the
//! user's own systemd (`user@<uid>.service`, which systemd delegates a cgroup subtree
//! to), reached on the user's bus as runc finds it.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Where the user's systemd listens and who we are to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserBus {
    /// A D-Bus address (`unix:path=/run/user/1000/bus`).
    pub address: String,
    /// The uid to authenticate as (D-Bus EXTERNAL): the caller's uid as the bus daemon
    /// sees it, i.e. mapped out of the caller's user namespace.
    pub uid: u32,
    /// The address is the user manager's own socket (`$XDG_RUNTIME_DIR/systemd/private`,
    /// no bus daemon), spoken to peer-to-peer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub p2p: bool,
}

/// The caller's real uid as the parent user namespace sees it (in the initial
/// namespace: the uid itself). Under rootless Podman uid 0 is the user's own uid.
pub fn outer_uid() -> Result<u32, String> {
    let map = std::fs::read_to_string("/proc/self/uid_map")
        .map_err(|e| format!("read /proc/self/uid_map: {e}"))?;
    let (uid, _) = crate::sys::real_ids();
    outer_id(&map, uid).ok_or_else(|| {
        format!("uid {uid} has no mapping out of this user namespace (/proc/self/uid_map)")
    })
}

impl UserBus {
    /// The caller's user instance, from its environment: `DBUS_SESSION_BUS_ADDRESS`,
    /// else `$XDG_RUNTIME_DIR/bus` (runc's order), else the user manager's private
    /// socket `$XDG_RUNTIME_DIR/systemd/private` (a host without dbus-user-session).
    pub fn detect() -> Result<UserBus, String> {
        let uid = outer_uid()?;
        let session = std::env::var("DBUS_SESSION_BUS_ADDRESS").ok();
        let xdg = std::env::var_os("XDG_RUNTIME_DIR");
        let xdg = xdg.as_deref().map(Path::new);
        let (address, p2p) = address(session.as_deref(), xdg, |p| p.exists())?;
        Ok(UserBus { address, uid, p2p })
    }
}

/// The bus address from the environment's values (`exists` tells which sockets exist).
fn address(
    session: Option<&str>,
    xdg: Option<&Path>,
    exists: impl Fn(&Path) -> bool,
) -> Result<(String, bool), String> {
    if let Some(s) = session.filter(|s| !s.is_empty()) {
        return Ok((s.to_string(), false));
    }
    let xdg = xdg.filter(|x| !x.as_os_str().is_empty());
    if let Some(dir) = xdg {
        for (name, p2p) in [("bus", false), ("systemd/private", true)] {
            let sock = dir.join(name);
            if exists(&sock) {
                return Ok((format!("unix:path={}", escape(&sock)), p2p));
            }
        }
    }
    Err(format!(
        "could not find the user's systemd: DBUS_SESSION_BUS_ADDRESS is unset and {} \
         (the systemd driver as an unprivileged user needs the user's systemd instance, \
         `systemctl --user`; a login session or `loginctl enable-linger` starts it)",
        match xdg {
            Some(d) => format!(
                "neither {0}/bus nor {0}/systemd/private exists",
                d.display()
            ),
            None => "XDG_RUNTIME_DIR is unset".into(),
        }
    ))
}

/// A path as a D-Bus address value: bytes other than `[-0-9A-Za-z_/.\*]` as `%xx`
/// (the D-Bus specification, "Server Addresses").
fn escape(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'/')
        .remove(b'.')
        .remove(b'\\')
        .remove(b'*');
    percent_encoding::percent_encode(p.as_os_str().as_bytes(), KEEP).to_string()
}

/// `id` of this user namespace as the parent namespace sees it, from an id map's lines
/// (`inside outside count`; user_namespaces(7)). The identity map of the initial
/// namespace gives `id` itself.
pub(crate) fn outer_id(map: &str, id: u32) -> Option<u32> {
    map.lines().find_map(|line| {
        let f: Vec<u64> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let [inside, outside, count] = f[..] else {
            return None;
        };
        let id = u64::from(id);
        (id >= inside && id - inside < count)
            .then(|| outside + (id - inside))
            .and_then(|o| u32::try_from(o).ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outer_id_maps_through_the_right_line() {
        assert_eq!(outer_id("0 0 4294967295\n", 1000), Some(1000));
        // rootless Podman: 0 -> the user, 1.. -> its subordinate ids.
        let podman = "         0       1001          1\n         1     100000      65536\n";
        assert_eq!(outer_id(podman, 0), Some(1001));
        assert_eq!(outer_id(podman, 1), Some(100000));
        assert_eq!(outer_id(podman, 65536), Some(165535));
        assert_eq!(outer_id(podman, 65537), None);
        assert_eq!(outer_id("garbage\n0 5\n", 0), None);
        assert_eq!(outer_id("", 0), None);
    }

    #[test]
    fn address_in_runc_order_then_the_private_socket() {
        let xdg = Path::new("/run/user/1001");
        let all = |_: &Path| true;
        let none = |_: &Path| false;
        let a = address(Some("unix:path=/x"), Some(xdg), all).expect("env");
        assert_eq!(a, ("unix:path=/x".into(), false));
        let a = address(Some(""), Some(xdg), all).expect("bus");
        assert_eq!(a, ("unix:path=/run/user/1001/bus".into(), false));
        let private = |p: &Path| p.ends_with("systemd/private");
        let a = address(None, Some(xdg), private).expect("private");
        assert_eq!(a, ("unix:path=/run/user/1001/systemd/private".into(), true));
        let e = address(None, Some(xdg), none).expect_err("none");
        assert!(
            e.contains("/run/user/1001/bus") && e.contains("enable-linger"),
            "{e}"
        );
        let e = address(None, None, all).expect_err("no xdg");
        assert!(e.contains("XDG_RUNTIME_DIR is unset"), "{e}");
        let odd = Path::new("/run/user/a b,c=%");
        let a = address(None, Some(odd), all).expect("escaped");
        assert_eq!(a.0, "unix:path=/run/user/a%20b%2Cc%3D%25/bus");
    }
}
