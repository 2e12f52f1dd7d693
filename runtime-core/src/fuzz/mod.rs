//! Fuzz targets of runtime-core (issue 17), run by plain `cargo test` with
//! `runrs-fuzzkit`: each replays its seed corpus in `runtime-core/fuzz/corpus/<target>/`
//! and then mutates it, for 1 s in the unit stage and `RUNRS_FUZZ_SECS` per target in the
//! fuzz stage (`integration/scripts/fuzz.sh`). Each asserts "no panic" and, where cheap,
//! a property of the values that come out (round trips, invariants later code relies on).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::sys::socket::{send, shutdown, MsgFlags, Shutdown};
use runrs_fuzzkit::Fuzz;

mod config;
mod criu;
mod mounts;
mod signal;
mod sync;

/// The target `name` with its committed seed corpus.
fn target(name: &str) -> Fuzz {
    Fuzz::new(
        name,
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(name),
    )
}

/// A seqpacket pair whose reading end (`.0`) already holds the first `.2` of `packets`
/// (as many as fit in the socket buffer) followed by end-of-file: what a peer that sent
/// them and shut down its sending side leaves. The peer end (`.1`) stays open so that
/// answers sent to it do not fail with EPIPE.
fn queued(packets: &[&[u8]]) -> (OwnedFd, OwnedFd, usize) {
    let (ours, peer) = crate::sys::seqpacket_pair().expect("socketpair");
    let mut sent = 0;
    for p in packets {
        if send(peer.as_raw_fd(), p, MsgFlags::MSG_DONTWAIT).is_err() {
            break;
        }
        sent += 1;
    }
    shutdown(peer.as_fd().as_raw_fd(), Shutdown::Write).expect("shutdown");
    (ours, peer, sent)
}
