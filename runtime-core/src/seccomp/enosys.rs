//! The -ENOSYS stub runc puts in front of a profile's filter: a syscall numbered above
//! the highest one the profile names (for the calling architecture) fails with ENOSYS,
//! not with the default action. Such a syscall is newer than the profile, and ENOSYS is
//! what makes libc fall back to an older one (glibc's clone3 → clone, faccessat2 →
//! faccessat); EPERM would be taken as a real refusal. Known syscalls the profile does
//! not list keep the default action. Like runc, no stub when the default action lets
//! syscalls through (allow, log, trace).
//!
//! The stub is classic BPF: load the architecture; per architecture, load the syscall
//! number and compare it with that architecture's highest named one; anything else
//! jumps to the unchanged libseccomp program, which reloads what it needs. See
//! seccomp(2) ("struct seccomp_data"), runc libcontainer/seccomp/patchbpf.

use libseccomp::{ScmpArch, ScmpSyscall};

/// SECCOMP_RET_ERRNO | ENOSYS.
const RET_ENOSYS: u32 = 0x0005_0000 | 38;
/// The x32 ABI marks its syscall numbers with this bit (same AUDIT_ARCH as x86_64).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// Classic BPF opcodes (linux/bpf_common.h).
const LD_W_ABS: u16 = 0x20;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGT_K: u16 = 0x25;
const JMP_JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

/// The AUDIT_ARCH_* value the kernel reports for a libseccomp architecture (None for
/// those the stub does not cover; they get the profile's own filter only).
fn audit_arch(a: ScmpArch) -> Option<u32> {
    Some(match a {
        ScmpArch::Native => return audit_arch(ScmpArch::native()),
        ScmpArch::X86 => 0x4000_0003,
        ScmpArch::X8664 | ScmpArch::X32 => 0xc000_003e,
        ScmpArch::Arm => 0x4000_0028,
        ScmpArch::Aarch64 => 0xc000_00b7,
        ScmpArch::Mips => 0x0000_0008,
        ScmpArch::Mips64 => 0x8000_0008,
        ScmpArch::Mips64N32 => 0xa000_0008,
        ScmpArch::Mipsel => 0x4000_0008,
        ScmpArch::Mipsel64 => 0xc000_0008,
        ScmpArch::Mipsel64N32 => 0xe000_0008,
        ScmpArch::Ppc => 0x0000_0014,
        ScmpArch::Ppc64 => 0x8000_0015,
        ScmpArch::Ppc64Le => 0xc000_0015,
        ScmpArch::S390 => 0x0000_0016,
        ScmpArch::S390X => 0x8000_0016,
        ScmpArch::Riscv64 => 0xc000_00f3,
        _ => return None,
    })
}

/// The highest syscall numbers named for one AUDIT_ARCH: `main` for the architecture
/// itself, `x32` for x86_64's x32 ABI.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Highest {
    main: Option<u32>,
    x32: Option<u32>,
    s390: bool,
}

/// Per AUDIT_ARCH of `arches` (the native one when empty), the highest syscall number
/// among `names`. Names unknown on an architecture are skipped.
fn highest(arches: &[ScmpArch], names: &[&str]) -> Vec<(u32, Highest)> {
    let native = [ScmpArch::Native];
    let arches = if arches.is_empty() { &native } else { arches };
    let mut out: Vec<(u32, Highest)> = Vec::new();
    for &a in arches {
        let a = if a == ScmpArch::Native {
            ScmpArch::native()
        } else {
            a
        };
        let Some(audit) = audit_arch(a) else { continue };
        // libseccomp gives negative pseudo numbers for names that do not exist there.
        let max = names
            .iter()
            .filter_map(|n| ScmpSyscall::from_name_by_arch(n, a).ok())
            .map(|s| s.as_raw_syscall())
            .filter(|n| *n > 0)
            .max()
            .map(|n| n as u32);
        let Some(max) = max else { continue };
        let i = match out.iter().position(|(k, _)| *k == audit) {
            Some(i) => i,
            None => {
                out.push((audit, Highest::default()));
                out.len() - 1
            }
        };
        let h = &mut out[i].1;
        if a == ScmpArch::X32 {
            h.x32 = Some(max);
        } else {
            h.main = Some(max);
            h.s390 = matches!(a, ScmpArch::S390 | ScmpArch::S390X);
        }
    }
    out
}

