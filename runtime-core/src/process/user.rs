//! Switching to the process' user: supplementary groups, gid, uid (setgroups(2),
//! setresgid(2), setresuid(2)), HOME from the container's /etc/passwd, and stdio
//! ownership so a non-root process can use its terminal.

use crate::sys::{self, SysError};

/// Set supplementary groups, then gid, then uid. `allow_setgroups` is false in a user
/// namespace whose setgroups file says "deny".
pub fn switch(uid: u32, gid: u32, groups: &[u32], allow_setgroups: bool) -> Result<(), SysError> {
    if allow_setgroups {
        sys::setgroups(groups)?;
    }
    sys::setresgid(gid)?;
    sys::setresuid(uid)
}

/// The home directory of `uid` in an /etc/passwd text, `/` if absent.
pub fn home_of(passwd: &str, uid: u32) -> String {
    passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
        })
        .next()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_string())
}

/// Give stdio descriptors to the process' user (runc's fixStdioPermissions): only the
/// owner changes, the group stays what the terminal or pipe has (a pty from the default
/// devpts, `gid=5`, stays in the `tty` group as with runc); the null device is left
/// alone, and errors from ids the kernel cannot map are ignored.
pub fn fix_stdio_owner(uid: u32) {
    for fd in 0..3 {
        let Some(b) = sys::stdio(fd) else {
            continue;
        };
        let Ok(st) = sys::fstat(b) else {
            continue;
        };
        if sys::is_null_device(&st) || st.st_uid == uid {
            continue;
        }
        let _ = sys::fchown(b, uid, st.st_gid);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn home_lookup() {
        let p =
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
        assert_eq!(super::home_of(p, 0), "/root");
        assert_eq!(super::home_of(p, 65534), "/nonexistent");
        assert_eq!(super::home_of(p, 1000), "/");
    }
}
