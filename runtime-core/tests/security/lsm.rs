//! AppArmor and SELinux labels on a host without them: create fails, naming the field
//! and the missing module, and leaves nothing behind. (On a host with the module the
//! label would be applied; that path cannot run here, see runtime-core/src/lsm.rs.)

use serde_json::json;

use crate::support::{self, World};

#[test]
fn labels_the_host_cannot_apply_are_refused() {
    if !support::root_or_skip() {
        return;
    }
    let mut w = World::new("lsm");
    let cases = [
        (
            ("process", "apparmorProfile"),
            "process.apparmorProfile",
            "AppArmor",
            runtime_core::testing::apparmor_enabled(),
        ),
        (
            ("process", "selinuxLabel"),
            "process.selinuxLabel",
            "SELinux",
            runtime_core::testing::selinux_enabled(),
        ),
        (
            ("linux", "mountLabel"),
            "linux.mountLabel",
            "SELinux",
            runtime_core::testing::selinux_enabled(),
        ),
    ];
    for (i, ((parent, key), field, lsm, host_has_it)) in cases.into_iter().enumerate() {
        if host_has_it {
            eprintln!("skipped {field}: this host has {lsm}");
            integration::record_skip(field, &format!("this host has {lsm}"));
            continue;
        }
        let id = w.id(&format!("c{i}"));
        let mut b = w.bundle(&id, false);
        let value = if lsm == "AppArmor" {
            "runrs-sec-profile"
        } else {
            "system_u:system_r:container_t:s0:c1,c2"
        };
        b.spec[parent][key] = json!(value);
        b.sh("true");
        let o = w.create(&b, &id);
        assert!(!o.ok(), "{field} accepted without {lsm}: {o:?}");
        assert!(
            o.stderr.contains(field)
                && o.stderr.contains(value)
                && o.stderr.contains(lsm)
                && o.stderr.contains("does not support"),
            "{field}: {}",
            o.stderr
        );
        let left = w.leftovers();
        assert!(left.is_empty(), "{field} left:\n{}", left.join("\n"));
    }
    w.assert_clean();
}
