//! Whether the init's exit ends the whole container. A container with a pid namespace
//! of its own loses every process with its init (the kernel kills them); one that
//! shares a pid namespace (the host's, a pod's) keeps them, and containerd-shim-runc-v2
//! then kills what is left of the cgroup, so the shim does too.

use std::path::Path;

use oci_spec::runtime::LinuxNamespaceType;

/// True when the shim must kill the rest of the container once its init exits: the
/// created container's namespaces say so, or, for a container still to be restored
/// (no runtime-core container yet), the bundle's config.json does (an unreadable one
/// counts as "shared", the safe side).
pub fn kill_all_on_exit(core: Option<&runtime_core::Container>, bundle: &Path) -> bool {
    match core {
        Some(c) => !c.own_pid_ns(),
        None => !runtime_core::load_spec(bundle)
            .map(|s| runtime_core::new_ns(&s, LinuxNamespaceType::Pid))
            .unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_bundle_means_kill_all() {
        assert!(kill_all_on_exit(
            None,
            Path::new("/nonexistent-runrs-bundle")
        ));
    }
}
