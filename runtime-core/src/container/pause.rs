//! `pause` / `resume`: freeze and thaw every process of the container (the v1 freezer
//! controller, or cgroup.freeze on cgroup v2). The status reads "paused" while frozen.

use super::Container;
use crate::error::Error;
use crate::state::Status;

impl Container {
    /// Freeze every process of the container. It must be running.
    pub fn pause(&self) -> Result<(), Error> {
        let status = self.status();
        if status != Status::Running {
            return Err(Error::WrongState {
                id: self.id().to_string(),
                status,
                action: "pause",
                want: "running",
            });
        }
        Ok(crate::cgroups::freeze(&self.state.cgroup, true)?)
    }

    /// Thaw a paused container.
    pub fn resume(&self) -> Result<(), Error> {
        let status = self.status();
        if status != Status::Paused {
            return Err(Error::WrongState {
                id: self.id().to_string(),
                status,
                action: "resume",
                want: "paused",
            });
        }
        Ok(crate::cgroups::freeze(&self.state.cgroup, false)?)
    }
}
