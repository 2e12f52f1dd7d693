//! OOM notifications for a container's memory cgroup.
//!
//! - cgroup v1: an eventfd registered through cgroup.event_control on
//!   memory.oom_control; the kernel signals it each time the group hits OOM, and once
//!   more when the cgroup is removed.
//! - cgroup v2: inotify on memory.events, whose `oom_kill` counter grows with each
//!   kill, and on cgroup.events, whose `populated 0` says the container has no
//!   process left.
//!
//! [`OomWatcher`] offers both a pollable descriptor (wait for POLLIN on
//! [`OomWatcher::as_fd`], then call [`OomWatcher::read`]) and a blocking
//! [`OomWatcher::wait`] for a dedicated thread.
//!
//! **Ordering TaskOOM before TaskExit.** A notification can arrive after the exit of
//! the process the kill ended (the reaper and the watcher race). A shim should, when
//! it sees the container's init exit, call [`oom_kill_count`] (or
//! [`OomWatcher::read`]) and publish any OOM not yet published before the exit event:
//! the counter is updated by the kernel before the killed task exits.
//! See cgroup-v1/memory.rst ("OOM Control") and cgroup-v2.rst ("memory.events").

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::{stats, CgroupError, CgroupPaths, Mode, UNIFIED};
use crate::sys::c;
use crate::sys::{self, SysError};

/// What the watcher saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OomEvent {
    /// The group hit OOM (`kills` new OOM kills since the last event; on v1 with the OOM
    /// killer disabled a notification can come with 0 kills).
    Oom {
        /// New OOM kills since the previous report.
        kills: u64,
    },
    /// The cgroup was removed, or (v2) no process is left in it: nothing more to come.
    Gone,
}

/// The memory cgroup directory of a container.
pub fn memory_dir(cg: &CgroupPaths) -> Option<&Path> {
    if cg.mode == Mode::Unified {
        cg.dirs.get(UNIFIED).map(PathBuf::as_path)
    } else {
        cg.dirs.get("memory").map(PathBuf::as_path)
    }
}

/// OOM kills so far in the container's memory cgroup (0 without a memory controller).
pub fn oom_kill_count(cg: &CgroupPaths) -> u64 {
    memory_dir(cg).map_or(0, stats::oom_kills_in)
}

enum Kind {
    V1 {
        event: OwnedFd,
        // Kept open: the registration lives as long as this descriptor.
        _control: OwnedFd,
        event_control: PathBuf,
    },
    V2 {
        inotify: OwnedFd,
        dir: PathBuf,
    },
}

/// Watches one container's memory cgroup for OOM.
pub struct OomWatcher {
    kind: Kind,
    kills: u64,
    gone: bool,
}

impl std::fmt::Debug for OomWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OomWatcher")
            .field("fd", &self.as_fd().as_raw_fd())
            .field("kills", &self.kills)
            .finish()
    }
}

fn oom_err(what: &Path, e: SysError) -> CgroupError {
    CgroupError::Oom {
        what: what.display().to_string(),
        source: e,
    }
}

