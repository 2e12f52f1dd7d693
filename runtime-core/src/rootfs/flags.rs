//! Mount option strings of the OCI spec (`ro`, `nosuid`, `rbind`, `rslave`, `rro`, …)
//! turned into mount(2) flags, propagation flags, recursive mount_setattr(2) attributes
//! and the filesystem-specific data string, with the same table runc uses.

use crate::sys::c;

/// Parsed mount options of one OCI mount.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// MS_* flags to set.
    pub flags: u64,
    /// MS_* flags explicitly cleared (`rw`, `suid`, `dev`, …).
    pub cleared: u64,
    /// Propagation changes, applied one by one after the mount (MS_SHARED|MS_REC …).
    pub propagation: Vec<u64>,
    /// MOUNT_ATTR_* to set recursively (`rro`, `rnosuid`, …).
    pub rec_set: u64,
    /// MOUNT_ATTR_* to clear recursively (`rrw`, `rsuid`, …).
    pub rec_clear: u64,
    /// Unknown options, passed to the filesystem as data (`mode=755,size=65536k`).
    pub data: Vec<String>,
    /// runc extension: copy the directory's previous contents into a new tmpfs.
    pub tmpcopyup: bool,
}

impl MountOptions {
    /// Whether the mount is a bind mount.
    pub fn is_bind(&self) -> bool {
        self.flags & c::MS_BIND != 0
    }

    /// The data string for mount(2).
    pub fn data_string(&self) -> Option<String> {
        if self.data.is_empty() {
            None
        } else {
            Some(self.data.join(","))
        }
    }
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR_RELATIME: u64 = 0x0;
const MOUNT_ATTR_NOATIME: u64 = 0x10;
const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// (name, clear?, flag)
const FLAGS: &[(&str, bool, u64)] = &[
    ("async", true, c::MS_SYNCHRONOUS),
    ("atime", true, c::MS_NOATIME),
    ("bind", false, c::MS_BIND),
    ("defaults", false, 0),
    ("dev", true, c::MS_NODEV),
    ("diratime", true, c::MS_NODIRATIME),
    ("dirsync", false, c::MS_DIRSYNC),
    ("exec", true, c::MS_NOEXEC),
    ("iversion", false, c::MS_I_VERSION),
    ("lazytime", false, c::MS_LAZYTIME),
    ("loud", true, c::MS_SILENT),
    ("mand", false, c::MS_MANDLOCK),
    ("noatime", false, c::MS_NOATIME),
    ("nodev", false, c::MS_NODEV),
    ("nodiratime", false, c::MS_NODIRATIME),
    ("noexec", false, c::MS_NOEXEC),
    ("noiversion", true, c::MS_I_VERSION),
    ("nolazytime", true, c::MS_LAZYTIME),
    ("nomand", true, c::MS_MANDLOCK),
    ("norelatime", true, c::MS_RELATIME),
    ("nostrictatime", true, c::MS_STRICTATIME),
    ("nosuid", false, c::MS_NOSUID),
    ("nosymfollow", false, c::MS_NOSYMFOLLOW),
    ("rbind", false, c::MS_BIND | c::MS_REC),
    ("relatime", false, c::MS_RELATIME),
    ("remount", false, c::MS_REMOUNT),
    ("ro", false, c::MS_RDONLY),
    ("rw", true, c::MS_RDONLY),
    ("silent", false, c::MS_SILENT),
    ("strictatime", false, c::MS_STRICTATIME),
    ("suid", true, c::MS_NOSUID),
    ("sync", false, c::MS_SYNCHRONOUS),
    ("symfollow", true, c::MS_NOSYMFOLLOW),
];

/// (name, clear?, MOUNT_ATTR_*)
const REC_ATTRS: &[(&str, bool, u64)] = &[
    ("rro", false, MOUNT_ATTR_RDONLY),
    ("rrw", true, MOUNT_ATTR_RDONLY),
    ("rnosuid", false, MOUNT_ATTR_NOSUID),
    ("rsuid", true, MOUNT_ATTR_NOSUID),
    ("rnodev", false, MOUNT_ATTR_NODEV),
    ("rdev", true, MOUNT_ATTR_NODEV),
    ("rnoexec", false, MOUNT_ATTR_NOEXEC),
    ("rexec", true, MOUNT_ATTR_NOEXEC),
    ("rnodiratime", false, MOUNT_ATTR_NODIRATIME),
    ("rdiratime", true, MOUNT_ATTR_NODIRATIME),
    ("rrelatime", false, MOUNT_ATTR_RELATIME),
    ("rnorelatime", true, MOUNT_ATTR_RELATIME),
    ("rnoatime", false, MOUNT_ATTR_NOATIME),
    ("ratime", true, MOUNT_ATTR_NOATIME),
    ("rstrictatime", false, MOUNT_ATTR_STRICTATIME),
    ("rnostrictatime", true, MOUNT_ATTR_STRICTATIME),
    ("rnosymfollow", false, MOUNT_ATTR_NOSYMFOLLOW),
    ("rsymfollow", true, MOUNT_ATTR_NOSYMFOLLOW),
];

/// Propagation flags of a propagation keyword (`rslave` …), None if not one.
pub fn propagation(name: &str) -> Option<u64> {
    Some(match name {
        "private" => c::MS_PRIVATE,
        "shared" => c::MS_SHARED,
        "slave" => c::MS_SLAVE,
        "unbindable" => c::MS_UNBINDABLE,
        "rprivate" => c::MS_PRIVATE | c::MS_REC,
        "rshared" => c::MS_SHARED | c::MS_REC,
        "rslave" => c::MS_SLAVE | c::MS_REC,
        "runbindable" => c::MS_UNBINDABLE | c::MS_REC,
        _ => return None,
    })
}

/// Every mount option runrs interprets itself (not passed to the filesystem as data),
/// sorted: the `mountOptions` of `runrs features`.
pub fn known_options() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = FLAGS.iter().map(|(n, _, _)| *n).collect();
    v.extend(REC_ATTRS.iter().map(|(n, _, _)| *n));
    v.extend([
        "private",
        "shared",
        "slave",
        "unbindable",
        "rprivate",
        "rshared",
        "rslave",
        "runbindable",
        "tmpcopyup",
    ]);
    v.sort_unstable();
    v
}

