//! seccomp as runc's callers see it (issue 16): a syscall newer than the profile fails
//! with ENOSYS (so libc falls back) while a known one the profile leaves out keeps the
//! default action; a notifying rule on `write` is never silently ignored; a missing
//! agent is reported in runc's words. Validated against runc with
//! `RUNRS_TEST_RUNTIME=/usr/sbin/runc`.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use integration::config::sh;
use integration::{Bundle, Runtime};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::{json, Value};

/// containerd 1.6's default profile (deny by default, x86_64/x86/x32), as runtime-core's
/// security suite uses it.
fn containerd_profile() -> Result<Value> {
    let p = integration::workspace_dir()
        .join("runtime-core/tests/security/containerd-1.6-default-seccomp.json");
    let text = std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// A static x86_64 ELF that makes syscall `nr` (first argument 0) and exits with the
/// negated result's low byte: the errno when it failed, 0 for a zero result.
fn syscall_probe(nr: u32) -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    let mut code = Vec::new();
    code.push(0xb8); // mov eax, nr
    code.extend_from_slice(&nr.to_le_bytes());
    code.extend_from_slice(&[0x0f, 0x05]); // syscall
    code.extend_from_slice(&[0xf7, 0xd8]); // neg eax
    code.extend_from_slice(&[0x89, 0xc7]); // mov edi, eax
    code.extend_from_slice(&[0xb8, 60, 0, 0, 0]); // mov eax, SYS_exit
    code.extend_from_slice(&[0x0f, 0x05]); // syscall
    let total = (64 + 56 + code.len()) as u64;
    let mut e = Vec::new();
    // ELF header: ELFCLASS64, little endian, ET_EXEC, EM_X86_64, one program header.
    e.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    e.extend_from_slice(&2u16.to_le_bytes());
    e.extend_from_slice(&0x3eu16.to_le_bytes());
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&(BASE + 64 + 56).to_le_bytes()); // entry: the code
    e.extend_from_slice(&64u64.to_le_bytes()); // phoff
    e.extend_from_slice(&0u64.to_le_bytes()); // shoff
    e.extend_from_slice(&0u32.to_le_bytes()); // flags
    for v in [64u16, 56, 1, 0, 0, 0] {
        e.extend_from_slice(&v.to_le_bytes()); // ehsize, phentsize, phnum, sh*
    }
    // PT_LOAD of the whole file, read + execute.
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&5u32.to_le_bytes());
    for v in [0, BASE, BASE, total, total, 0x1000] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(&code);
    e
}

fn install_probe(b: &Bundle, name: &str, nr: u32) -> Result<()> {
    let p = b.rootfs().join(name);
    std::fs::write(&p, syscall_probe(nr))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Issue 16: with a deny-by-default profile, syscall 1000 (above every syscall the
/// profile names) gets ENOSYS, as runc's stub gives it; getppid, known but left out of
/// the profile here, keeps the default action (EPERM). runrs gave EPERM to both.
#[test]
fn a_syscall_newer_than_the_profile_gets_enosys() -> Result<()> {
    if !cfg!(target_arch = "x86_64") {
        integration::skip("the syscall probe is an x86_64 program");
        return Ok(());
    }
    let mut profile = containerd_profile()?;
    let allowed = profile["syscalls"][0]["names"]
        .as_array_mut()
        .context("the profile's first rule lists names")?;
    let before = allowed.len();
    allowed.retain(|n| n != "getppid");
    ensure!(allowed.len() < before, "getppid is not in the profile");
    let rt = Runtime::new()?;
    let b = Bundle::with_config("sc-enosys", |c| {
        sh(
            c,
            "/probe-new; echo new=$?; /probe-ppid; echo ppid=$?; /probe-uid; echo uid=$?",
        );
        c["linux"]["seccomp"] = profile;
    })?;
    install_probe(&b, "probe-new", 1000)?;
    install_probe(&b, "probe-ppid", 110)?; // getppid
    install_probe(&b, "probe-uid", 102)?; // getuid: allowed, returns 0
    let out = rt.output(&b)?;
    ensure!(out.contains("new=38"), "syscall 1000 (ENOSYS = 38): {out}");
    ensure!(out.contains("ppid=1"), "getppid (EPERM = 1): {out}");
    ensure!(out.contains("uid=0"), "getuid (allowed, uid 0): {out}");
    rt.assert_no_leftovers(&b)
}

/// A seccomp agent on `path`: accepts one runtime connection, takes the listener and
/// answers every notification with "continue", counting the `write` ones (x86_64
/// number 1). Stops when the filter has no users left or after `limit`.
fn agent(path: &Path, writes: Arc<AtomicUsize>, limit: Duration) -> Result<()> {
    let l = UnixListener::bind(path)?;
    l.set_nonblocking(true)?;
    std::thread::spawn(move || {
        let deadline = Instant::now() + limit;
        let conn = loop {
            match l.accept() {
                Ok((c, _)) => break c,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(_) => return,
            }
        };
        let _ = conn.set_nonblocking(false);
        let mut buf = vec![0u8; 64 << 10];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 4]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let Ok(msg) = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        ) else {
            return;
        };
        let Some(fd) = msg
            .cmsgs()
            .ok()
            .into_iter()
            .flatten()
            .find_map(|c| match c {
                ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                _ => None,
            })
        else {
            return;
        };
        // SAFETY: SCM_RIGHTS just gave us this descriptor; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        serve(&fd, &writes);
    });
    Ok(())
}

