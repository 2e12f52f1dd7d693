//! `update`: new resource limits for a live container, applied to its cgroups and
//! persisted into the state's config (like runc), so `state` and later updates see
//! them. The shim's Update and the CLI's `runrs update` both come here.

use oci_spec::runtime::{LinuxResources, Spec};

use super::Container;
use crate::cgroups::devices::{self, Policy};
use crate::cgroups::limits::{self, merge::merge};
use crate::cgroups::{systemd, Hierarchies};
use crate::error::Error;
use crate::state::Status;

impl Container {
    /// Change the container's resources. Every field `patch` sets replaces the stored
    /// value (0 means "not set", as in runc); the merged resources are applied to the
    /// cgroups and saved in state.json, so `state` and later updates see them. A device
    /// list in `patch` replaces the device policy (the default allow list is kept).
    /// When writing fails, the previous resources are written back and nothing is
    /// saved.
    pub fn update(&mut self, patch: &LinuxResources) -> Result<(), Error> {
        let status = self.status();
        if matches!(status, Status::Stopped | Status::Creating) {
            return Err(Error::WrongState {
                id: self.id().to_string(),
                status,
                action: "update",
                want: "created, running or paused",
            });
        }
        let hier = Hierarchies::host()?;
        let old = self.resources();
        let new = merge(&old, patch);
        let cg = &self.state.cgroup;
        // Rootless cgroups have no device filter (see limits::apply_spec).
        let policy = match patch.devices() {
            Some(_) if !cg.rootless => Some(device_policy(&self.state.config, &new)?),
            _ => None,
        };
        // systemd driver: the unit's properties first (systemd rewrites the cgroup
        // files from them), then the exact values through cgroupfs below.
        let proc_devices = match cg.systemd {
            Some(_) => std::fs::read_to_string("/proc/devices").unwrap_or_default(),
            None => String::new(),
        };
        if let Some(unit) = &cg.systemd {
            let props = systemd::properties(hier.mode, &new, policy.as_ref(), &proc_devices);
            systemd::set_properties(unit, props)?;
        }
        if let Err(e) = limits::apply(&hier, cg, &new, policy.as_ref(), true) {
            let old_policy = match policy {
                Some(_) => device_policy(&self.state.config, &old).ok(),
                None => None,
            };
            if let Some(unit) = &cg.systemd {
                let props =
                    systemd::properties(hier.mode, &old, old_policy.as_ref(), &proc_devices);
                if let Err(back) = systemd::set_properties(unit, props) {
                    tracing::warn!(
                        "restoring the unit's properties after a failed update failed too: {back}"
                    );
                }
            }
            if let Err(back) = limits::apply(&hier, cg, &old, old_policy.as_ref(), false) {
                tracing::warn!(
                    "restoring the previous resources after a failed update failed too: {}",
                    crate::error::chain(&back)
                );
            }
            return Err(e.into());
        }
        let linux = self
            .state
            .config
            .linux_mut()
            .get_or_insert_with(Default::default);
        linux.set_resources(Some(new));
        self.save()
    }

    /// The resources as last applied (the spec's, with updates).
    pub fn resources(&self) -> LinuxResources {
        self.state
            .config
            .linux()
            .as_ref()
            .and_then(|l| l.resources().clone())
            .unwrap_or_default()
    }
}

/// The device policy of `spec` with `res`'s device list.
fn device_policy(spec: &Spec, res: &LinuxResources) -> Result<Policy, Error> {
    let own: Vec<&std::path::Path> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
        .map(|d| d.path().as_path())
        .collect();
    let rules = devices::with_defaults(res.devices().as_deref().unwrap_or_default(), &own)?;
    Ok(Policy::from_rules(&rules))
}
