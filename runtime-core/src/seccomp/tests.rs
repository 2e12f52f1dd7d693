use super::*;
use crate::sys::{c, testing};

fn profile(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).expect("profile")
}

fn err(v: serde_json::Value) -> String {
    crate::fault::chain(&compile(&profile(v)).expect_err("must be refused"))
}

/// Run `f` in a forked child that loads `p` (with no_new_privs) first; returns the
/// child's exit code. Only async-signal-safe calls happen in the child.
fn in_child(p: &Program, f: fn() -> i32) -> i32 {
    let st = testing::fork_child(testing::no_new_privs, &|| match kernel::load(p) {
        Ok(_) => f(),
        Err(_) => 101,
    });
    testing::exited(st).unwrap_or_else(|| panic!("child killed: status {st:#x}"))
}

#[test]
fn denied_syscall_returns_configured_errno_and_args_are_matched() {
    let c = compile(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42},
            // Only personality(0xffffffff) (the query) is refused, with the default EPERM.
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 4294967295u64, "op": "SCMP_CMP_EQ"}]},
            // Masked: setpriority(which, who, prio) with which & 0xff == 2 (PRIO_USER).
            {"names": ["setpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 7,
             "args": [{"index": 0, "value": 255, "valueTwo": 2, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["no_such_syscall_xyz"], "action": "SCMP_ACT_ERRNO"}
        ]
    })))
    .expect("compile");
    assert_eq!(c.ignored, vec!["no_such_syscall_xyz".to_string()]);
    assert!(!c.program.notifies());
    assert_eq!(
        in_child(&c.program, || { testing::getpriority_errno(0, 0) }),
        42
    );
    assert_eq!(
        in_child(&c.program, || {
            let q = testing::personality_errno(0xffff_ffff);
            // PER_LINUX (0) is what the process already has.
            let set = testing::personality_errno(0);
            if set != 0 {
                200
            } else {
                q
            }
        }),
        c::EPERM
    );
    assert_eq!(
        in_child(&c.program, || {
            // PRIO_USER (2) of uid 65534 at 0.
            let user = testing::setpriority_errno(2, 65534, 0);
            // PRIO_PROCESS (0): not matched by the mask, reaches the kernel (ok or EACCES).
            let proc_ = testing::setpriority_errno(0, 0, 0);
            if proc_ == 7 {
                201
            } else {
                user
            }
        }),
        7
    );
}

#[test]
fn default_errno_and_flags() {
    let c = compile(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "flags": [],
        "syscalls": [{"names": ["exit_group", "exit", "getpid"], "action": "SCMP_ACT_ALLOW"}]
    })))
    .expect("compile");
    assert_eq!(c.program.flags, 0, "an explicit empty list sets nothing");
    assert_eq!(in_child(&c.program, || { testing::getppid_errno() }), 38);
    let d = compile(&profile(
        serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"}),
    ))
    .expect("compile");
    if kernel::flag_supported(kernel::FLAG_SPEC_ALLOW).is_ok() {
        assert_eq!(d.program.flags, kernel::FLAG_SPEC_ALLOW, "runc's default");
    }
    let l = compile(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"]
    })))
    .expect("compile");
    assert_eq!(l.program.flags, kernel::FLAG_LOG);
}

#[test]
fn refused_profiles_name_the_field() {
    let e = err(serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}));
    assert!(
        e.contains("defaultAction") && e.contains("SCMP_ACT_NOTIFY"),
        "{e}"
    );
    let e = err(
        serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
        "syscalls": [{"names": ["mkdir", "sendmsg"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    assert!(e.contains("syscalls[0]") && e.contains("sendmsg"), "{e}");
    let e = err(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}));
    assert!(e.contains("listenerPath"), "{e}");
    let e = err(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}));
    assert!(
        e.contains("syscalls[0].args[0].index") && e.contains("0 to 5"),
        "{e}"
    );
    let e = err(serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}));
    assert!(e.contains("defaultErrnoRet") && e.contains("70000"), "{e}");
    let e = err(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": [""], "action": "SCMP_ACT_ERRNO"}]}));
    assert!(e.contains("names[0]"), "{e}");
    // An unknown action or flag is caught by the schema, naming the field.
    let bad = br#"{"ociVersion":"1.0.2","linux":{"seccomp":{"defaultAction":"SCMP_ACT_FOO"}}}"#;
    let e = crate::spec::parse(bad, std::path::Path::new("config.json"))
        .expect_err("unknown action")
        .to_string();
    assert!(
        e.contains("linux.seccomp.defaultAction") && e.contains("SCMP_ACT_FOO"),
        "{e}"
    );
}

#[test]
fn every_action_compiles_and_redundant_rules_are_dropped() {
    for a in [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_LOG",
        "SCMP_ACT_ALLOW",
    ] {
        let c = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["getpriority"], "action": a},
                         {"names": ["getppid"], "action": a, "args": [
                             {"index": 0, "value": 1, "op": "SCMP_CMP_NE"},
                             {"index": 1, "value": 1, "op": "SCMP_CMP_LT"},
                             {"index": 2, "value": 1, "op": "SCMP_CMP_LE"},
                             {"index": 3, "value": 1, "op": "SCMP_CMP_GE"},
                             {"index": 4, "value": 1, "op": "SCMP_CMP_GT"},
                             {"index": 5, "value": 1, "op": "SCMP_CMP_EQ"}]},
                         {"names": ["setpriority"], "action": a, "args": [
                             {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                             {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}]
        })))
        .unwrap_or_else(|e| panic!("{a}: {}", crate::fault::chain(&e)));
        assert!(!c.program.instructions.is_empty(), "{a}");
    }
    let plain = compile(&profile(
        serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": []}),
    ))
    .expect("compile");
    let same = compile(&profile(
        serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": [],
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}),
    ))
    .expect("compile");
    assert_eq!(
        plain.program, same.program,
        "a rule equal to the default is dropped"
    );
}

/// Issue 16: a syscall above the highest one the profile names gets ENOSYS (runc's
/// stub: newer libcs fall back); a known one the profile does not list keeps the
/// default action; without a deny-by-default there is no stub.
#[test]
fn syscalls_newer_than_the_profile_get_enosys() {
    let c = compile(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 42,
        "syscalls": [{"names": ["exit", "exit_group", "getpriority"], "action": "SCMP_ACT_ALLOW"}]
    })))
    .expect("compile");
    assert_eq!(
        in_child(&c.program, || testing::syscall_errno(1000)),
        c::ENOSYS
    );
    assert_eq!(
        in_child(&c.program, || testing::syscall_errno(testing::SYS_GETPPID)),
        42
    );
    assert_eq!(in_child(&c.program, || testing::getpriority_errno(0, 0)), 0);
    // `ret ERRNO(ENOSYS)`: only the stub returns it here.
    let ret_enosys = |p: &Program| {
        p.instructions.iter().any(|i| {
            i.to_ne_bytes()[..2] == 6u16.to_ne_bytes()
                && i.to_ne_bytes()[4..] == 0x0005_0026u32.to_ne_bytes()
        })
    };
    assert!(ret_enosys(&c.program));
    let allow = compile(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getpriority"], "action": "SCMP_ACT_ERRNO"}]
    })))
    .expect("compile");
    assert!(!ret_enosys(&allow.program));
}
