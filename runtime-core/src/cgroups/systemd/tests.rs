use super::*;
use crate::cgroups::devices::{access, Policy, Rule};
use crate::cgroups::Mode;
use oci_spec::runtime::LinuxResources;

#[test]
fn slices_expand_as_systemd_names_them() {
    assert_eq!(
        expand_slice("system.slice").expect("test input"),
        "/system.slice"
    );
    assert_eq!(
        expand_slice("kubepods-besteffort-pod12.slice").expect("test input"),
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice"
    );
    assert_eq!(expand_slice("-.slice").expect("test input"), "/");
    for bad in [
        "system",
        ".slice",
        "a--b.slice",
        "-a.slice",
        "a-.slice",
        "a/b.slice",
    ] {
        assert!(expand_slice(bad).is_err(), "{bad}");
    }
}

#[test]
fn paths_name_a_scope_in_a_slice() {
    let (u, p) = parse(Some("system.slice:runrs:x"), "id", DEFAULT_SLICE).expect("test input");
    assert_eq!(u.name, "runrs-x.scope");
    assert_eq!(u.slice, "system.slice");
    assert_eq!(p, "/system.slice/runrs-x.scope");

    let (u, p) = parse(
        Some("kubepods-burstable-pod1.slice:cri-containerd:abc"),
        "abc",
        DEFAULT_SLICE,
    )
    .expect("test input");
    assert_eq!(u.name, "cri-containerd-abc.scope");
    assert_eq!(
        p,
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-abc.scope"
    );

    // Empty slice: system.slice; no path at all: runrs-<id>.scope there.
    assert_eq!(
        parse(Some(":p:n"), "id", DEFAULT_SLICE)
            .expect("test input")
            .1,
        "/system.slice/p-n.scope"
    );
    let (u, p) = parse(None, "c1", DEFAULT_USER_SLICE).expect("test input");
    assert_eq!(
        (u.name.as_str(), p.as_str()),
        ("runrs-c1.scope", "/user.slice/runrs-c1.scope")
    );
    let (u, p) = parse(None, "c1", DEFAULT_SLICE).expect("test input");
    assert_eq!(
        (u.name.as_str(), p.as_str()),
        ("runrs-c1.scope", "/system.slice/runrs-c1.scope")
    );

    // A name ending in .slice makes that slice; its parent is in its name.
    let (u, p) =
        parse(Some("system.slice:x:mine-sub.slice"), "id", DEFAULT_SLICE).expect("test input");
    assert!(u.is_slice());
    assert_eq!(p, "/mine.slice/mine-sub.slice");
}

#[test]
fn bad_paths_say_what_is_expected() {
    for bad in [
        "/runrs/x",
        "a:b",
        "a:b:c:d",
        "system.slice:p:",
        "nope:p:n",
        "system.slice:p:a/b",
    ] {
        let e = parse(Some(bad), "id", DEFAULT_SLICE)
            .expect_err("must fail")
            .to_string();
        assert!(e.contains(bad), "{bad}: {e}");
        assert!(matches!(
            parse(Some(bad), "id", DEFAULT_SLICE),
            Err(CgroupError::BadPath(..))
        ));
    }
    let e = parse(Some("/runrs/x"), "id", DEFAULT_SLICE)
        .expect_err("must fail")
        .to_string();
    assert!(e.contains("slice:prefix:name"), "{e}");
}

#[test]
fn unavailable_without_systemd() {
    let d = tempfile::tempdir().expect("test input");
    let e = unavailable(d.path()).expect("test input");
    assert!(e.contains("systemd is not running"), "{e}");
    std::fs::create_dir_all(d.path().join("systemd/system")).expect("test input");
    assert_eq!(unavailable(d.path()), None);
}

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).expect("test input")
}

fn get<'a>(p: &'a [(&'static str, Prop)], k: &str) -> Option<&'a Prop> {
    p.iter().find(|(n, _)| *n == k).map(|(_, v)| v)
}

#[test]
fn resources_become_unit_properties() {
    let r = res(
        r#"{"memory":{"limit":67108864,"reservation":1048576,"swap":134217728},
        "cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0-1","mems":"0"},
        "pids":{"limit":64},"blockIO":{"weight":500}}"#,
    );
    let v2 = properties(Mode::Unified, &r, None, "");
    assert_eq!(get(&v2, "MemoryMax"), Some(&Prop::U64(67108864)));
    assert_eq!(get(&v2, "MemoryLow"), Some(&Prop::U64(1048576)));
    assert_eq!(get(&v2, "MemorySwapMax"), Some(&Prop::U64(67108864)));
    assert_eq!(get(&v2, "CPUWeight"), Some(&Prop::U64(39)));
    assert_eq!(get(&v2, "CPUQuotaPerSecUSec"), Some(&Prop::U64(500_000)));
    assert_eq!(get(&v2, "CPUQuotaPeriodUSec"), Some(&Prop::U64(100_000)));
    assert_eq!(get(&v2, "AllowedCPUs"), Some(&Prop::Bytes(vec![3])));
    assert_eq!(get(&v2, "AllowedMemoryNodes"), Some(&Prop::Bytes(vec![1])));
    assert_eq!(get(&v2, "TasksMax"), Some(&Prop::U64(64)));
    assert_eq!(get(&v2, "IOWeight"), Some(&Prop::U64(4950)));
    assert_eq!(get(&v2, "MemoryLimit"), None);

    let v1 = properties(Mode::Hybrid, &r, None, "");
    assert_eq!(get(&v1, "MemoryLimit"), Some(&Prop::U64(67108864)));
    assert_eq!(get(&v1, "CPUShares"), Some(&Prop::U64(1024)));
    assert_eq!(get(&v1, "BlockIOWeight"), Some(&Prop::U64(500)));
    for k in ["MemoryMax", "MemoryLow", "AllowedCPUs", "CPUWeight"] {
        assert_eq!(get(&v1, k), None, "{k}");
    }
}

