//! Mount option strings of the OCI spec (`ro`, `nosuid`, `rbind`, `rslave`, `rro`, …)
//! turned into mount(2) flags, propagation flags, recursive mount_setattr(2) attributes
//! and the filesystem-specific data string, with the same table runc uses.

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
        self.flags & libc::MS_BIND != 0
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
    ("async", true, libc::MS_SYNCHRONOUS),
    ("atime", true, libc::MS_NOATIME),
    ("bind", false, libc::MS_BIND),
    ("defaults", false, 0),
    ("dev", true, libc::MS_NODEV),
    ("diratime", true, libc::MS_NODIRATIME),
    ("dirsync", false, libc::MS_DIRSYNC),
    ("exec", true, libc::MS_NOEXEC),
    ("iversion", false, libc::MS_I_VERSION),
    ("lazytime", false, libc::MS_LAZYTIME),
    ("loud", true, libc::MS_SILENT),
    ("mand", false, libc::MS_MANDLOCK),
    ("noatime", false, libc::MS_NOATIME),
    ("nodev", false, libc::MS_NODEV),
    ("nodiratime", false, libc::MS_NODIRATIME),
    ("noexec", false, libc::MS_NOEXEC),
    ("noiversion", true, libc::MS_I_VERSION),
    ("nolazytime", true, libc::MS_LAZYTIME),
    ("nomand", true, libc::MS_MANDLOCK),
    ("norelatime", true, libc::MS_RELATIME),
    ("nostrictatime", true, libc::MS_STRICTATIME),
    ("nosuid", false, libc::MS_NOSUID),
    ("nosymfollow", false, libc::MS_NOSYMFOLLOW),
    ("rbind", false, libc::MS_BIND | libc::MS_REC),
    ("relatime", false, libc::MS_RELATIME),
    ("remount", false, libc::MS_REMOUNT),
    ("ro", false, libc::MS_RDONLY),
    ("rw", true, libc::MS_RDONLY),
    ("silent", false, libc::MS_SILENT),
    ("strictatime", false, libc::MS_STRICTATIME),
    ("suid", true, libc::MS_NOSUID),
    ("sync", false, libc::MS_SYNCHRONOUS),
    ("symfollow", true, libc::MS_NOSYMFOLLOW),
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
        "private" => libc::MS_PRIVATE,
        "shared" => libc::MS_SHARED,
        "slave" => libc::MS_SLAVE,
        "unbindable" => libc::MS_UNBINDABLE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
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

/// Render MS_* flags by name, for error messages.
pub fn describe(flags: u64) -> String {
    let mut names: Vec<&str> = Vec::new();
    let table: &[(&str, u64)] = &[
        ("MS_RDONLY", libc::MS_RDONLY),
        ("MS_NOSUID", libc::MS_NOSUID),
        ("MS_NODEV", libc::MS_NODEV),
        ("MS_NOEXEC", libc::MS_NOEXEC),
        ("MS_SYNCHRONOUS", libc::MS_SYNCHRONOUS),
        ("MS_REMOUNT", libc::MS_REMOUNT),
        ("MS_MANDLOCK", libc::MS_MANDLOCK),
        ("MS_DIRSYNC", libc::MS_DIRSYNC),
        ("MS_NOSYMFOLLOW", libc::MS_NOSYMFOLLOW),
        ("MS_NOATIME", libc::MS_NOATIME),
        ("MS_NODIRATIME", libc::MS_NODIRATIME),
        ("MS_BIND", libc::MS_BIND),
        ("MS_MOVE", libc::MS_MOVE),
        ("MS_REC", libc::MS_REC),
        ("MS_SILENT", libc::MS_SILENT),
        ("MS_UNBINDABLE", libc::MS_UNBINDABLE),
        ("MS_PRIVATE", libc::MS_PRIVATE),
        ("MS_SLAVE", libc::MS_SLAVE),
        ("MS_SHARED", libc::MS_SHARED),
        ("MS_RELATIME", libc::MS_RELATIME),
        ("MS_I_VERSION", libc::MS_I_VERSION),
        ("MS_STRICTATIME", libc::MS_STRICTATIME),
        ("MS_LAZYTIME", libc::MS_LAZYTIME),
    ];
    let mut rest = flags;
    for (n, f) in table {
        if flags & f != 0 {
            names.push(n);
            rest &= !f;
        }
    }
    if names.is_empty() && rest == 0 {
        return "0".into();
    }
    let mut s = names.join("|");
    if rest != 0 {
        if !s.is_empty() {
            s.push('|');
        }
        s.push_str(&format!("{rest:#x}"));
    }
    s
}

/// Translate statvfs ST_* flags to the MS_* flags a bind remount must keep.
pub fn locked_from_statvfs(st_flags: u64) -> u64 {
    let mut f = 0;
    for (st, ms) in [
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
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
        assert_eq!(m.flags, libc::MS_NOSUID | libc::MS_STRICTATIME);
        assert_eq!(m.data_string().as_deref(), Some("mode=755,size=65536k"));
        let m = opts(&["rbind", "ro", "rslave"]);
        assert!(m.is_bind());
        assert_eq!(m.flags & libc::MS_REC, libc::MS_REC);
        assert_eq!(m.propagation, vec![libc::MS_SLAVE | libc::MS_REC]);
        let m = opts(&["ro", "rw"]);
        assert_eq!(m.flags & libc::MS_RDONLY, 0);
        let m = opts(&["rro", "tmpcopyup"]);
        assert_eq!(m.rec_set, MOUNT_ATTR_RDONLY);
        assert!(m.tmpcopyup);
        assert!(check_option("idmap").is_err());
    }

    #[test]
    fn describes_flags() {
        assert_eq!(describe(libc::MS_BIND | libc::MS_REC), "MS_BIND|MS_REC");
        assert_eq!(describe(0), "0");
    }
}
