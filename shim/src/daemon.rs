//! The shim daemon: a current-thread tokio runtime (runtime-core work runs on a small
//! blocking pool), the single reaper, the event forwarder and the ttrpc server on the
//! socket `start` bound. It exits when Shutdown finds no container left, after the
//! queued events are sent.

use std::sync::Arc;
use std::time::Duration;

use crate::flags::Flags;
use containerd_shim_protos::shim_async::create_task;
use containerd_shim_protos::ttrpc::r#async::transport::Listener;
use containerd_shim_protos::ttrpc::r#async::Server;
use tokio::sync::Notify;

use crate::events::Events;
use crate::monitor::Monitor;
use crate::reaper::Reaper;
use crate::service::Service;
use crate::start::LISTEN_FD_ENV;

/// Run the daemon until shutdown.
pub fn run(flags: Flags) -> Result<(), String> {
    // One malloc arena: otherwise the first blocking-pool thread gets an arena of its
    // own, which stays resident after the thread exits (-36 KiB anonymous per shim,
    // measured). Two threads at most allocate at once: the shared lock costs nothing.
    // No other thread exists yet.
    crate::sys::single_malloc_arena();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(8)
        .thread_keep_alive(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("start runtime: {e}"))?;
    rt.block_on(serve(flags))
}

async fn serve(flags: Flags) -> Result<(), String> {
    crate::logging::init(flags.debug);
    if let Err(e) = crate::sys::set_child_subreaper() {
        tracing::warn!("{}", runtime_core::chain(&e));
    }
    let reaper = Reaper::start().map_err(|e| format!("install SIGCHLD handler: {e}"))?;
    let ttrpc_address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
    let events = Events::start(ttrpc_address, flags.namespace.clone());
    let shutdown = Arc::new(Notify::new());
    let monitor = Monitor::start(events.clone());
    let service = Arc::new(Service::new(
        flags.namespace.clone(),
        monitor,
        reaper,
        shutdown.clone(),
    ));

    let (listener, socket_path) = match std::env::var(LISTEN_FD_ENV) {
        Ok(fd) => {
            let fd: i32 = fd.parse().map_err(|_| format!("bad {LISTEN_FD_ENV}"))?;
            // `start` had to clear FD_CLOEXEC to hand it over; adopting sets it again, or
            // every process the shim spawns (hooks, criu) holds the listener, and after a
            // kill -9 of the shim its socket still accepts connections, so `delete`
            // takes it for a live shim of the group and leaves it behind.
            let l = crate::sys::adopt_listener(fd)
                .map_err(|e| format!("listener: {}", runtime_core::chain(&e)))?;
            let path = l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| p.to_path_buf()));
            (l, path)
        }
        Err(_) => {
            let addr = flags
                .socket
                .strip_prefix("unix://")
                .unwrap_or(&flags.socket)
                .to_string();
            if addr.is_empty() {
                return Err("no listening socket: run through `start`".into());
            }
            let l = std::os::unix::net::UnixListener::bind(&addr)
                .map_err(|e| format!("bind {addr}: {e}"))?;
            (l, Some(addr.into()))
        }
    };
    std::env::remove_var(LISTEN_FD_ENV);
    let listener = Listener::try_from(listener).map_err(|e| format!("listener: {e}"))?;
    let mut server = Server::new()
        .add_listener(listener)
        .register_service(create_task(service));
    server
        .start()
        .await
        .map_err(|e| format!("start ttrpc server: {e:?}"))?;
    tracing::info!("shim started for namespace {}", flags.namespace);

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("install SIGTERM handler: {e}"))?;
    tokio::select! {
        _ = shutdown.notified() => {}
        _ = term.recv() => tracing::info!("SIGTERM"),
    }
    // Let the Shutdown reply go out, then stop serving.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let _ = server.shutdown().await;
    events.flush(Duration::from_secs(2)).await;
    if let Some(p) = socket_path {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}
