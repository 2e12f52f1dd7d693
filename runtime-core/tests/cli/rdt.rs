//! Intel RDT through the CLI on this host: without resctrl, a spec that asks for RDT
//! fails create with a clear error and leaves nothing behind. (The resctrl logic itself
//! is tested against a fake tree in runtime-core's unit tests.)

use serde_json::json;

use crate::common::{skip, stderr, Env};

#[test]
fn intel_rdt_without_resctrl_fails_cleanly() {
    let Some(env) = Env::new("rdt_absent") else {
        return;
    };
    let mi = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    if mi.lines().any(|l| l.contains(" - resctrl ")) {
        skip("rdt_absent", "this host has resctrl mounted");
        return;
    }
    let mut c = env.config();
    c["linux"]["intelRdt"] = json!({"l3CacheSchema": "L3:0=ff", "memBwSchema": "MB:0=50"});
    env.write_config(&c);
    for args in [vec!["create"], vec!["run", "-d"]] {
        let mut a = args.clone();
        let b = env.bundle.to_str().expect("utf8");
        a.extend(["-b", b, &env.id]);
        let out = env.runrs(&a);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr(&out);
        assert!(
            err.contains("linux.intelRdt is set, but no resctrl filesystem is mounted"),
            "{args:?}: {err}"
        );
        env.assert_no_leftovers(None);
    }
    // A malformed schema is refused before anything else, naming field and value.
    c["linux"]["intelRdt"] = json!({"l3CacheSchema": "L3:0=xyz"});
    env.write_config(&c);
    let out = env.create();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        // (logrus text format: the quotes inside msg="..." are escaped)
        err.contains(r#"linux.intelRdt.l3CacheSchema \"L3:0=xyz\""#) && err.contains("hexadecimal"),
        "{err}"
    );
    env.assert_no_leftovers(None);
}
