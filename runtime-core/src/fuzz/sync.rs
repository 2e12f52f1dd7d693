//! The init sync protocol ([`crate::process::sync`]): packets as a peer could send them
//! (a flag byte, 1 = last, then a piece of JSON) on a real SOCK_SEQPACKET pair, read
//! with [`sync::recv`] until it fails. An input is a list of packets separated by 0x1e
//! (ASCII record separator), each starting with its flag byte.
//!
//! Properties: `recv` gives exactly what decoding the reassembled bodies gives (a model
//! of the framing), and every message it returns goes through `send` + `recv` again
//! (also split into packets when large) to an equal message.

use std::os::fd::AsFd;

use runrs_fuzzkit::{shape, sig};

use crate::process::sync::{self, Msg, SyncError};

/// What the packet framing should give: one result per message (bodies up to and
/// including a packet flagged last), then end-of-file.
fn model(packets: &[&[u8]]) -> Vec<Result<serde_json::Value, ()>> {
    let mut out = Vec::new();
    let mut body = Vec::new();
    for p in packets {
        if p.is_empty() {
            // A zero-length packet reads as end-of-file.
            return out;
        }
        body.extend_from_slice(&p[1..]);
        if p[0] == 1 {
            out.push(
                serde_json::from_slice::<Msg>(&body)
                    .map(|m| {
                        super::canonical(serde_json::to_value(&m).expect("a message serializes"))
                    })
                    .map_err(|_| ()),
            );
            body.clear();
        }
    }
    out
}

fn check(data: &[u8]) -> u64 {
    // Packets the size of the protocol's buffer at most (a longer one would be cut by
    // the kernel; the sender never makes one).
    let packets: Vec<&[u8]> = data
        .split(|&b| b == 0x1e)
        .map(|p| &p[..p.len().min(32 * 1024 + 1)])
        .take(64)
        .collect();
    let (sock, _peer, sent) = super::queued(&packets);
    let want = model(&packets[..sent]);
    let mut s = 0u64;
    for (i, expected) in want.iter().enumerate() {
        match (sync::recv(sock.as_fd()), expected) {
            (Ok((msg, fds)), Ok(value)) => {
                assert!(fds.is_empty());
                let got =
                    super::canonical(serde_json::to_value(&msg).expect("a message serializes"));
                assert_eq!(&got, value, "message {i}");
                roundtrip(&msg);
                s = s.wrapping_mul(31).wrapping_add(sig(&variant(&got)));
            }
            (Err(SyncError::Decode(e)), Err(())) => {
                s = s.wrapping_mul(31).wrapping_add(shape(&e.to_string()));
            }
            (got, expected) => panic!("message {i}: recv gave {got:?}, the model {expected:?}"),
        }
    }
    match sync::recv(sock.as_fd()) {
        Err(SyncError::Closed) => {}
        other => panic!(
            "after {} messages: {other:?} instead of end-of-file",
            want.len()
        ),
    }
    s | 1
}

/// The message's `type`, for the signature.
fn variant(v: &serde_json::Value) -> String {
    v.get("type")
        .and_then(|t| t.as_str())
        .unwrap_or_default()
        .to_string()
}

/// `send` then `recv` on a fresh pair gives the same message.
fn roundtrip(msg: &Msg) {
    let (a, b) = crate::sys::seqpacket_pair().expect("socketpair");
    let want = super::canonical(serde_json::to_value(msg).expect("a message serializes"));
    let body_len = serde_json::to_vec(msg).expect("serializes").len();
    // The socket buffer holds a few packets; larger messages need a reader meanwhile.
    let got = if body_len < 16 * 1024 {
        sync::send(a.as_fd(), msg, &[]).expect("send");
        sync::recv(b.as_fd()).expect("recv").0
    } else {
        std::thread::scope(|t| {
            t.spawn(|| sync::send(a.as_fd(), msg, &[]).expect("send"));
            sync::recv(b.as_fd()).expect("recv").0
        })
    };
    assert_eq!(
        super::canonical(serde_json::to_value(&got).expect("serializes")),
        want,
        "send/recv"
    );
}

#[test]
fn fuzz_init_sync() {
    super::target("init_sync")
        .dict(&[
            "\x1e\x01",
            "\x1e\x00",
            "{\"type\":\"",
            "config",
            "map_request",
            "map_done",
            "child",
            "hooks",
            "hooks_done",
            "ready",
            "seccomp_fd",
            "error",
            "log",
            "\"pid\":",
            "\"message\":",
            "\"level\":",
            "\"spec\":",
            "\"namespaces\":",
            "\"cgroup\":",
            "\\u0000",
            "\\ud800",
        ])
        .max_len(64 * 1024)
        .run(check);
}

/// The seeds that stand for a valid exchange still decode (a format change would
/// otherwise turn them silently into junk).
#[test]
fn seeds_decode() {
    for (file, types) in [
        ("config-two-packets", &["config"][..]),
        (
            "userns-handshake",
            &["map_request", "map_done", "child"][..],
        ),
        ("split-message", &["error", "ready"][..]),
    ] {
        let data = super::seed("init_sync", file);
        let packets: Vec<&[u8]> = data.split(|&b| b == 0x1e).collect();
        let got: Vec<String> = model(&packets)
            .iter()
            .map(|m| m.as_ref().map(variant).unwrap_or_default())
            .collect();
        assert_eq!(got, types, "{file}");
    }
}
