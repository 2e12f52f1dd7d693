//! Compile the vendored .proto files with protox (pure Rust, no system protoc) and
//! generate prost types.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "vendor/containerd/runctypes.proto",
        "vendor/containerd/runtimeoptions.proto",
        "vendor/criu/rpc.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["vendor"])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
