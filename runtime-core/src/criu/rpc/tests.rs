use super::*;

#[test]
fn versions_compare_and_print() {
    let v = |major, minor, sublevel| Version {
        major,
        minor,
        sublevel,
    };
    assert!(v(4, 1, 1) > MIN_VERSION);
    assert!(v(3, 15, 9) < MIN_VERSION);
    assert_eq!(v(4, 1, 1).to_string(), "4.1.1");
    assert_eq!(v(3, 16, 0).to_string(), "3.16");
}

#[test]
#[allow(clippy::disallowed_methods, reason = "test scratch directory")]
fn log_errors_skip_noise() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("dump.log");
    std::fs::write(
        &log,
        "(00.03) Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted\n\
         (00.10) Info something\n\
         Error (criu/util.c:641): execvp(\"iptables-save\", ...) failed: No such file or directory\n\
         (00.18) Error (criu/sk-inet.c:199): inet: Connected TCP socket, consider using --tcp-established option.\n\
         (00.19) Error (criu/cr-dump.c:1681): Dump files (pid: 7) failed with -1\n\
         (00.20) Error (criu/cr-dump.c:2111): Dumping FAILED.\n",
    )
    .expect("write");
    assert_eq!(
        log_errors(&log),
        vec![
            "inet: Connected TCP socket, consider using --tcp-established option.".to_string(),
            "Dump files (pid: 7) failed with -1".to_string()
        ]
    );
    assert!(log_errors(&dir.path().join("none")).is_empty());
}

#[test]
fn missing_binary_is_named() {
    let e = find_binary(Path::new("runrs-no-such-criu")).expect_err("missing");
    assert!(e.to_string().contains("criu not found"), "{e}");
    assert!(e.to_string().contains("not in PATH"), "{e}");
    let e = find_binary(Path::new("/nonexistent/criu")).expect_err("missing");
    assert!(e.to_string().contains("/nonexistent/criu"), "{e}");
}

#[test]
fn packets_roundtrip_with_size_peek() {
    let (a, b) = sys::seqpacket_pair().expect("pair");
    let req = CriuReq {
        r#type: CriuReqType::Dump as i32,
        notify_success: Some(true),
        ..Default::default()
    };
    let bytes = req.encode_to_vec();
    nix::sys::socket::send(a.as_raw_fd(), &bytes, MsgFlags::empty()).expect("send");
    let (got, fds) = recv_packet(b.as_fd()).expect("recv").expect("packet");
    assert!(fds.is_empty());
    assert_eq!(CriuReq::decode(got.as_slice()).expect("decode"), req);
    drop(a);
    assert!(recv_packet(b.as_fd()).expect("recv").is_none());
}
