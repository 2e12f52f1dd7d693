//! bpf(2) for cgroup device programs: load, query, attach, detach. Every pointer the
//! kernel reads or writes comes from a slice borrowed for the call. See bpf(2),
//! include/uapi/linux/bpf.h.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::{SysError, SysResult};

// bpf(2) commands.
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const BPF_PROG_QUERY: libc::c_int = 16;

/// `union bpf_attr`, as the byte buffer the kernel copies (unused tail must be zero).
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Self {
        Attr([0; 128])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
}

/// bpf(2). Every pointer stored in `attr` must refer to memory that stays borrowed by
/// the caller across this call (each wrapper below stores only such pointers).
fn bpf(cmd: libc::c_int, attr: &mut Attr, what: &str, call: &'static str) -> SysResult<i64> {
    loop {
        // SAFETY: `attr` is a zero-initialised, 8-byte aligned bpf_attr buffer of the
        // size we pass; every pointer stored in it refers to memory that outlives this
        // call (the wrappers below keep it borrowed).
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                attr.0.as_mut_ptr(),
                std::mem::size_of::<Attr>(),
            )
        };
        if r >= 0 {
            return Ok(r);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(SysError::new(call, what.to_string(), e));
        }
    }
}

/// BPF_PROG_LOAD of `insns` (`struct bpf_insn`s, 8 bytes each, native layout) as a
/// program of `prog_type`, named `name` (NUL-terminated, at most 16 bytes) under
/// `license`. With `log`, the verifier writes its log there (level 1).
pub fn prog_load(
    prog_type: u32,
    insns: &[u8],
    license: &std::ffi::CStr,
    name: &[u8],
    log: Option<&mut [u8]>,
    what: &str,
) -> SysResult<OwnedFd> {
    let mut attr = Attr::new();
    attr.u32(0, prog_type)
        .u32(4, (insns.len() / 8) as u32)
        .u64(8, insns.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64);
    let n = name.len().min(16);
    attr.0[48..48 + n].copy_from_slice(&name[..n]);
    if let Some(log) = log {
        attr.u32(24, 1)
            .u32(28, log.len() as u32)
            .u64(32, log.as_mut_ptr() as u64);
    }
    let fd = bpf(BPF_PROG_LOAD, &mut attr, what, "bpf(BPF_PROG_LOAD)")?;
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { super::fd::owned(fd) })
}

/// BPF_OBJ_GET_INFO_BY_FD of `prog` into `info` (`struct bpf_prog_info`).
pub fn obj_get_info(prog: BorrowedFd<'_>, info: &mut [u8], what: &str) -> SysResult<()> {
    let mut attr = Attr::new();
    attr.u32(0, prog.as_raw_fd() as u32)
        .u32(4, info.len() as u32)
        .u64(8, info.as_mut_ptr() as u64);
    bpf(
        BPF_OBJ_GET_INFO_BY_FD,
        &mut attr,
        what,
        "bpf(BPF_OBJ_GET_INFO_BY_FD)",
    )
    .map(|_| ())
}

/// BPF_PROG_QUERY of the programs of `attach_type` on the cgroup `dir`: fills `ids` and
/// returns how many programs are attached.
pub fn prog_query(
    dir: BorrowedFd<'_>,
    attach_type: u32,
    ids: &mut [u32],
    what: &str,
) -> SysResult<usize> {
    let mut attr = Attr::new();
    attr.u32(0, dir.as_raw_fd() as u32)
        .u32(4, attach_type)
        .u64(16, ids.as_mut_ptr() as u64)
        .u32(24, ids.len() as u32);
    bpf(BPF_PROG_QUERY, &mut attr, what, "bpf(BPF_PROG_QUERY)")?;
    Ok(u32::from_ne_bytes([attr.0[24], attr.0[25], attr.0[26], attr.0[27]]) as usize)
}

/// BPF_PROG_GET_FD_BY_ID.
pub fn prog_get_fd_by_id(id: u32, what: &str) -> SysResult<OwnedFd> {
    let mut attr = Attr::new();
    attr.u32(0, id);
    let fd = bpf(
        BPF_PROG_GET_FD_BY_ID,
        &mut attr,
        what,
        "bpf(BPF_PROG_GET_FD_BY_ID)",
    )?;
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { super::fd::owned(fd) })
}

/// BPF_PROG_ATTACH of `prog` to the cgroup `dir`.
pub fn prog_attach(
    dir: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
    flags: u32,
    what: &str,
) -> SysResult<()> {
    let mut attr = Attr::new();
    attr.u32(0, dir.as_raw_fd() as u32)
        .u32(4, prog.as_raw_fd() as u32)
        .u32(8, attach_type)
        .u32(12, flags);
    bpf(BPF_PROG_ATTACH, &mut attr, what, "bpf(BPF_PROG_ATTACH)").map(|_| ())
}

/// BPF_PROG_DETACH of `prog` from the cgroup `dir`.
pub fn prog_detach(
    dir: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
    what: &str,
) -> SysResult<()> {
    let mut attr = Attr::new();
    attr.u32(0, dir.as_raw_fd() as u32)
        .u32(4, prog.as_raw_fd() as u32)
        .u32(8, attach_type);
    bpf(BPF_PROG_DETACH, &mut attr, what, "bpf(BPF_PROG_DETACH)").map(|_| ())
}
