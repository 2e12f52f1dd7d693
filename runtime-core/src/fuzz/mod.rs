//! Fuzz targets of runtime-core (issue 17), run by plain `cargo test` with
//! `runrs-fuzzkit`: each replays its seed corpus in `runtime-core/fuzz/corpus/<target>/`
//! and then mutates it, for 1 s in the unit stage and `RUNRS_FUZZ_SECS` per target in the
//! fuzz stage (`integration/scripts/fuzz.sh`). Each asserts "no panic" and, where cheap,
//! a property of the values that come out (round trips, invariants later code relies on).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::socket::{send, shutdown, MsgFlags, Shutdown};
use runrs_fuzzkit::Fuzz;

mod config;
mod criu;
mod mounts;
mod signal;
mod sync;

/// The committed seed corpus of target `name`.
fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(name)
}

/// One seed input of target `name`.
fn seed(name: &str, file: &str) -> Vec<u8> {
    std::fs::read(corpus(name).join(file)).expect("a committed seed input")
}

/// The target `name` with its committed seed corpus.
fn target(name: &str) -> Fuzz {
    Fuzz::new(name, corpus(name))
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
    shutdown(peer.as_raw_fd(), Shutdown::Write).expect("shutdown");
    (ours, peer, sent)
}

/// `v` with its capability sets sorted: oci-spec keeps them in HashSets, so their JSON
/// order differs from one value to the next (the only unordered part of these messages).
fn canonical(mut v: serde_json::Value) -> serde_json::Value {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if let (true, serde_json::Value::Object(sets)) = (k == "capabilities", &mut *x)
                    {
                        for set in sets.values_mut() {
                            if let serde_json::Value::Array(a) = set {
                                a.sort_by_key(|e| e.to_string());
                            }
                        }
                    }
                    walk(x);
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}
