//! `linux.seccomp`: the spec's profile becomes a classic BPF program.
//!
//! The runtime (parent) compiles the profile with libseccomp before anything is created,
//! so a bad profile is a clear error that leaves nothing behind; init then only loads
//! the finished program with seccomp(2) and the kernel flags the spec asks for
//! ([`kernel`]). Semantics follow runc: unknown syscall names are skipped, a rule whose
//! action equals the default action is dropped, several conditions on the same argument
//! become separate rules, `errnoRet` defaults to EPERM, and without `flags` the filter
//! gets SPEC_ALLOW where the kernel has it, and syscalls above the highest one the
//! profile names get ENOSYS ([`enosys`]). With SCMP_ACT_NOTIFY the listener descriptor
//! goes to the parent, which hands it to `listenerPath` ([`listener`]).
//! See seccomp(2), seccomp_rule_add(3), the OCI config-linux.md "Seccomp".

mod enosys;
pub mod kernel;
pub mod listener;

use std::io::{Read, Seek};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use serde::{Deserialize, Serialize};

use crate::sys::c;
use crate::sys::SysError;

/// The most instructions the kernel accepts in one filter (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

/// Syscalls init itself makes between loading the filter and handing the listener
/// descriptor to the parent: a notifying rule on them would block init forever
/// (runc refuses `write` for the same reason; runrs sends with sendmsg).
const INIT_NEEDS: [&str; 1] = ["sendmsg"];

/// A compiled filter, ready for seccomp(2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    /// The `struct sock_filter` instructions, each in its native 8-byte layout.
    pub instructions: Vec<u64>,
    /// SECCOMP_FILTER_FLAG_* to load with; NEW_LISTENER when a rule notifies.
    pub flags: u32,
}

impl Program {
    /// Whether loading returns a listener descriptor (a rule uses SCMP_ACT_NOTIFY).
    #[cfg(test)]
    pub fn notifies(&self) -> bool {
        self.flags & kernel::FLAG_NEW_LISTENER != 0
    }
}

/// A profile compiled by [`compile`].
#[derive(Debug)]
pub struct Compiled {
    /// The program.
    pub program: Program,
    /// Syscall names libseccomp does not know (skipped, as runc does).
    pub ignored: Vec<String>,
}