impl OomWatcher {
    /// Start watching. Fails when the container has no memory cgroup.
    #[allow(
        clippy::disallowed_methods,
        reason = "cgroupfs, not a container rootfs"
    )]
    pub fn new(cg: &CgroupPaths) -> Result<Self, CgroupError> {
        let Some(dir) = memory_dir(cg) else {
            return Err(CgroupError::Resource {
                field: "memory".into(),
                reason: "no memory cgroup to watch for OOM".into(),
            });
        };
        let kills = stats::oom_kills_in(dir);
        let kind = if cg.mode == Mode::Unified {
            let inotify = sys::inotify().map_err(|e| oom_err(dir, e))?;
            for f in ["memory.events", "cgroup.events"] {
                let p = dir.join(f);
                sys::inotify_add_watch(inotify.as_fd(), &p, sys::c::IN_MODIFY)
                    .map_err(|e| oom_err(&p, e))?;
            }
            Kind::V2 {
                inotify,
                dir: dir.to_path_buf(),
            }
        } else {
            let control_path = dir.join("memory.oom_control");
            let control = sys::open(&control_path, c::O_RDONLY | c::O_CLOEXEC, 0)
                .map_err(|e| oom_err(&control_path, e))?;
            let event = sys::eventfd().map_err(|e| oom_err(dir, e))?;
            let event_control = dir.join("cgroup.event_control");
            let line = format!("{} {}", event.as_raw_fd(), control.as_raw_fd());
            std::fs::write(&event_control, &line).map_err(|e| {
                oom_err(
                    &event_control,
                    SysError::new("write", event_control.display().to_string(), e),
                )
            })?;
            Kind::V1 {
                event,
                _control: control,
                event_control,
            }
        };
        Ok(OomWatcher {
            kind,
            kills,
            gone: false,
        })
    }

    /// OOM kills seen so far (including those before the watcher started).
    pub fn kills(&self) -> u64 {
        self.kills
    }

    /// Consume what made the descriptor readable and report it; `None` when nothing
    /// new happened. Never blocks.
    pub fn read(&mut self) -> Result<Option<OomEvent>, CgroupError> {
        if self.gone {
            return Ok(Some(OomEvent::Gone));
        }
        match &self.kind {
            Kind::V1 {
                event,
                event_control,
                ..
            } => {
                let mut buf = [0u8; 8];
                let n = match sys::read(event.as_fd(), &mut buf, "OOM eventfd") {
                    Ok(n) => n,
                    Err(e) if e.errno() == Some(c::EAGAIN) => return Ok(None),
                    Err(e) => return Err(oom_err(event_control, e)),
                };
                if n != 8 {
                    return Ok(None);
                }
                if !event_control.exists() {
                    self.gone = true;
                    return Ok(Some(OomEvent::Gone));
                }
                let dir = event_control.parent().unwrap_or(Path::new("/"));
                let now = stats::oom_kills_in(dir);
                let kills = now.saturating_sub(self.kills);
                self.kills = now;
                Ok(Some(OomEvent::Oom { kills }))
            }
            Kind::V2 { inotify, dir } => {
                let mut buf = [0u8; 4096];
                let mut removed = false;
                loop {
                    match sys::read(inotify.as_fd(), &mut buf, "inotify") {
                        Ok(0) => break,
                        Ok(n) => {
                            // IN_IGNORED: the watch went away with the cgroup.
                            let mut off = 0;
                            while off + 16 <= n {
                                let mask = u32::from_ne_bytes([
                                    buf[off + 4],
                                    buf[off + 5],
                                    buf[off + 6],
                                    buf[off + 7],
                                ]);
                                let len = u32::from_ne_bytes([
                                    buf[off + 12],
                                    buf[off + 13],
                                    buf[off + 14],
                                    buf[off + 15],
                                ]) as usize;
                                removed |= mask & c::IN_IGNORED != 0;
                                off += 16 + len;
                            }
                        }
                        Err(e) if e.errno() == Some(c::EAGAIN) => break,
                        Err(e) => return Err(oom_err(dir, e)),
                    }
                }
                let now = stats::oom_kills_in(dir);
                if now > self.kills {
                    let kills = now - self.kills;
                    self.kills = now;
                    return Ok(Some(OomEvent::Oom { kills }));
                }
                let populated =
                    stats::read_kv(&dir.join("cgroup.events")).get("populated") == Some(&1);
                if removed || !dir.exists() || !populated {
                    self.gone = true;
                    return Ok(Some(OomEvent::Gone));
                }
                Ok(None)
            }
        }
    }

    /// Block until the next event.
    pub fn wait(&mut self) -> Result<OomEvent, CgroupError> {
        loop {
            if let Some(e) = self.read()? {
                return Ok(e);
            }
            sys::poll_one(self.as_fd(), c::POLLIN, -1).map_err(|e| {
                let what = match &self.kind {
                    Kind::V1 { event_control, .. } => event_control.clone(),
                    Kind::V2 { dir, .. } => dir.clone(),
                };
                oom_err(&what, e)
            })?;
        }
    }
}

impl AsFd for OomWatcher {
    /// Readable (POLLIN) when [`OomWatcher::read`] has something to report.
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.kind {
            Kind::V1 { event, .. } => event.as_fd(),
            Kind::V2 { inotify, .. } => inotify.as_fd(),
        }
    }
}
