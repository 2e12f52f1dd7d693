//! CRIU: the `criu swrk` RPC as criu could answer it, and the JSON that comes back from
//! the restore helper and from a checkpoint's image directory.
//!
//! `fuzz_criu_rpc` plays criu: the input's packets (each a 2-byte little-endian length
//! and that many bytes, normally an encoded `CriuResp`) wait on a real socket, and
//! [`Swrk::call`] asks a request of it. Byte 0 picks the request type, byte 1 which
//! notifications the handler fails. Properties: the outcome is what a model of the
//! protocol says (a malformed answer or an answer to another request is a protocol
//! error, a failed answer is `Failed`, a failing handler's error wins), every NOTIFY
//! consumed got exactly one acknowledgement, and a decoded answer encodes and decodes to
//! itself. The input as text also goes through the log scan ([`errors_in`]).
//!
//! `fuzz_criu_json`: one packet through [`recv_packet`], decoded as each JSON message
//! of the restore helper's protocol and each file runrs reads from an image directory;
//! whatever decodes serializes and decodes to itself.

use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{recv, MsgFlags};
use prost::Message;
use runrs_fuzzkit::{shape, sig};
use runrs_proto::criu::{CriuReq, CriuReqType, CriuResp};

use crate::criu::helper::{HelperConfig, Reply};
use crate::criu::image::{inherit_pipes, Meta};
use crate::criu::rpc::{errors_in, recv_packet, request, Swrk};
use crate::criu::CriuError;

const REQUESTS: &[CriuReqType] = &[
    CriuReqType::Dump,
    CriuReqType::Restore,
    CriuReqType::Check,
    CriuReqType::PreDump,
    CriuReqType::FeatureCheck,
    CriuReqType::Version,
];

/// Length-prefixed frames; a short last frame is what is left.
fn frames(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 2 && out.len() < 64 {
        let n = usize::from(u16::from_le_bytes([data[0], data[1]]));
        let rest = &data[2..];
        let n = n.min(rest.len());
        out.push(&rest[..n]);
        data = &rest[n..];
    }
    out
}

/// How the model expects `call` to end.
#[derive(Debug)]
enum End {
    Ok(Box<CriuResp>),
    Protocol,
    Failed,
    Handler,
}

fn model(req: i32, packets: &[&[u8]], fail: u8) -> (End, usize) {
    let mut notifies = 0;
    let mut handler_failed = false;
    for p in packets {
        if p.is_empty() {
            break;
        }
        let Ok(r) = CriuResp::decode(*p) else {
            return (End::Protocol, notifies);
        };
        if r.r#type == CriuReqType::Notify as i32 {
            if !handler_failed && notifies < 8 && fail & (1 << notifies) != 0 {
                handler_failed = true;
            }
            notifies += 1;
            continue;
        }
        let end = if handler_failed {
            End::Handler
        } else if r.r#type != req {
            End::Protocol
        } else if !r.success {
            End::Failed
        } else {
            End::Ok(Box::new(r))
        };
        return (end, notifies);
    }
    let end = if handler_failed {
        End::Handler
    } else {
        End::Failed
    };
    (end, notifies)
}

