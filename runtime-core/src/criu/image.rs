//! What runrs keeps beside CRIU's image files:
//!
//! - `descriptors.json` (runc's format, so images move between runc and runrs): what
//!   the container init's stdin, stdout and stderr were (`pipe:[123]`, `/dev/null`, …).
//!   At restore, pipes are replaced by the new stdio through criu's `inherit_fd`.
//! - `runrs-checkpoint.json`: the container's config and state at checkpoint time (id,
//!   bundle, cgroupsPath, the external mounts and namespaces criu was told about), so a
//!   restore can check the new bundle against it and name what does not fit.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use super::mounts::External;
use super::CriuError;
use crate::namespaces::Kind;
use crate::sys;
use crate::sys::c;

/// runc's file of the init's stdio.
pub const DESCRIPTORS: &str = "descriptors.json";
/// runrs' file of the container's config and state.
pub const META: &str = "runrs-checkpoint.json";
/// CRIU's image of every dump; its absence means "not an image".
pub const INVENTORY: &str = "inventory.img";
/// The `inherit_fd` key of a network namespace joined by path (runc's name).
pub const EXT_NETNS_KEY: &str = "extRootNetNS";
/// The `inherit_fd` key of a pid namespace joined by path (runc's name): a container
/// of a pod with a shared process namespace, whose pid 1 is the pod's pause.
pub const EXT_PIDNS_KEY: &str = "extRootPidNS";

/// The namespaces criu is told are external when the container joined them by path
/// (runc's `handleCheckpointingExternalNamespaces`): kind, criu's name, the key.
pub const EXTERNAL_NS: [(Kind, &str, &str); 2] = [
    (Kind::Network, "net", EXT_NETNS_KEY),
    (Kind::Pid, "pid", EXT_PIDNS_KEY),
];

/// The namespaces of `spec` joined by path that criu must treat as external: kind,
/// criu's name, the key and the path.
pub fn external_namespaces(spec: &Spec) -> Vec<(Kind, &'static str, &'static str, PathBuf)> {
    let nss = crate::namespaces::from_spec(spec);
    EXTERNAL_NS
        .iter()
        .filter_map(|(kind, name, key)| {
            nss.iter()
                .find(|n| n.kind == *kind)
                .and_then(|n| n.path.clone())
                .map(|p| (*kind, *name, *key, p))
        })
        .collect()
}

/// The container as it was checkpointed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    /// Format version of this file.
    pub version: u32,
    /// Container id.
    pub id: String,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Rootfs directory.
    pub rootfs: PathBuf,
    /// The container's cgroupsPath as resolved.
    pub cgroup_path: String,
    /// Creation time of the container.
    pub created: String,
    /// Time of the checkpoint.
    pub checkpointed: String,
    /// The criu version that made the image.
    pub criu_version: String,
    /// Whether the process had a terminal.
    pub terminal: bool,
    /// External mounts, by key.
    pub externals: Vec<External>,
    /// The network namespace was joined by path (dumped as external).
    #[serde(default)]
    pub external_netns: bool,
    /// The pid namespace was joined by path (dumped as external).
    #[serde(default)]
    pub external_pidns: bool,
    /// The config the container was created from.
    pub config: Spec,
}

/// An opened image directory.
pub struct ImageDir {
    /// Its path.
    pub path: PathBuf,
    /// O_DIRECTORY descriptor, handed to criu as images_dir_fd.
    pub fd: OwnedFd,
}

impl ImageDir {
    /// Create (mode 0700, parents too) and open a directory criu will write into, and
    /// check it is writable, so an unusable directory is reported before criu runs.
    pub fn create(what: &'static str, path: &Path) -> Result<ImageDir, CriuError> {
        let err = |source| CriuError::Dir {
            what,
            path: path.to_path_buf(),
            source,
        };
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(err)?;
        let fd = open_dir(path).map_err(err)?;
        if let Err(e) = sys::dir_writable(std::os::fd::AsFd::as_fd(&fd)) {
            return Err(err(std::io::Error::new(
                e.kind(),
                format!("is not writable: {e}"),
            )));
        }
        Ok(ImageDir {
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            fd,
        })
    }

    /// Open an existing checkpoint (inventory.img and descriptors.json must be there).
    pub fn open_checkpoint(path: &Path) -> Result<ImageDir, CriuError> {
        let fd = open_dir(path).map_err(|source| CriuError::Dir {
            what: "image directory",
            path: path.to_path_buf(),
            source,
        })?;
        for f in [INVENTORY, DESCRIPTORS] {
            if let Err(e) = sys::openat(fd.as_fd(), Path::new(f), c::O_PATH, 0) {
                return Err(CriuError::NotAnImage {
                    path: path.to_path_buf(),
                    reason: format!("{f}: {}", e.source),
                });
            }
        }
        Ok(ImageDir {
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            fd,
        })
    }

    /// The init's stdio as recorded (runc's descriptors.json).
    pub fn descriptors(&self) -> Result<Vec<String>, CriuError> {
        let bytes = self.read(DESCRIPTORS)?.unwrap_or_default();
        serde_json::from_slice(&bytes).map_err(|e| CriuError::NotAnImage {
            path: self.path.clone(),
            reason: format!("{DESCRIPTORS}: {e}"),
        })
    }