/// SECCOMP_IOCTL_NOTIF_RECV / _SEND (linux/seccomp.h).
const NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const NOTIF_SEND: libc::c_ulong = 0xc018_2101;
const USER_NOTIF_FLAG_CONTINUE: u32 = 1;

fn serve(fd: &OwnedFd, writes: &AtomicUsize) {
    loop {
        // struct seccomp_notif: id u64, pid u32, flags u32, data { nr i32, arch u32, … }.
        let mut req = [0u64; 10];
        // SAFETY: `req` is 80 writable bytes, the size of struct seccomp_notif.
        if unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_RECV, req.as_mut_ptr()) } < 0 {
            return;
        }
        let nr = (req[2] & 0xffff_ffff) as i32;
        if nr == 1 {
            writes.fetch_add(1, Ordering::SeqCst);
        }
        // struct seccomp_notif_resp: id u64, val i64, error i32, flags u32.
        let mut resp = [req[0], 0, u64::from(USER_NOTIF_FLAG_CONTINUE) << 32];
        // SAFETY: `resp` is 24 readable bytes, the size of struct seccomp_notif_resp.
        unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_SEND, resp.as_mut_ptr()) };
    }
}

/// Issue 16: SCMP_ACT_NOTIFY on `write` is never silently ignored: runc 1.1 refuses the
/// profile ("SCMP_ACT_NOTIFY cannot be used for the write syscall"); a runtime that
/// accepts it must hand the container's writes to the agent.
#[test]
fn notify_on_write_reaches_the_agent_or_is_refused() -> Result<()> {
    if !cfg!(target_arch = "x86_64") {
        integration::skip("the agent counts x86_64 syscall numbers");
        return Ok(());
    }
    let rt = Runtime::new()?;
    let b = Bundle::new("sc-notify-write")?;
    let sock = b.path().join("agent.sock");
    let writes = Arc::new(AtomicUsize::new(0));
    agent(&sock, writes.clone(), Duration::from_secs(20))?;
    let listener = sock.to_string_lossy().into_owned();
    b.configure(|c| {
        sh(c, "echo written-through-the-agent");
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": listener,
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]
        });
    })?;
    let out = rt.run(&b, b"", integration::cmd::CMD_TIMEOUT)?;
    if out.success() {
        ensure!(
            out.stdout.contains("written-through-the-agent"),
            "output: {out}"
        );
        ensure!(
            writes.load(Ordering::SeqCst) > 0,
            "the container's write was not notified: {out}"
        );
    } else {
        ensure!(
            out.stderr
                .contains("SCMP_ACT_NOTIFY cannot be used for the write syscall"),
            "neither intercepted nor refused in runc's words: {out}"
        );
    }
    rt.delete_force(b.id())?;
    rt.assert_no_leftovers(&b)
}

/// Issue 16: an agent that cannot be reached is reported in runc's words ("failed to
/// connect with seccomp agent"), and nothing is left behind.
#[test]
fn a_missing_agent_is_worded_like_runc() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::new("sc-no-agent")?;
    let missing = b.path().join("no-agent.sock");
    let listener = missing.to_string_lossy().into_owned();
    b.configure(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": listener,
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
        });
    })?;
    let out = rt.create(&b)?.fails()?;
    ensure!(
        out.stderr.contains("failed to connect with seccomp agent"),
        "stderr: {out}"
    );
    rt.assert_no_leftovers(&b)
}