fn check_rpc(data: &[u8]) -> u64 {
    if data.len() < 2 {
        return 0;
    }
    let req = request(REQUESTS[usize::from(data[0]) % REQUESTS.len()]);
    let fail = data[1];
    let packets = frames(&data[2..]);
    let (sock, peer, sent) = super::queued(&packets);
    let (want, notifies) = model(req.r#type, &packets[..sent], fail);
    let mut w = Swrk::fake(sock);
    let mut seen = 0usize;
    let got = w.call(&req, None, &mut |n| {
        seen += 1;
        drop(n.fds);
        if seen <= 8 && fail & (1 << (seen - 1)) != 0 {
            Err(CriuError::Notify("the handler failed".into()))
        } else {
            Ok(())
        }
    });
    let outcome = match (&got, &want) {
        (Ok(resp), End::Ok(r)) => {
            assert_eq!(resp, &**r);
            let again = CriuResp::decode(resp.encode_to_vec().as_slice()).expect("re-decode");
            assert_eq!(&again, resp, "CriuResp round trip");
            0
        }
        (Err(CriuError::Protocol(m)), End::Protocol) => shape(m),
        (Err(CriuError::Failed { message, .. }), End::Failed) => {
            assert!(!message.is_empty());
            shape(message)
        }
        (Err(CriuError::Notify(_)), End::Handler) => 1,
        (got, want) => panic!("call gave {got:?}, the model {want:?}"),
    };
    // The request, then one NOTIFY answer per notification read.
    let mut answers = 0;
    let mut buf = vec![0u8; 4096];
    while let Ok(n) = recv(peer.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
        let r = CriuReq::decode(&buf[..n]).expect("the runtime sends valid requests");
        if answers == 0 {
            assert_eq!(r.r#type, req.r#type, "the request comes first");
        } else {
            assert_eq!(r.r#type, CriuReqType::Notify as i32);
            assert!(r.notify_success.is_some());
        }
        answers += 1;
    }
    assert_eq!(answers, 1 + notifies, "one answer per notification");
    drop(w);
    let errors = errors_in(&String::from_utf8_lossy(data));
    assert!(errors.len() <= 2 && errors.iter().all(|e| !e.is_empty()));
    sig(&(notifies.min(4), outcome, errors.len()))
}

#[test]
fn fuzz_criu_rpc() {
    super::target("criu_rpc")
        .dict(&[
            "\x08\x06\x10\x01",
            "\x08\x01\x10\x00",
            "Error (criu/x.c:1): ",
        ])
        .max_len(16 * 1024)
        .run(check_rpc);
}

/// Decode `bytes` as `T`; if it decodes, its JSON decodes to the same JSON.
fn json_roundtrip<T>(bytes: &[u8]) -> Option<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let v: T = serde_json::from_slice(bytes).ok()?;
    let first = serde_json::to_value(&v).expect("serializes");
    let again: T = serde_json::from_value(first.clone()).expect("its JSON decodes");
    assert_eq!(
        super::canonical(serde_json::to_value(&again).expect("serializes")),
        super::canonical(first),
        "{}",
        std::any::type_name::<T>()
    );
    Some(v)
}

fn check_json(data: &[u8]) -> u64 {
    let (sock, _peer, sent) = super::queued(&[data]);
    let got = recv_packet(sock.as_fd()).expect("recv_packet");
    let bytes = match got {
        Some((bytes, fds)) => {
            assert!(fds.is_empty());
            assert_eq!(bytes, data, "a packet comes out whole");
            bytes
        }
        None => {
            assert!(data.is_empty() || sent == 0, "a packet was lost");
            return 1;
        }
    };
    // Where decoding a helper config stops (the richest of these messages).
    let stop = serde_json::from_slice::<HelperConfig>(&bytes)
        .err()
        .map(|e| shape(&e.to_string()));
    let config = json_roundtrip::<HelperConfig>(&bytes).is_some();
    let reply = json_roundtrip::<Reply>(&bytes).is_some();
    let meta = json_roundtrip::<Meta>(&bytes).is_some();
    let pipes = json_roundtrip::<Vec<String>>(&bytes).map(|d| {
        let p = inherit_pipes(&d);
        assert!(p.len() <= 3);
        for (key, fd) in &p {
            assert!(key.contains("pipe:") && (0..3).contains(fd));
            assert_eq!(&d[*fd as usize], key);
        }
        p.len()
    });
    sig(&(config, reply, meta, pipes, stop))
}

#[test]
fn fuzz_criu_json() {
    super::target("criu_json")
        .dict(&[
            "{\"ready\":",
            "{\"error\":",
            "\"images\":",
            "\"work\":",
            "\"passed\":",
            "\"rootfs\":",
            "\"prepare\":",
            "\"dest\":",
            "\"bind\":",
            "\"dir\":",
            "\"criu\":",
            "\"image_dir\":",
            "\"work_dir\":",
            "\"pipe:[123]\"",
            "\"/dev/null\"",
            "\"version\":",
            "\"config\":",
            "\"externals\":",
            "null",
        ])
        .max_len(32 * 1024)
        .run(check_json);
}

/// The seeds that stand for valid messages and files still decode.
#[test]
fn seeds_decode() {
    let seed = |f: &str| super::seed("criu_json", f);
    serde_json::from_slice::<HelperConfig>(&seed("helper-config.json")).expect("HelperConfig");
    serde_json::from_slice::<Reply>(&seed("helper-ready.json")).expect("Reply");
    serde_json::from_slice::<Meta>(&seed("runrs-checkpoint.json")).expect("Meta");
    let rpc = super::seed("criu_rpc", "restore-setup-namespaces");
    let packets = frames(&rpc[2..]);
    let (end, notifies) = model(CriuReqType::Restore as i32, &packets, 0);
    assert!(matches!(end, End::Ok(_)) && notifies == 3, "{end:?}");
}
