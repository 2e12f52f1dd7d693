//! The systemd driver's D-Bus helper: a binary that does not link the D-Bus client (the
//! shim) sends each unit request to `runrs` as JSON on its stdin and reads the answer
//! from its stdout. The VM stage (integration/systemd) runs it against a real systemd
//! through the shim; these check the protocol and its errors on any host.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use runtime_core::testing::systemd_stop_through;

use crate::common::RUNRS;

#[test]
fn the_answer_comes_back_from_the_helper() {
    // No bus at this address: the answer is the client's own connect error (or, on a
    // host with systemd's private socket, the stop of a unit that does not exist: fine).
    let got = systemd_stop_through(
        Path::new(RUNRS),
        &[(
            "DBUS_SYSTEM_BUS_ADDRESS",
            "unix:path=/nonexistent/runrs-test-bus",
        )],
        "runrs-helper-test-none.scope",
    );
    if Path::new("/run/systemd/private").exists() {
        assert_eq!(got, Ok(()));
    } else {
        let e = got.expect_err("no systemd here");
        assert!(
            e.starts_with("connect to systemd: system bus: ")
                && e.contains("unix:path=/run/systemd/private: "),
            "{e}"
        );
    }
}

#[test]
fn a_missing_helper_is_named() {
    let e = systemd_stop_through(Path::new("/nonexistent/bin/runrs"), &[], "x.scope")
        .expect_err("no helper");
    assert!(
        e.starts_with("run the D-Bus helper /nonexistent/bin/runrs: ")
            && e.contains("the runrs binary installed beside it"),
        "{e}"
    );
}

#[test]
fn a_helper_without_an_answer_is_an_error() {
    for (bin, status) in [
        ("/bin/false", "exit status: 1"),
        ("/bin/true", "exit status: 0"),
    ] {
        let e = systemd_stop_through(Path::new(bin), &[], "x.scope").expect_err(bin);
        assert!(
            e.starts_with(&format!("the D-Bus helper {bin} gave no answer ({status})")),
            "{e}"
        );
    }
}

#[test]
fn a_malformed_request_gets_an_answer_not_a_crash() {
    for input in [&b"not json"[..], b"", b"{\"Stop\":{}}", &[0xff, 0xfe][..]] {
        let mut child = Command::new(RUNRS)
            .env("_RUNRS_SYSTEMD_DBUS", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run runrs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write");
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{out:?}");
        let answer: Result<(), String> = serde_json::from_slice(&out.stdout).expect("JSON answer");
        let e = answer.expect_err("malformed");
        assert!(e.starts_with("D-Bus helper: malformed request: "), "{e}");
    }
}
