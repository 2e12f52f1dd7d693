//! `containerd-shim-runrs-v2 -info`: containerd 2.x asks a shim what its runtime
//! supports (the OCI features document) before creating containers that need
//! optional features (idmapped mounts). stdin carries the runtime options; stdout gets a
//! `containerd.types.RuntimeInfo` protobuf.

use std::io::{Read, Write};

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::types::introspection::{RuntimeInfo, RuntimeVersion};

/// Type URL of the OCI features document.
const FEATURES_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

/// Print the RuntimeInfo for `-info`.
pub fn run() -> std::io::Result<()> {
    let mut input = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut input);
    let options = Any::parse_from_bytes(&input)
        .ok()
        .filter(|a| !a.type_url.is_empty());
    let features = runtime_core::features();
    let info = RuntimeInfo {
        name: "io.containerd.runrs.v2".into(),
        version: Some(RuntimeVersion {
            version: env!("CARGO_PKG_VERSION").into(),
            revision: String::new(),
            ..Default::default()
        })
        .into(),
        options: options.into(),
        features: Some(Any {
            type_url: FEATURES_TYPE.into(),
            value: runtime_core::features_json(),
            ..Default::default()
        })
        .into(),
        annotations: features
            .annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        ..Default::default()
    };
    let mut out = std::io::stdout();
    out.write_all(&info.write_to_bytes().map_err(std::io::Error::other)?)?;
    out.flush()
}