/// Whether an option can be honoured; the error says why not.
pub fn check_option(o: &str) -> Result<(), String> {
    match o {
        "idmap" | "ridmap" => Err("idmapped mounts are not supported by runrs yet".into()),
        _ => Ok(()),
    }
}

/// Parse a mount's option list.
pub fn parse(options: &[String]) -> MountOptions {
    let mut m = MountOptions::default();
    for o in options {
        if let Some(&(_, clear, f)) = FLAGS.iter().find(|(n, _, _)| n == o) {
            if clear {
                m.flags &= !f;
                m.cleared |= f;
            } else {
                m.flags |= f;
                m.cleared &= !f;
            }
        } else if let Some(p) = propagation(o) {
            m.propagation.push(p);
        } else if let Some(&(_, clear, a)) = REC_ATTRS.iter().find(|(n, _, _)| n == o) {
            if clear {
                m.rec_clear |= a;
                m.rec_set &= !a;
            } else {
                m.rec_set |= a;
                m.rec_clear &= !a;
            }
        } else if o == "tmpcopyup" {
            m.tmpcopyup = true;
        } else {
            m.data.push(o.clone());
        }
    }
    m
}

/// Translate statvfs ST_* flags to the MS_* flags a bind remount must keep.
pub fn locked_from_statvfs(st_flags: u64) -> u64 {
    let mut f = 0;
    for (st, ms) in [
        (c::ST_RDONLY, c::MS_RDONLY),
        (c::ST_NOSUID, c::MS_NOSUID),
        (c::ST_NODEV, c::MS_NODEV),
        (c::ST_NOEXEC, c::MS_NOEXEC),
        (c::ST_NOATIME, c::MS_NOATIME),
        (c::ST_NODIRATIME, c::MS_NODIRATIME),
        (c::ST_RELATIME, c::MS_RELATIME),
    ] {
        if st_flags & st != 0 {
            f |= ms;
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> MountOptions {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn runc_table() {
        let m = opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(m.flags, c::MS_NOSUID | c::MS_STRICTATIME);
        assert_eq!(m.data_string().as_deref(), Some("mode=755,size=65536k"));
        let m = opts(&["rbind", "ro", "rslave"]);
        assert!(m.is_bind());
        assert_eq!(m.flags & c::MS_REC, c::MS_REC);
        assert_eq!(m.propagation, vec![c::MS_SLAVE | c::MS_REC]);
        let m = opts(&["ro", "rw"]);
        assert_eq!(m.flags & c::MS_RDONLY, 0);
        let m = opts(&["rro", "tmpcopyup"]);
        assert_eq!(m.rec_set, MOUNT_ATTR_RDONLY);
        assert!(m.tmpcopyup);
        assert!(check_option("idmap").is_err());
    }

    #[test]
    fn describes_flags() {
        assert_eq!(
            crate::sys::describe_mount_flags(c::MS_BIND | c::MS_REC),
            "MS_BIND|MS_REC"
        );
        assert_eq!(crate::sys::describe_mount_flags(0), "0");
    }
}