/// Why a profile cannot be compiled or loaded.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// A field of the profile is not acceptable.
    #[error("{field}: {reason}")]
    Invalid {
        /// JSON path of the field.
        field: String,
        /// Why.
        reason: String,
    },
    /// libseccomp refused a step.
    #[error("{what}")]
    Lib {
        /// What was attempted.
        what: String,
        /// libseccomp's error.
        #[source]
        source: libseccomp::error::SeccompError,
    },
    /// The kernel does not accept a flag the profile asks for.
    #[error("linux.seccomp.flags: {flag} is not supported by this kernel")]
    FlagUnsupported {
        /// The flag's name.
        flag: &'static str,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
    /// Exporting the compiled program.
    #[error("export the seccomp program")]
    Export(#[source] SysError),
    /// seccomp(2) failed in init.
    #[error("load the seccomp filter")]
    Load(#[source] SysError),
    /// Handing the listener descriptor to the runtime failed.
    #[error("send the seccomp listener descriptor to the runtime")]
    SendListener(#[source] SysError),
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SeccompError {
    SeccompError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

fn lib(what: impl Into<String>) -> impl FnOnce(libseccomp::error::SeccompError) -> SeccompError {
    let what = what.into();
    move |source| SeccompError::Lib { what, source }
}

/// The libseccomp action for a spec action; `errno` is `errnoRet` (EPERM when absent).
fn action(
    a: LinuxSeccompAction,
    errno: Option<u32>,
    field: &str,
) -> Result<ScmpAction, SeccompError> {
    let ret = || {
        let v = errno.unwrap_or(c::EPERM as u32);
        u16::try_from(v).map_err(|_| {
            invalid(
                field,
                format!("errnoRet {v} does not fit the 16 bits the kernel returns"),
            )
        })
    };
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(i32::from(ret()?)),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(ret()?),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    })
}

fn arch(a: Arch) -> ScmpArch {
    match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

fn operator(op: LinuxSeccompOperator, value: u64) -> ScmpCompareOp {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(value),
    }
}

/// The kernel flags of the profile, each checked against this kernel.
fn flags(s: &LinuxSeccomp, notifies: bool) -> Result<u32, SeccompError> {
    let Some(list) = s.flags() else {
        // runc: without an explicit list, SPEC_ALLOW where the kernel has it.
        return Ok(if kernel::flag_supported(kernel::FLAG_SPEC_ALLOW).is_ok() {
            kernel::FLAG_SPEC_ALLOW
        } else {
            0
        });
    };
    let mut out = 0;
    for f in list {
        let (name, bits, probe) = match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => (
                "SECCOMP_FILTER_FLAG_LOG",
                kernel::FLAG_LOG,
                kernel::FLAG_LOG,
            ),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => (
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                kernel::FLAG_SPEC_ALLOW,
                kernel::FLAG_SPEC_ALLOW,
            ),
            // init is single-threaded: there is nothing to synchronise (runc ignores it too).
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => continue,
            // Only meaningful (and only accepted by the kernel) with a listener.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => (
                "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
                if notifies {
                    kernel::FLAG_WAIT_KILLABLE_RECV
                } else {
                    0
                },
                kernel::FLAG_WAIT_KILLABLE_RECV | kernel::FLAG_NEW_LISTENER,
            ),
        };
        kernel::flag_supported(probe)
            .map_err(|source| SeccompError::FlagUnsupported { flag: name, source })?;
        out |= bits;
    }
    Ok(out)
}

/// Compile a profile. Nothing is loaded; the kernel is only asked which flags it has.
pub fn compile(s: &LinuxSeccomp) -> Result<Compiled, SeccompError> {
    let calls = s.syscalls().as_deref().unwrap_or_default();
    if s.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(invalid(
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY cannot be the default action (init could not hand the listener to the runtime)",
        ));
    }
    let notifies = calls
        .iter()
        .any(|c| c.action() == LinuxSeccompAction::ScmpActNotify);
    for (i, c) in calls.iter().enumerate() {
        if c.action() != LinuxSeccompAction::ScmpActNotify {
            continue;
        }
        if let Some(n) = c.names().iter().find(|n| INIT_NEEDS.contains(&n.as_str())) {
            return Err(invalid(
                format!("linux.seccomp.syscalls[{i}]"),
                format!("SCMP_ACT_NOTIFY cannot be used for {n}: runrs needs it to hand the listener to the runtime"),
            ));
        }
    }
    if notifies
        && s.listener_path()
            .as_ref()
            .is_none_or(|p| p.as_os_str().is_empty())
    {
        return Err(invalid(
            "linux.seccomp.listenerPath",
            "is required when a rule uses SCMP_ACT_NOTIFY",
        ));
    }

    let default = action(
        s.default_action(),
        s.default_errno_ret(),
        "linux.seccomp.defaultErrnoRet",
    )?;
    let mut ctx = ScmpFilterContext::new(default).map_err(lib("create seccomp filter"))?;
    for (i, a) in s.architectures().iter().flatten().enumerate() {
        let sa = arch(*a);
        let present = ctx
            .is_arch_present(sa)
            .map_err(lib(format!("linux.seccomp.architectures[{i}] {a}")))?;
        if !present {
            ctx.add_arch(sa)
                .map_err(lib(format!("linux.seccomp.architectures[{i}]: add {a}")))?;
        }
    }

    let mut ignored = Vec::new();
    for (i, c) in calls.iter().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(c.action(), c.errno_ret(), &format!("{field}.errnoRet"))?;
        let mut conds = Vec::new();
        let mut per_arg = [0u8; 6];
        for (j, a) in c.args().iter().flatten().enumerate() {
            if a.index() >= per_arg.len() {
                return Err(invalid(
                    format!("{field}.args[{j}].index"),
                    format!(
                        "{} is out of range: a syscall has arguments 0 to 5",
                        a.index()
                    ),
                ));
            }
            per_arg[a.index()] += 1;
            let datum = if a.op() == LinuxSeccompOperator::ScmpCmpMaskedEq {
                a.value_two().unwrap_or(0)
            } else {
                a.value()
            };
            conds.push(ScmpArgCompare::new(
                a.index() as u32,
                operator(a.op(), a.value()),
                datum,
            ));
        }
        if c.names().is_empty() {
            return Err(invalid(
                format!("{field}.names"),
                "must name at least one syscall",
            ));
        }
        if act == default {
            // Redundant with the default action; libseccomp would refuse it.
            continue;
        }
        for (k, name) in c.names().iter().enumerate() {
            if name.is_empty() {
                return Err(invalid(
                    format!("{field}.names[{k}]"),
                    "empty string is not a valid syscall",
                ));
            }
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                ignored.push(name.clone());
                continue;
            };
            let what = || format!("{field}: add rule for {name}");
            if per_arg.iter().any(|n| *n > 1) {
                // runc: several conditions on one argument are separate rules (OR).
                for cond in &conds {
                    ctx.add_rule_conditional(act, nr, std::slice::from_ref(cond))
                        .map_err(lib(what()))?;
                }
            } else {
                ctx.add_rule_conditional(act, nr, &conds)
                    .map_err(lib(what()))?;
            }
        }
    }

    let mut program = export(&ctx)?;
    // runc's -ENOSYS stub ([`enosys`]), unless the default lets syscalls through.
    let permissive = matches!(
        default,
        ScmpAction::Allow | ScmpAction::Log | ScmpAction::Trace(_)
    );
    if !permissive {
        let arches: Vec<ScmpArch> = s
            .architectures()
            .iter()
            .flatten()
            .map(|a| arch(*a))
            .collect();
        let names: Vec<&str> = calls
            .iter()
            .flat_map(|c| c.names().iter().map(String::as_str))
            .collect();
        let mut stub = enosys::stub(&arches, &names);
        stub.extend_from_slice(&program.instructions);
        program.instructions = stub;
    }
    program.flags = flags(s, notifies)?
        | if notifies {
            kernel::FLAG_NEW_LISTENER
        } else {
            0
        };
    if program.instructions.len() > MAX_INSNS {
        return Err(invalid(
            "linux.seccomp",
            format!(
                "the compiled filter has {} instructions; the kernel accepts at most {MAX_INSNS}",
                program.instructions.len()
            ),
        ));
    }
    ignored.sort();
    ignored.dedup();
    Ok(Compiled { program, ignored })
}

/// Export the filter's BPF through a memfd (libseccomp 2.5 has no in-memory export).
fn export(ctx: &ScmpFilterContext) -> Result<Program, SeccompError> {
    let mem = crate::sys::memfd_c(c"runrs-seccomp", false).map_err(SeccompError::Export)?;
    let mut f = std::fs::File::from(mem);
    ctx.export_bpf(&f)
        .map_err(lib("export the seccomp filter as BPF"))?;
    let mut bytes = Vec::new();
    f.rewind()
        .and_then(|_| f.read_to_end(&mut bytes))
        .map_err(|e| SeccompError::Export(SysError::new("read", "exported seccomp program", e)))?;
    if bytes.len() % 8 != 0 || bytes.is_empty() {
        return Err(SeccompError::Export(SysError::new(
            "export",
            format!(
                "{} bytes is not a whole number of instructions",
                bytes.len()
            ),
            std::io::Error::from_raw_os_error(c::EINVAL),
        )));
    }
    let instructions = bytes
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().expect("chunks_exact yields 8 bytes")))
        .collect();
    Ok(Program {
        instructions,
        flags: 0,
    })
}

/// The libseccomp version, for messages (`2.5.4`).
pub fn library_version() -> String {
    libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests;
