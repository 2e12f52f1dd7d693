//! The cgroup v2 device filter: a BPF_PROG_TYPE_CGROUP_DEVICE program built from a
//! [`Policy`], loaded with bpf(BPF_PROG_LOAD) and attached to the container's cgroup
//! with BPF_F_ALLOW_MULTI. The kernel runs it on every mknod and open of a device node
//! by a process in the cgroup; it returns 1 to allow, 0 to deny (EPERM).
//!
//! Program layout (eBPF, no helpers, no maps):
//! ```text
//!   r2 = ctx->access_type & 0xffff      device type: 1 block, 2 char
//!   r3 = ctx->access_type >> 16         requested access: 1 mknod, 2 read, 4 write
//!   r4 = ctx->major ; r5 = ctx->minor
//!   per exception:                      (jumps go to the next block on mismatch)
//!     if r2 != type  goto next
//!     allow list: if (r3 & bits) != r3 goto next    every requested bit granted
//!     deny list:  if (r3 & bits) == 0  goto next    any requested bit denied
//!     if r4 != major goto next          (omitted for a wildcard)
//!     if r5 != minor goto next          (omitted for a wildcard)
//!     r0 = !default ; exit
//!   r0 = default ; exit
//! ```
//! All exceptions have the same action (the policy's opposite of the default), so
//! their order does not matter and the program decides exactly as the v1 controller
//! would for the same rules ([`Policy::allows`], cross-checked in the tests).
//! See bpf(2), include/uapi/linux/bpf.h (`struct bpf_cgroup_dev_ctx`) and
//! Documentation/bpf/prog_cgroup_sysctl.rst for the attach semantics.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use super::{DevKind, Policy};
use crate::sys::{bpf, c, SysError, SysResult};

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high nibble.
    pub regs: u8,
    /// Signed jump offset / memory offset.
    pub off: i16,
    /// Immediate.
    pub imm: i32,
}

// Opcode pieces (include/uapi/linux/bpf_common.h, bpf.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

/// BPF_DEVCG_DEV_* of a device type.
fn dev_type(k: DevKind) -> i32 {
    match k {
        DevKind::Block => 1,
        DevKind::Char => 2,
    }
}

