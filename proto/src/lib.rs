//! Vendored protocol definitions compiled with prost (see `vendor/`, each file names
//! its origin): containerd's legacy runc task options, the CRI runtime options and
//! CRIU's RPC protocol.

#![allow(missing_docs)]
#![allow(clippy::all)]

/// `containerd.linux.runc`: CreateOptions / CheckpointOptions sent to runtimes that are
/// not named io.containerd.runc.*.
pub mod runctypes {
    include!(concat!(env!("OUT_DIR"), "/containerd.linux.runc.rs"));
}

/// `runtimeoptions.v1.Options`: what containerd's CRI plugin sends for such runtimes.
pub mod runtimeoptions {
    include!(concat!(env!("OUT_DIR"), "/runtimeoptions.v1.rs"));
}

/// CRIU's RPC protocol (`criu swrk`): `CriuReq`, `CriuResp`, `CriuOpts`, … The .proto
/// has no package, so prost writes it to `_.rs`.
pub mod criu {
    include!(concat!(env!("OUT_DIR"), "/_.rs"));
}
