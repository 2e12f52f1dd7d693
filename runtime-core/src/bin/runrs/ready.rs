//! sd_notify options of `runrs start` and `runrs run`: like runc, the runtime's own
//! `NOTIFY_SOCKET` opts the container in (create mounts a socket into it, start waits
//! for READY=1 and relays to that socket). Unlike runc the wait is bounded.

use std::time::Duration;

use runtime_core::StartOptions;
use runtime_core::{HostSocket, DEFAULT_READY_TIMEOUT};

/// `--ready-timeout`.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct ReadyArgs {
    /// With NOTIFY_SOCKET set: seconds to wait for the container's READY=1 (0 waits
    /// as long as the container lives, as runc does).
    #[arg(long = "ready-timeout", value_name = "SECONDS", default_value_t = DEFAULT_READY_TIMEOUT.as_secs())]
    pub ready_timeout: u64,
}

impl ReadyArgs {
    /// Start options from the environment and the flag.
    pub fn start_options(self) -> anyhow::Result<StartOptions> {
        Ok(StartOptions {
            notify_host: HostSocket::from_env()?,
            ready_timeout: (self.ready_timeout > 0)
                .then(|| Duration::from_secs(self.ready_timeout)),
        })
    }
}

/// Whether create should give the container a notify socket (NOTIFY_SOCKET is set).
pub fn wanted() -> anyhow::Result<bool> {
    Ok(HostSocket::from_env()?.is_some())
}
