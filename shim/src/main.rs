//! containerd-shim-runrs-v2 (work in progress).

fn main() {}
