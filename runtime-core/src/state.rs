//! Container state on disk: one directory per container under the runtime root,
//! holding `state.json` (written atomically) and, until start, the `exec.fifo`.
//!
//! The OCI status is derived, not trusted: the init pid is checked against its recorded
//! start time (so a recycled pid is not mistaken for the container), the exec fifo
//! marks "created", and the freezer marks "paused". See the OCI runtime spec, runtime.md.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::cgroups::CgroupPaths;

/// File name of the persisted state.
pub const STATE_FILE: &str = "state.json";
/// File name of the start barrier.
pub const EXEC_FIFO: &str = "exec.fifo";
/// Version of the OCI runtime spec runrs reports.
pub const OCI_VERSION: &str = "1.2.0";

/// State persistence errors.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// No container with this id under the root.
    #[error("container \"{0}\" does not exist")]
    NotFound(String),
    /// A container with this id already exists.
    #[error("container \"{0}\" already exists")]
    Exists(String),
    /// The id is not acceptable as a directory name.
    #[error("invalid container id {0:?}: {1}")]
    BadId(String, &'static str),
    /// Reading or writing a state file failed.
    #[error("{op} {path}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// On which file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// state.json is corrupt.
    #[error("parse {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// OCI container status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The runtime is creating the container.
    Creating,
    /// Created, waiting for start.
    Created,
    /// The user process runs.
    Running,
    /// Frozen.
    Paused,
    /// The init process has exited.
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// The OCI state document, as `runc state` prints it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OciState {
    /// Spec version.
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    /// Container id.
    pub id: String,
    /// Init pid on the host, 0 once stopped.
    pub pid: i32,
    /// Current status.
    pub status: Status,
    /// Absolute bundle path.
    pub bundle: String,
    /// Absolute rootfs path.
    pub rootfs: String,
    /// Creation time, RFC 3339 with nanoseconds.
    pub created: String,
    /// Owner (user name, empty for the default).
    pub owner: String,
    /// Annotations from the spec.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Everything runrs remembers about a container between invocations.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerState {
    /// Container id.
    pub id: String,
    /// Absolute bundle path.
    pub bundle: PathBuf,
    /// Absolute rootfs path.
    pub rootfs: PathBuf,
    /// Host pid of the container's init (0 while not yet known).
    pub init_pid: i32,
    /// Start time of the init (clock ticks since boot, /proc/PID/stat field 22).
    pub init_start_time: u64,
    /// Status as last recorded (the live status is derived, see [`ContainerState::status`]).
    pub recorded_status: Status,
    /// Creation time (RFC 3339).
    pub created: String,
    /// Owner name (empty: default).
    #[serde(default)]
    pub owner: String,
    /// The cgroups the container was placed in.
    pub cgroup: CgroupPaths,
    /// The spec the container was created from.
    pub config: Spec,
    /// Whether `--no-pivot` was used.
    #[serde(default)]
    pub no_pivot: bool,
    /// Exit status recorded when known (by `run`, or a shim).
    #[serde(default)]
    pub exit_status: Option<i32>,
    /// The container's Intel RDT groups (linux.intelRdt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdt: Option<crate::rdt::RdtState>,
    /// Without a mount namespace of its own (see [`crate::rootfs::hostns`]): how many
    /// mounts were stacked at the rootfs path before create; delete detaches the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_mounts: Option<usize>,
}

impl ContainerState {
    /// The OCI state document for this container, with a live status.
    pub fn oci(&self, status: Status) -> OciState {
        let annotations = self
            .config
            .annotations()
            .as_ref()
            .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        OciState {
            oci_version: OCI_VERSION.to_string(),
            id: self.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.init_pid
            },
            status,
            bundle: self.bundle.display().to_string(),
            rootfs: self.rootfs.display().to_string(),
            created: self.created.clone(),
            owner: self.owner.clone(),
            annotations,
        }
    }
}

