//! The Kubernetes Container Runtime Interface, `runtime.v1` (see
//! `../vendor/cri-api/api.proto` for its origin): prost messages and the tonic clients
//! `RuntimeServiceClient` and `ImageServiceClient`. Generated code only.

#![allow(missing_docs)]
#![allow(clippy::all)]

/// `runtime.v1`: every CRI message, and the `runtime_service_client` and
/// `image_service_client` modules.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/runtime.v1.rs"));
}