#[test]
fn quota_rounds_up_to_systemd_percent_and_unlimited_is_infinity() {
    let p = properties(Mode::Unified, &res(r#"{"cpu":{"quota":12345}}"#), None, "");
    // 12345 us per 100 ms = 123450 us/s, up to the next 10 ms step.
    assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Prop::U64(130_000)));
    let p = properties(
        Mode::Unified,
        &res(r#"{"cpu":{"quota":-1},"memory":{"limit":-1},"pids":{"limit":-1}}"#),
        None,
        "",
    );
    assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Prop::U64(u64::MAX)));
    assert_eq!(get(&p, "MemoryMax"), Some(&Prop::U64(u64::MAX)));
    assert_eq!(get(&p, "TasksMax"), Some(&Prop::U64(u64::MAX)));
    assert!(properties(Mode::Unified, &res("{}"), None, "").is_empty());
}

#[test]
fn device_policy_as_an_allow_list() {
    let pd = "Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  8 sd\n";
    let rules = [
        Rule {
            kind: None,
            major: None,
            minor: None,
            access: access::ALL,
            allow: false,
        },
        Rule {
            kind: Some(DevKind::Char),
            major: Some(1),
            minor: Some(3),
            access: access::READ | access::WRITE,
            allow: true,
        },
        Rule {
            kind: Some(DevKind::Char),
            major: Some(136),
            minor: None,
            access: access::ALL,
            allow: true,
        },
        Rule {
            kind: Some(DevKind::Block),
            major: None,
            minor: None,
            access: access::MKNOD,
            allow: true,
        },
    ];
    let policy = Policy::from_rules(&rules);
    let p = properties(Mode::Unified, &res("{}"), Some(&policy), pd);
    assert_eq!(get(&p, "DevicePolicy"), Some(&Prop::Str("strict".into())));
    let Some(Prop::DeviceAllow(list)) = get(&p, "DeviceAllow") else {
        panic!("no DeviceAllow in {p:?}")
    };
    let mut list = list.clone();
    list.sort();
    assert_eq!(
        list,
        vec![
            ("/dev/char/1:3".to_string(), "rw".to_string()),
            ("block-*".into(), "m".into()),
            ("char-pts".into(), "rwm".into()),
        ]
    );
    // Allow everything: systemd's "auto" with no list.
    let all = Policy::from_rules(&[Rule {
        kind: None,
        major: None,
        minor: None,
        access: access::ALL,
        allow: true,
    }]);
    let p = properties(Mode::Hybrid, &res("{}"), Some(&all), pd);
    assert_eq!(get(&p, "DevicePolicy"), Some(&Prop::Str("auto".into())));
}

use crate::cgroups::devices::DevKind;

#[test]
fn a_users_unit_lies_below_the_user_manager() {
    use crate::cgroups::{Hierarchies, DEFAULT_ROOT};
    use std::path::Path;
    let mi = "25 23 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
    let h = Hierarchies::from_mountinfo(Path::new(DEFAULT_ROOT), mi).expect("parse");
    let bus = UserBus {
        address: "unix:path=/run/user/1001/bus".into(),
        uid: 1001,
        p2p: false,
    };
    let mgr = "/user.slice/user-1001.slice/user@1001.service";
    let cg = resolve_in(
        &h,
        Some("user.slice:libpod:abc"),
        "abc",
        Some(bus.clone()),
        mgr,
    )
    .expect("podman's path");
    assert_eq!(cg.path, format!("{mgr}/user.slice/libpod-abc.scope"));
    let unit = cg.systemd.expect("unit");
    assert_eq!(unit.user, Some(bus.clone()));
    assert_eq!(
        (unit.name.as_str(), unit.slice.as_str()),
        ("libpod-abc.scope", "user.slice")
    );
    let cg = resolve_in(&h, None, "c1", Some(bus.clone()), mgr).expect("default");
    assert_eq!(cg.path, format!("{mgr}/user.slice/runrs-c1.scope"));
    // The system's manager sits at the root: paths as before.
    let cg = resolve_in(&h, None, "c1", None, "").expect("system");
    assert_eq!(cg.path, "/system.slice/runrs-c1.scope");
    for bad in ["user.slice", "/a/../..", "/.."] {
        let e = resolve_in(&h, None, "c1", Some(bus.clone()), bad).expect_err(bad);
        assert!(matches!(e, CgroupError::SystemdUser(_)), "{bad}: {e}");
    }
}

#[test]
fn user_bus_requests_survive_the_helper_protocol() {
    let r = Request {
        user: Some(UserBus {
            address: "unix:path=/run/user/1001/systemd/private".into(),
            uid: 1001,
            p2p: true,
        }),
        call: Call::ManagerCgroup,
    };
    let json = serde_json::to_string(&r).expect("encode");
    let back: Request = serde_json::from_str(&json).expect("decode");
    assert_eq!(back.user, r.user);
    assert!(matches!(back.call, Call::ManagerCgroup));
    // A request without `user` is the system instance's.
    let sys: Request =
        serde_json::from_str(r#"{"call":{"Stop":{"name":"x.scope"}}}"#).expect("decode");
    assert!(sys.user.is_none());
}