/// One instruction in `struct sock_filter`'s native 8-byte layout.
fn insn(code: u16, jt: u8, jf: u8, k: u32) -> u64 {
    let mut b = [0u8; 8];
    b[0..2].copy_from_slice(&code.to_ne_bytes());
    b[2] = jt;
    b[3] = jf;
    b[4..8].copy_from_slice(&k.to_ne_bytes());
    u64::from_ne_bytes(b)
}

/// Where a stub instruction jumps.
#[derive(Clone, Copy)]
enum To {
    /// `n` instructions further than the next one (0: the next).
    Skip(u8),
    /// The `ret ENOSYS` at the end of the stub.
    Enosys,
    /// The first instruction of the profile's program.
    Filter,
    /// The first instruction of the next architecture's section.
    NextSection,
}

const NEXT: To = To::Skip(0);

/// A stub instruction before its jump offsets are known.
enum Op {
    /// `ld [off]` of `struct seccomp_data`.
    Load(u32),
    /// A conditional jump `code` against `k`: true and false targets.
    Jump(u16, u32, To, To),
}

/// The section of one architecture: if the arch matches, ENOSYS above the highest.
fn section(audit: u32, h: Highest) -> Vec<Op> {
    let mut s = vec![
        Op::Jump(JMP_JEQ_K, audit, NEXT, To::NextSection),
        Op::Load(DATA_NR),
    ];
    if h.s390 {
        // s390 multiplexes syscalls the kernel does not know to number 0 (setup(2),
        // unused for decades): that one is ENOSYS too (runc does the same).
        s.push(Op::Jump(JMP_JEQ_K, 0, To::Enosys, NEXT));
    }
    let x86_64 = audit == 0xc000_003e;
    match (h.main, h.x32) {
        (Some(m), Some(x)) => {
            // x32 calls (bit set) against the x32 highest, the others against x86_64's.
            s.push(Op::Jump(JMP_JSET_K, X32_SYSCALL_BIT, NEXT, To::Skip(1)));
            s.push(Op::Jump(JMP_JGT_K, x, To::Enosys, To::Filter));
            s.push(Op::Jump(JMP_JGT_K, m, To::Enosys, To::Filter));
        }
        (Some(m), None) => {
            if x86_64 {
                // The profile names no x32 syscall: x32 calls go to the filter as is.
                s.push(Op::Jump(JMP_JSET_K, X32_SYSCALL_BIT, To::Filter, NEXT));
            }
            s.push(Op::Jump(JMP_JGT_K, m, To::Enosys, To::Filter));
        }
        (None, Some(x)) => {
            s.push(Op::Jump(JMP_JSET_K, X32_SYSCALL_BIT, NEXT, To::Filter));
            s.push(Op::Jump(JMP_JGT_K, x, To::Enosys, To::Filter));
        }
        (None, None) => return Vec::new(),
    }
    s
}

/// The stub for a profile whose rules name `names`, for `arches` (the profile's
/// `architectures`; the native one when empty), to put in front of its program. Empty
/// when no architecture has a named syscall.
pub(super) fn stub(arches: &[ScmpArch], names: &[&str]) -> Vec<u64> {
    let sections: Vec<Vec<Op>> = highest(arches, names)
        .into_iter()
        .map(|(audit, h)| section(audit, h))
        .filter(|s| !s.is_empty())
        .collect();
    if sections.is_empty() {
        return Vec::new();
    }
    // ld arch; sections…; ja filter; ret ENOSYS; <filter>
    let body: usize = sections.iter().map(Vec::len).sum();
    let enosys = 1 + body + 1;
    let filter = enosys + 1;
    let mut out = vec![insn(LD_W_ABS, 0, 0, DATA_ARCH)];
    let mut start = 1;
    for s in &sections {
        let next_section = start + s.len();
        for (j, op) in s.iter().enumerate() {
            let at = start + j;
            // Every target lies ahead within the stub (at most 16 architectures of
            // 6 instructions), so the offset fits the 8 bits of jt/jf.
            let off = |t: To| -> u8 {
                let abs = match t {
                    To::Skip(n) => at + 1 + usize::from(n),
                    To::Enosys => enosys,
                    To::Filter => filter,
                    To::NextSection => next_section,
                };
                u8::try_from(abs - at - 1).unwrap_or(u8::MAX)
            };
            out.push(match *op {
                Op::Load(k) => insn(LD_W_ABS, 0, 0, k),
                Op::Jump(code, k, t, f) => insn(code, off(t), off(f), k),
            });
        }
        start = next_section;
    }
    out.push(insn(JMP_JA, 0, 0, 1));
    out.push(insn(RET_K, 0, 0, RET_ENOSYS));
    out
}
