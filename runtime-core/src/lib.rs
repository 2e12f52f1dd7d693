//! runtime-core: the runrs container runtime as a synchronous library. An OCI bundle
//! becomes a running container: namespaces, rootfs and mounts, devices, cgroups,
//! capabilities, rlimits, hooks; created by re-executing the runrs binary into a
//! single-threaded init (see DESIGN.md). Also home of the `runrs` CLI.

pub(crate) mod bundle;
pub(crate) mod capabilities;
pub(crate) mod cgroups;
pub(crate) mod container;
pub(crate) mod criu;
pub(crate) mod entry;
pub(crate) mod error;
pub(crate) mod fault;
pub(crate) mod features;
#[cfg(test)]
mod fuzz;
pub(crate) mod hooks;
pub(crate) mod idmap;
pub(crate) mod lsm;
pub(crate) mod mountinfo;
pub(crate) mod namespaces;
pub(crate) mod notify;
pub(crate) mod process;
pub(crate) mod rdt;
pub(crate) mod reap;
pub(crate) mod rlimits;
pub(crate) mod rootfs;
pub(crate) mod seccomp;
pub(crate) mod security;
pub(crate) mod spec;
pub(crate) mod state;
pub(crate) mod sys;
pub(crate) mod sysctl;

// ----- The public face -------------------------------------------------------------------
// Everything the shim and the runrs CLI use, re-exported here (README "Layout");
// integration/scripts/check-structure.sh keeps both to these names. The modules above are
// the library's inside.

// Containers and their verbs (create, start, exec, kill, pause/resume, update, stats,
// checkpoint, restore, delete are methods of Container or functions here).
pub use container::{
    create, create_with, list, parse_signal, process_handle, restore, signal_pidfd, ConsoleSocket,
    Container, CreateExtras, CreateOptions, ExecExtras, ExecOptions, RestoreOptions, StartOptions,
    Started,
};
// Processes: stdio, who reaps, the console, exit statuses.
pub use process::console::{recv_master, resize as resize_console};
pub use process::spawn::{InitStdio, Reap};
pub use reap::{exit_code, hold_spawns, set_child_waiter, spawn as spawn_command, ChildWaiter};
// Checkpoint and restore.
pub use criu::{parse_namespaces, parse_page_server, CheckpointOptions, CriuError};
// Cgroup events and statistics.
pub use cgroups::oom::{OomEvent, OomWatcher};
pub use cgroups::stats::{BlkioEntry, MemoryEntry, Stats};
pub use cgroups::{systemd_driver_unavailable, Mode as CgroupMode, DEFAULT_ROOT as CGROUP_ROOT};
// Bundles, configs, state, readiness, features.
pub use bundle::{mount_all, unmount_all, RootfsMount};
pub use features::{features, json as features_json, pretty as features_pretty};
pub use notify::{HostSocket, DEFAULT_READY_TIMEOUT};
pub use spec::{load as load_spec, new_ns};
pub use state::{now_rfc3339, ContainerState, OciState, Status};
// The process entry points (init, the criu helper, the D-Bus helper) and errors.
pub use cgroups::systemd::link_dbus as link_systemd_dbus;
pub use cgroups::systemd::outer_uid;
pub use entry::maybe_run;
pub use error::{chain, Error, Kind};
pub use namespaces::running_in_userns;

/// For runtime-core's own integration tests (tests/cli, tests/security) only: internals
/// they check directly. Not part of the face.
#[doc(hidden)]
pub mod testing {
    pub use crate::capabilities::NAMES as CAPABILITY_NAMES;
    pub use crate::cgroups::devices::{bpf, with_defaults, Policy};
    pub use crate::lsm::{apparmor_enabled, selinux_enabled};

    /// StopUnit through `helper` (the systemd driver's D-Bus helper), with `env` added
    /// to the helper's environment.
    pub fn systemd_stop_through(
        helper: &std::path::Path,
        env: &[(&str, &str)],
        unit: &str,
    ) -> Result<(), String> {
        use crate::cgroups::systemd::{through_helper, Call, Request};
        let request = Request {
            user: None,
            call: Call::Stop { name: unit.into() },
        };
        through_helper(helper, env, &request).map(drop)
    }
}

/// The kernel-boundary helpers the shim's own syscall module and the CLI use.
pub mod host {
    pub use crate::sys::term::winsize;
    pub use crate::sys::{
        adopt_inherited_fd, c, fd_is_open, isatty, kill, pidfd_open, poll_one, real_ids,
        set_child_subreaper, wait_any_nohang, SysError,
    };
}
