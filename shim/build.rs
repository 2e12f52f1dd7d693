//! Links the shim binary with `cold.ld`: code it links but does not run is grouped apart
//! from the code it runs (see the comment in that file).

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=cold.ld");
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{dir}/cold.ld");
}