/// Check a container id the way runc does: non-empty, no path separators, no `..`.
pub fn check_id(id: &str) -> Result<(), StateError> {
    if id.is_empty() {
        return Err(StateError::BadId(id.into(), "must not be empty"));
    }
    if id == "." || id == ".." {
        return Err(StateError::BadId(id.into(), "must not be . or .."));
    }
    if id.len() > 1024 {
        return Err(StateError::BadId(id.into(), "is too long"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'))
    {
        return Err(StateError::BadId(
            id.into(),
            "may contain only letters, digits, '-', '_', '.', '+'",
        ));
    }
    Ok(())
}

/// The state directory of a container.
pub fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Load a container's state.
pub fn load(root: &Path, id: &str) -> Result<ContainerState, StateError> {
    check_id(id)?;
    let path = dir(root, id).join(STATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StateError::NotFound(id.to_string()))
        }
        Err(source) => {
            return Err(StateError::Io {
                op: "read",
                path,
                source,
            })
        }
    };
    serde_json::from_slice(&bytes).map_err(|source| StateError::Parse { path, source })
}

/// Write a container's state atomically (temp file + rename in the same directory).
pub fn save(root: &Path, st: &ContainerState) -> Result<(), StateError> {
    // A temp file of this write's own: two writers (threads or processes) never write
    // into the same temp file or rename one away under the other.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = dir(root, &st.id);
    let tmp = d.join(format!(".state.json.{}.{seq}.tmp", std::process::id()));
    let path = d.join(STATE_FILE);
    let io = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| StateError::Io { op, path, source }
    };
    let bytes = serde_json::to_vec(st).map_err(|source| StateError::Parse {
        path: path.clone(),
        source,
    })?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode_0600()
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    let written = f.write_all(&bytes).map_err(io("write", &tmp));
    drop(f);
    let renamed = written.and_then(|()| std::fs::rename(&tmp, &path).map_err(io("rename", &path)));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}
impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

/// Ids of every container under `root`, sorted.
pub fn list(root: &Path) -> Result<Vec<String>, StateError> {
    let rd = match std::fs::read_dir(root) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StateError::Io {
                op: "read directory",
                path: root.to_path_buf(),
                source,
            })
        }
    };
    let mut ids: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(STATE_FILE).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// What /proc says about a pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Single-letter state (R, S, D, Z, T, ...).
    pub state: char,
    /// Start time in clock ticks since boot.
    pub start_time: u64,
}

/// Read /proc/PID/stat (state and start time); None if the process does not exist.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&s)
}

fn parse_stat(s: &str) -> Option<ProcStat> {
    // comm may contain spaces and parentheses: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // rest[0] is field 3 (state); start time is field 22 -> index 19.
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Whether `pid` is still the process started at `start_time` and not a zombie.
pub fn alive(pid: i32, start_time: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    match proc_stat(pid) {
        Some(st) => st.start_time == start_time && st.state != 'Z' && st.state != 'X',
        None => false,
    }
}

/// Now, formatted like Go's RFC3339Nano (trailing zeros of the fraction trimmed).
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// Format a time like Go's `time.RFC3339Nano` in UTC.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let nanos = d.subsec_nanos();
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, dd) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_like_go() {
        let t = UNIX_EPOCH + Duration::new(1_795_910_400, 120_000_000);
        assert_eq!(rfc3339(t), "2026-11-29T00:00:00.12Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = UNIX_EPOCH + Duration::new(951_782_400, 1);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000000001Z");
    }

    #[test]
    fn ids() {
        assert!(check_id("abc-1_2.3").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id("..").is_err());
        assert!(check_id("a/b").is_err());
    }

    #[test]
    fn stat_with_spaces_in_comm() {
        let line = "123 (a b) c) S 1 123 123 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 4242 1000 10";
        let st = parse_stat(line).expect("parse");
        assert_eq!(st.state, 'S');
        assert_eq!(st.start_time, 4242);
    }

    /// Issue 15: every save wrote the same temp file; two writers at once renamed it
    /// away under each other (ENOENT) or published the other's half-written file.
    #[test]
    fn concurrent_saves_each_use_their_own_temp_file() {
        let tmp = tempfile::tempdir().expect("tmp");
        let st = ContainerState {
            id: "c1".into(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            init_pid: 1,
            init_start_time: 1,
            recorded_status: Status::Running,
            created: String::new(),
            owner: String::new(),
            cgroup: Default::default(),
            config: Default::default(),
            no_pivot: false,
            exit_status: None,
            rdt: None,
            host_mounts: None,
        };
        std::fs::create_dir_all(dir(tmp.path(), "c1")).expect("state dir");
        let writers: Vec<_> = (0..4)
            .map(|i| {
                let mut s = st.clone();
                s.exit_status = Some(i);
                let root = tmp.path().to_path_buf();
                std::thread::spawn(move || {
                    for _ in 0..300 {
                        save(&root, &s).expect("save");
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().expect("writer");
        }
        let got = load(tmp.path(), "c1").expect("a whole state.json");
        assert!(got.exit_status.is_some());
        let left: Vec<_> = std::fs::read_dir(dir(tmp.path(), "c1"))
            .expect("read dir")
            .map(|e| e.expect("entry").file_name())
            .filter(|n| n != STATE_FILE)
            .collect();
        assert!(left.is_empty(), "temp files left: {left:?}");
    }

    #[test]
    fn self_is_alive() {
        let me = std::process::id() as i32;
        let st = proc_stat(me).expect("self");
        assert!(alive(me, st.start_time));
        assert!(!alive(me, st.start_time + 1));
    }
}
