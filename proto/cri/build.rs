//! Compile the vendored CRI api.proto with protox (pure Rust, no system protoc) and
//! generate prost types and a tonic client (no server).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = "../vendor/cri-api/api.proto";
    println!("cargo:rerun-if-changed={file}");
    let fds = protox::compile([file], ["../vendor/cri-api"])?;
    tonic_build::configure()
        .build_server(false)
        .compile_fds(fds)?;
    Ok(())
}
