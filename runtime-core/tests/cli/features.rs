//! `runrs features` against the OCI features schema fields runc prints on this host.

use std::process::Command;

use serde_json::Value;

use crate::common::{skip, RUNRS};

fn features(bin: &str) -> Option<Value> {
    let out = Command::new(bin).arg("features").output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).expect("features JSON"))
}

/// Every key path of `theirs` exists in `ours` with the same JSON type, except inside
/// sections `ours` declares not implemented (`"enabled": false`), which need only say so.
fn covers(ours: &Value, theirs: &Value, path: &str, missing: &mut Vec<String>) {
    let (Some(o), Some(t)) = (ours.as_object(), theirs.as_object()) else {
        return;
    };
    if o.get("enabled") == Some(&Value::Bool(false)) {
        return;
    }
    for (k, tv) in t {
        // runc's own annotations have runrs counterparts under io.github.runrs.
        if path == ".annotations" && k.starts_with("org.opencontainers.runc.") {
            continue;
        }
        let p = format!("{path}.{k}");
        match o.get(k) {
            None => missing.push(p),
            Some(ov) => {
                let same = std::mem::discriminant(ov) == std::mem::discriminant(tv);
                if !same {
                    missing.push(format!("{p} (type)"));
                } else if path != ".annotations" {
                    covers(ov, tv, &p, missing);
                }
            }
        }
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

#[test]
fn features_document_has_runcs_fields() {
    let ours = features(RUNRS).expect("runrs features");
    // Fields runrs adds beyond runc 1.1 and the spec's required ones.
    assert_eq!(ours["ociVersionMin"], "1.0.0");
    assert!(ours["ociVersionMax"].is_string());
    assert_eq!(ours["linux"]["intelRdt"]["enabled"], true);
    assert!(ours["linux"]["mountExtensions"]["idmap"]["enabled"].is_boolean());
    assert!(ours["linux"]["cgroup"]["rdma"].is_boolean());
    assert!(ours["annotations"]["io.github.runrs.version"].is_string());
    let Some(runc) = features("runc") else {
        skip(
            "features_document_has_runcs_fields",
            "no `runc features` on this host to compare with",
        );
        return;
    };
    let mut missing = Vec::new();
    covers(&ours, &runc, "", &mut missing);
    assert!(
        missing.is_empty(),
        "fields runc prints that runrs lacks: {missing:?}"
    );
    assert_eq!(strings(&ours["hooks"]), strings(&runc["hooks"]));
    assert_eq!(
        strings(&ours["linux"]["capabilities"]),
        strings(&runc["linux"]["capabilities"])
    );
    for list in ["actions", "operators", "archs"] {
        let o = strings(&ours["linux"]["seccomp"][list]);
        for x in strings(&runc["linux"]["seccomp"][list]) {
            assert!(o.contains(&x), "seccomp {list}: {x} missing");
        }
    }
    let ns = strings(&ours["linux"]["namespaces"]);
    for n in strings(&runc["linux"]["namespaces"]) {
        assert!(ns.contains(&n), "namespace {n} missing");
    }
    // Mount options runc interprets that runrs passes to the filesystem instead.
    let ours_opts = strings(&ours["mountOptions"]);
    let absent: Vec<String> = strings(&runc["mountOptions"])
        .into_iter()
        .filter(|o| !ours_opts.contains(o))
        .collect();
    assert!(
        absent.iter().all(|o| o == "acl" || o == "noacl"),
        "mount options runc knows and runrs does not: {absent:?}"
    );
}
