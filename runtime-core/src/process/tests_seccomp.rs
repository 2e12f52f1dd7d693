//! The seccomp listener's hand-off from init to the runtime over the sync socket:
//! [`crate::seccomp::kernel::install`] on one side, [`super::sync::recv`] on the other.

use std::os::fd::{AsFd, AsRawFd};

use oci_spec::runtime::LinuxSeccomp;

use super::sync::{self, Msg};
use crate::seccomp::{compile, kernel};
use crate::sys::{c, testing};

fn profile(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).expect("profile")
}

#[test]
fn listener_message_matches_sync_framing() {
    let m: Msg = serde_json::from_slice(&kernel::LISTENER_MSG[1..]).expect("decode");
    assert!(matches!(m, Msg::SeccompFd));
    assert_eq!(kernel::LISTENER_MSG[0], 1, "single last packet");
}

#[test]
fn notify_listener_reaches_the_runtime_and_answers() {
    use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
    let c = compile(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/unused",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["getpriority"], "action": "SCMP_ACT_NOTIFY"}]
    })))
    .expect("compile");
    assert!(c.program.notifies());
    assert_ne!(c.program.flags & kernel::FLAG_WAIT_KILLABLE_RECV, 0);
    let (parent, child) = crate::sys::seqpacket_pair().expect("pair");
    // The child only calls prctl, seccomp, sendmsg, getpriority and _exit.
    let pid = testing::fork_child_start(testing::no_new_privs, &|| {
        if kernel::install(&c.program, child.as_fd()).is_err() {
            return 101;
        }
        // The agent answers it.
        testing::getpriority_errno(0, 0)
    });
    drop(child);
    let (m, fds) = sync::recv(parent.as_fd()).expect("recv");
    assert!(matches!(m, Msg::SeccompFd), "{m:?}");
    assert_eq!(fds.len(), 1);
    let fd = fds[0].as_raw_fd();
    let req = ScmpNotifReq::receive(fd).expect("notification");
    assert_eq!(req.pid, pid as u32);
    assert_eq!(req.data.syscall.get_name().expect("name"), "getpriority");
    ScmpNotifResp::new_error(req.id, -c::ENOMEDIUM, ScmpNotifRespFlags::empty())
        .respond(fd)
        .expect("respond");
    let st = crate::sys::waitpid(pid).expect("wait");
    assert_eq!(testing::exited(st), Some(c::ENOMEDIUM));
}
