use oci_spec::runtime::LinuxDeviceCgroup;

use super::access::{ALL, MKNOD, READ, WRITE};
use super::bpf::{program, Insn};
use super::*;

fn oci(j: &str) -> Vec<LinuxDeviceCgroup> {
    serde_json::from_str(j).expect("device rules json")
}

fn rules(j: &str) -> Vec<Rule> {
    with_defaults(&oci(j), &[]).expect("rules")
}

#[test]
fn parses_oci_rules() {
    let r = with_defaults(
        &oci(r#"[{"allow":false},{"allow":true,"type":"u","major":4,"minor":-1,"access":"rw"}]"#),
        &[],
    )
    .expect("rules");
    assert_eq!(r[0].kind, None);
    assert_eq!(r[0].access, ALL);
    assert_eq!(r[1].kind, Some(DevKind::Char));
    assert_eq!((r[1].major, r[1].minor), (Some(4), None));
    assert_eq!(r[1].access, READ | WRITE);
    assert_eq!(r.len(), 2 + 11, "runc's eleven default rules follow");

    let e =
        with_defaults(&oci(r#"[{"allow":true,"type":"p","access":"r"}]"#), &[]).expect_err("fifo");
    assert!(e.to_string().contains("linux.resources.devices[0]"), "{e}");
    let e = with_defaults(&oci(r#"[{"allow":true,"type":"c","access":"rx"}]"#), &[])
        .expect_err("access");
    assert!(e.to_string().contains("invalid access"), "{e}");
    let r = with_defaults(&oci(r#"[{"allow":true,"type":"c","access":"wrawr"}]"#), &[])
        .expect("runc accepts a and duplicates");
    assert_eq!(r[0].access, READ | WRITE);
    let e =
        with_defaults(&oci(r#"[{"allow":true,"type":"c","major":-5}]"#), &[]).expect_err("major");
    assert!(e.to_string().contains("major"), "{e}");
}

#[test]
fn default_spec_policy_is_runcs_allow_list() {
    let p = Policy::from_rules(&rules(r#"[{"allow":false,"access":"rwm"}]"#));
    assert!(!p.default_allow);
    assert_eq!(p.exceptions.len(), 11);
    assert!(p.allows(DevKind::Char, 1, 3, READ | WRITE));
    assert!(p.allows(DevKind::Char, 136, 7, READ));
    assert!(p.allows(DevKind::Block, 8, 0, MKNOD), "mknod of anything");
    assert!(!p.allows(DevKind::Block, 8, 0, READ));
    assert!(
        p.allows(DevKind::Char, 10, 200, READ | WRITE),
        "tun, as runc 1.1 and >= 1.2.4"
    );
    assert!(!p.allows(DevKind::Char, 1, 1, WRITE), "/dev/mem");
    let list: Vec<String> = p
        .exceptions
        .iter()
        .map(|(k, b)| Entry(k, *b).to_string())
        .collect();
    assert!(list.contains(&"c *:* m".to_string()), "{list:?}");
    assert!(list.contains(&"c 136:* rwm".to_string()), "{list:?}");
}

#[test]
fn later_rules_refine_earlier_ones() {
    // Allow list: a deny of the same device takes bits away.
    let p = Policy::from_rules(&rules(
        r#"[{"allow":false},{"allow":true,"type":"b","major":8,"minor":0,"access":"rwm"},
            {"allow":false,"type":"b","major":8,"minor":0,"access":"w"}]"#,
    ));
    assert!(p.allows(DevKind::Block, 8, 0, READ));
    assert!(!p.allows(DevKind::Block, 8, 0, WRITE));
    assert!(!p.allows(DevKind::Block, 8, 0, READ | WRITE));
    // A deny of a device a wildcard allows does not punch a hole (kernel semantics).
    let p = Policy::from_rules(&rules(
        r#"[{"allow":false},{"allow":false,"type":"c","major":1,"minor":3,"access":"rwm"}]"#,
    ));
    assert!(
        p.allows(DevKind::Char, 1, 3, READ),
        "the default rule re-allows it"
    );
    // Deny list: allow everything except writes to 8:*.
    let p = Policy::from_rules(&rules(
        r#"[{"allow":true},{"allow":false,"type":"b","major":8,"access":"w"}]"#,
    ));
    assert!(p.default_allow);
    assert!(p.allows(DevKind::Block, 8, 3, READ));
    assert!(!p.allows(DevKind::Block, 8, 3, WRITE));
    assert!(
        !p.allows(DevKind::Block, 8, 3, READ | WRITE),
        "any denied bit denies"
    );
    assert!(p.allows(DevKind::Block, 9, 3, WRITE));
    // Type a with numbers stands for both c and b.
    let p = Policy::from_rules(&rules(
        r#"[{"allow":false},{"allow":true,"type":"a","major":7,"minor":1,"access":"r"}]"#,
    ));
    assert!(p.allows(DevKind::Char, 7, 1, READ) && p.allows(DevKind::Block, 7, 1, READ));
    assert!(!p.allows(DevKind::Block, 7, 1, WRITE));
}

#[test]
fn defaults_yield_to_spec_devices() {
    let own = [std::path::Path::new("/dev/null")];
    let r = with_defaults(&oci(r#"[{"allow":false}]"#), &own).expect("rules");
    assert_eq!(r.len(), 1 + 10);
    assert!(!r.iter().any(|r| r.major == Some(1) && r.minor == Some(3)));
}

#[test]
fn v1_writes_from_reset_and_by_difference() {
    let target = Policy::from_rules(&rules(r#"[{"allow":false}]"#));
    // Fresh cgroup (inherits allow-all): reset, then the exceptions.
    let cur = v1::parse_list("a *:* rwm\n");
    assert_eq!(cur, None);
    let w = v1::transition(cur.as_ref(), &target);
    assert_eq!(w[0], ("devices.deny", "a".to_string()));
    assert_eq!(w.len(), 12);
    assert!(w[1..].iter().all(|(f, _)| *f == "devices.allow"));
    // Same allow list: nothing to write.
    let list: String = target
        .exceptions
        .iter()
        .map(|(k, b)| format!("{}\n", Entry(k, *b)))
        .collect();
    let cur = v1::parse_list(&list).expect("allow list");
    assert_eq!(cur, target);
    assert!(v1::transition(Some(&cur), &target).is_empty());
    // New list: grant first, then revoke, never a reset.
    let next = Policy::from_rules(&rules(
        r#"[{"allow":false},{"allow":true,"type":"b","major":8,"minor":0,"access":"r"}]"#,
    ));
    let w = v1::transition(Some(&next), &target);
    assert_eq!(w, vec![("devices.deny", "b 8:0 r".to_string())]);
    let w = v1::transition(Some(&target), &next);
    assert_eq!(w, vec![("devices.allow", "b 8:0 r".to_string())]);
    // To a deny list: reset to allow-all, then the denials.
    let deny = Policy::from_rules(&rules(
        r#"[{"allow":true},{"allow":false,"type":"c","major":1,"minor":11,"access":"rwm"}]"#,
    ));
    let w = v1::transition(Some(&target), &deny);
    assert_eq!(w[0], ("devices.allow", "a".to_string()));
    assert!(w.contains(&("devices.deny", "c 1:11 rwm".to_string())));
}

/// Run a device program the way the kernel would, on one access.
fn run(prog: &[Insn], typ: u32, access: u32, major: u32, minor: u32) -> u64 {
    let ctx = [(access << 16) | typ, major, minor];
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    for _ in 0..10_000 {
        let i = prog[pc];
        let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
        let imm = i.imm as i64 as u64;
        let mut next = pc + 1;
        match i.code {
            0x61 => {
                assert_eq!(src, 1, "loads only from the context");
                r[dst] = u64::from(ctx[(i.off / 4) as usize]);
            }
            0x54 => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
            0x74 => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
            0xbc => r[dst] = r[src] as u32 as u64,
            0xb7 => r[dst] = imm,
            0x55 if r[dst] != imm => next = pc + 1 + i.off as usize,
            0x5d if r[dst] != r[src] => next = pc + 1 + i.off as usize,
            0x15 if r[dst] == imm => next = pc + 1 + i.off as usize,
            0x55 | 0x5d | 0x15 => {}
            0x95 => return r[0],
            c => panic!("unexpected opcode {c:#x}"),
        }
        assert!(next < prog.len(), "jump out of the program at {pc}");
        pc = next;
    }
    panic!("program does not terminate");
}

#[test]
fn bpf_program_decides_like_the_v1_controller() {
    let policies = [
        r#"[{"allow":false}]"#,
        r#"[{"allow":false},{"allow":true,"type":"b","major":8,"minor":0,"access":"r"},
            {"allow":true,"type":"c","major":4,"access":"w"}]"#,
        r#"[{"allow":true},{"allow":false,"type":"b","major":8,"access":"w"},
            {"allow":false,"type":"c","minor":3,"access":"rm"}]"#,
        r#"[{"allow":true}]"#,
    ];
    for j in policies {
        let p = Policy::from_rules(&rules(j));
        let prog = program(&p);
        for (kind, typ) in [(DevKind::Block, 1), (DevKind::Char, 2)] {
            for (major, minor) in [
                (1, 3),
                (1, 9),
                (8, 0),
                (8, 1),
                (4, 3),
                (136, 2),
                (5, 2),
                (10, 200),
            ] {
                for acc in 1..=7u8 {
                    let want = p.allows(kind, major, minor, acc);
                    let got = run(&prog, typ, u32::from(acc), major, minor);
                    assert_eq!(
                        got,
                        u64::from(want),
                        "policy {j}: {kind:?} {major}:{minor} access {acc}"
                    );
                }
            }
        }
    }
}

#[test]
fn bpf_program_shape() {
    let p = Policy::from_rules(&rules(r#"[{"allow":false}]"#));
    let prog = program(&p);
    // 6 loads + 2 final + per exception: type, [access x3], [major], [minor], mov, exit:
    // c/b *:* m take 6 each, the eight c M:m rwm 5 each (tun among them), c 136:* rwm 4.
    assert_eq!(prog.len(), 6 + 2 + 6 + 6 + 8 * 5 + 4, "{prog:?}");
    assert_eq!(prog.last().map(|i| i.code), Some(0x95));
    assert_eq!(prog[prog.len() - 2].imm, 0, "default deny");
}
