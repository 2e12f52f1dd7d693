//! runtime-core: the runrs container runtime as a synchronous library. An OCI bundle
//! becomes a running container: namespaces, rootfs and mounts, devices, cgroups,
//! capabilities, rlimits, hooks; created by re-executing the runrs binary into a
//! single-threaded init (see DESIGN.md). Also home of the `runrs` CLI.

pub mod bundle;
pub mod capabilities;
pub mod cgroups;
pub mod container;
pub mod criu;
pub mod entry;
pub mod error;
pub(crate) mod fault;
pub mod features;
#[cfg(test)]
mod fuzz;
pub(crate) mod hooks;
pub(crate) mod idmap;
pub mod lsm;
pub(crate) mod namespaces;
pub mod notify;
pub mod process;
pub mod rdt;
pub mod reap;
pub(crate) mod rlimits;
pub(crate) mod rootfs;
pub(crate) mod seccomp;
pub(crate) mod security;
pub mod spec;
pub mod state;
pub mod sys;
pub(crate) mod sysctl;

pub use container::{Container, CreateOptions, StartOptions, Started};
pub use error::{Error, Kind};
pub use namespaces::running_in_userns;
pub use state::{OciState, Status};