/// Build the filter program for `policy`.
pub fn program(policy: &Policy) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU32_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU32_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    let verdict = i32::from(!policy.default_allow);
    for ((kind, major, minor), bits) in &policy.exceptions {
        // Jumps are emitted with a placeholder and pointed at the block's end below.
        let mut block = vec![insn(JNE_K, 2, 0, 0, dev_type(*kind))];
        if policy.default_allow {
            block.push(insn(ALU32_MOV_X, 1, 3, 0, 0));
            block.push(insn(ALU32_AND_K, 1, 0, 0, i32::from(*bits)));
            block.push(insn(JEQ_K, 1, 0, 0, 0));
        } else if *bits != super::access::ALL {
            block.push(insn(ALU32_MOV_X, 1, 3, 0, 0));
            block.push(insn(ALU32_AND_K, 1, 0, 0, i32::from(*bits)));
            block.push(insn(JNE_X, 1, 3, 0, 0));
        }
        if let Some(m) = major {
            block.push(insn(JNE_K, 4, 0, 0, *m as i32));
        }
        if let Some(m) = minor {
            block.push(insn(JNE_K, 5, 0, 0, *m as i32));
        }
        block.push(insn(ALU64_MOV_K, 0, 0, 0, verdict));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if matches!(ins.code, JNE_K | JNE_X | JEQ_K) {
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(insn(ALU64_MOV_K, 0, 0, 0, i32::from(policy.default_allow)));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

// bpf(2) constants.
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The instructions in the kernel's `struct bpf_insn` layout (8 bytes each, native
/// endianness; dst_reg in the low nibble of `regs`).
fn insn_bytes(insns: &[Insn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(insns.len() * 8);
    for i in insns {
        out.push(i.code);
        out.push(i.regs);
        out.extend_from_slice(&i.off.to_ne_bytes());
        out.extend_from_slice(&i.imm.to_ne_bytes());
    }
    out
}

/// Load `insns` as a cgroup device program. On a verifier rejection the error carries
/// the verifier's log.
pub fn load(insns: &[Insn]) -> SysResult<OwnedFd> {
    let license = c"Apache-2.0";
    let name = b"runrs_devices\0";
    let code = insn_bytes(insns);
    let what = "BPF_PROG_TYPE_CGROUP_DEVICE";
    match bpf::prog_load(
        BPF_PROG_TYPE_CGROUP_DEVICE,
        &code,
        license,
        name,
        None,
        what,
    ) {
        Ok(fd) => Ok(fd),
        Err(e) if e.errno() == Some(c::EINVAL) || e.errno() == Some(c::EACCES) => {
            // Load again with the verifier log for the message.
            let mut log = vec![0u8; 64 * 1024];
            let _ = bpf::prog_load(
                BPF_PROG_TYPE_CGROUP_DEVICE,
                &code,
                license,
                name,
                Some(&mut log),
                "",
            );
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end])
                .trim()
                .replace('\n', "; ");
            Err(SysError::new(
                "bpf(BPF_PROG_LOAD)",
                format!("BPF_PROG_TYPE_CGROUP_DEVICE (verifier: {text})"),
                e.source,
            ))
        }
        Err(e) => Err(e),
    }
}

/// The kernel id of a loaded program.
fn prog_id(prog: BorrowedFd<'_>) -> SysResult<u32> {
    let mut info = [0u8; 256];
    bpf::obj_get_info(prog, &mut info, "program")?;
    // struct bpf_prog_info { __u32 type; __u32 id; ... }
    Ok(u32::from_ne_bytes([info[4], info[5], info[6], info[7]]))
}

/// Ids of the device programs attached to the cgroup `dir` is open on.
pub fn attached(dir: BorrowedFd<'_>, what: &str) -> SysResult<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let n = bpf::prog_query(dir, BPF_CGROUP_DEVICE, &mut ids, what)?;
    ids.truncate(n.min(64));
    Ok(ids)
}

fn detach_id(dir: BorrowedFd<'_>, id: u32, what: &str) -> SysResult<()> {
    let prog = match bpf::prog_get_fd_by_id(id, what) {
        Ok(fd) => fd,
        Err(e) if e.errno() == Some(c::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    match bpf::prog_detach(dir, prog.as_fd(), BPF_CGROUP_DEVICE, what) {
        Err(e) if e.errno() == Some(c::ENOENT) => Ok(()),
        r => r,
    }
}

fn open_dir(dir: &Path) -> SysResult<OwnedFd> {
    crate::sys::open(dir, c::O_DIRECTORY | c::O_RDONLY | c::O_CLOEXEC, 0)
}

/// Install the filter for `policy` on the cgroup `dir`, replacing any device program
/// attached before: the new one is attached first, then the others are detached, so
/// the container is never without a filter.
pub fn install(dir: &Path, policy: &Policy) -> SysResult<()> {
    let what = dir.display().to_string();
    let prog = load(&program(policy))?;
    let cg = open_dir(dir)?;
    bpf::prog_attach(
        cg.as_fd(),
        prog.as_fd(),
        BPF_CGROUP_DEVICE,
        BPF_F_ALLOW_MULTI,
        &what,
    )?;
    let mine = prog_id(prog.as_fd())?;
    for id in attached(cg.as_fd(), &what)? {
        if id != mine {
            detach_id(cg.as_fd(), id, &what)?;
        }
    }
    Ok(())
}

/// Detach every device program from the cgroup `dir` (before it is removed).
pub fn remove(dir: &Path) -> SysResult<()> {
    let what = dir.display().to_string();
    let cg = match open_dir(dir) {
        Ok(fd) => fd,
        Err(e) if e.errno() == Some(c::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    for id in attached(cg.as_fd(), &what)? {
        detach_id(cg.as_fd(), id, &what)?;
    }
    Ok(())
}