    /// runrs' record of the container, if the image was made by runrs.
    pub fn meta(&self) -> Result<Option<Meta>, CriuError> {
        let Some(bytes) = self.read(META)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CriuError::NotAnImage {
                path: self.path.clone(),
                reason: format!("{META}: {e}"),
            })
    }

    /// Write both files.
    pub fn write(&self, descriptors: &[String], meta: &Meta) -> Result<(), CriuError> {
        let d = serde_json::to_vec(descriptors).unwrap_or_default();
        self.write_file(DESCRIPTORS, &d)?;
        let m = serde_json::to_vec_pretty(meta).unwrap_or_default();
        self.write_file(META, &m)
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, CriuError> {
        match sys::read_file_at(self.fd.as_fd(), Path::new(name)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.errno() == Some(c::ENOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn write_file(&self, name: &str, data: &[u8]) -> Result<(), CriuError> {
        let f = sys::openat(
            self.fd.as_fd(),
            Path::new(name),
            c::O_WRONLY | c::O_CREAT | c::O_TRUNC | c::O_NOFOLLOW,
            0o600,
        )?;
        sys::write_all(f.as_fd(), data, name)?;
        Ok(())
    }
}

fn open_dir(path: &Path) -> std::io::Result<OwnedFd> {
    sys::open(path, c::O_RDONLY | c::O_DIRECTORY, 0).map_err(|e| e.source)
}

/// What descriptors 0, 1 and 2 of `pid` are (readlink of /proc/PID/fd/N; "" if closed).
pub fn stdio_of(pid: i32) -> Vec<String> {
    (0..3)
        .map(|n| {
            std::fs::read_link(format!("/proc/{pid}/fd/{n}"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect()
}

/// `inherit_fd` pairs (key, descriptor in criu) for the recorded pipes: descriptor N
/// of the restored init becomes criu's descriptor N (the new stdio).
pub fn inherit_pipes(descriptors: &[String]) -> Vec<(String, i32)> {
    descriptors
        .iter()
        .enumerate()
        .take(3)
        .filter(|(_, d)| d.contains("pipe:"))
        .map(|(i, d)| (d.clone(), i as i32))
        .collect()
}

/// The inode of a namespace file, for criu's `net[INODE]:KEY` external.
pub fn ns_inode(fd: BorrowedFd<'_>) -> Result<u64, CriuError> {
    Ok(sys::fstat(fd)?.st_ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_are_inherited_by_position() {
        let d = vec![
            "/dev/null".to_string(),
            "pipe:[123]".to_string(),
            "pipe:[456]".to_string(),
        ];
        assert_eq!(
            inherit_pipes(&d),
            vec![("pipe:[123]".to_string(), 1), ("pipe:[456]".to_string(), 2)]
        );
    }

    #[test]
    fn namespaces_joined_by_path_are_external() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {"namespaces": [
                {"type": "mount"},
                {"type": "network", "path": "/var/run/netns/pod"},
                {"type": "pid", "path": "/proc/42/ns/pid"},
                {"type": "ipc", "path": "/proc/42/ns/ipc"}
            ]}
        }))
        .expect("spec");
        let ext = external_namespaces(&spec);
        let keys: Vec<_> = ext.iter().map(|e| (e.1, e.2, e.3.clone())).collect();
        assert_eq!(
            keys,
            vec![
                ("net", EXT_NETNS_KEY, PathBuf::from("/var/run/netns/pod")),
                ("pid", EXT_PIDNS_KEY, PathBuf::from("/proc/42/ns/pid")),
            ]
        );
        let own: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}]}
        }))
        .expect("spec");
        assert!(external_namespaces(&own).is_empty());
    }

    #[test]
    #[allow(clippy::disallowed_methods, reason = "test scratch directory")]
    fn image_dir_checks() {
        let tmp = tempfile::tempdir().expect("tmp");
        let p = tmp.path().join("a/b");
        let dir = ImageDir::create("image directory", &p).expect("create");
        assert!(p.is_dir());
        let e = ImageDir::open_checkpoint(&p).err().expect("not an image");
        assert!(e.to_string().contains("inventory.img"), "{e}");
        let meta = Meta {
            version: 1,
            id: "x".into(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            cgroup_path: "/x".into(),
            created: "t".into(),
            checkpointed: "t".into(),
            criu_version: "4.1".into(),
            terminal: false,
            externals: vec![External::Masked {
                dest: "/proc/kcore".into(),
            }],
            external_netns: false,
            external_pidns: true,
            config: serde_json::from_value(serde_json::json!({"ociVersion": "1.0.2"}))
                .expect("spec"),
        };
        dir.write(&["pipe:[1]".into()], &meta).expect("write");
        std::fs::write(p.join(INVENTORY), b"").expect("inventory");
        let img = ImageDir::open_checkpoint(&p).expect("open");
        assert_eq!(img.descriptors().expect("d"), vec!["pipe:[1]".to_string()]);
        let got = img.meta().expect("m").expect("some");
        assert_eq!(got.externals, meta.externals);
        assert!(got.external_pidns && !got.external_netns);
        let missing = ImageDir::open_checkpoint(&tmp.path().join("nope"))
            .err()
            .expect("missing");
        assert!(missing.to_string().contains("nope"), "{missing}");
    }
}
