//! Fuzz targets of the shim (issue 17), run by plain `cargo test` with `runrs-fuzzkit`:
//! each replays its seed corpus in `shim/fuzz/corpus/<target>/` and then mutates it, for
//! 1 s in the unit stage and `RUNRS_FUZZ_SECS` per target in the fuzz stage
//! (`integration/scripts/fuzz.sh`). The shim runs with panic = "abort": a panic in any
//! of these decoders would take down every container of the shim.

use std::path::Path;

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use runrs_fuzzkit::arbitrary::Unstructured;
use runrs_fuzzkit::{shape, sig, Fuzz};

use crate::options::{decode, decode_checkpoint, from_toml, RuntimeOptions};

fn target(name: &str) -> Fuzz {
    Fuzz::new(
        name,
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(name),
    )
}

/// `o` as a TOML options table (what containerd's CRI plugin sends).
fn to_toml(o: &RuntimeOptions) -> String {
    let mut t = toml::Table::new();
    let mut string = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            t.insert(k.into(), toml::Value::String(v.clone()));
        }
    };
    string("Root", &o.root);
    string("ShimCgroup", &o.shim_cgroup);
    string("CriuImagePath", &o.criu_image_path);
    string("CriuWorkPath", &o.criu_work_path);
    t.insert("SystemdCgroup".into(), o.systemd_cgroup.into());
    t.insert("NoPivotRoot".into(), o.no_pivot_root.into());
    t.insert("IoUid".into(), i64::from(o.io_uid).into());
    t.insert("IoGid".into(), i64::from(o.io_gid).into());
    toml::to_string(&t).expect("a table renders")
}

/// Options that decoded are well-formed: no empty strings standing for "set".
fn check_options(o: &RuntimeOptions) {
    for s in [
        &o.root,
        &o.shim_cgroup,
        &o.criu_image_path,
        &o.criu_work_path,
    ] {
        assert_ne!(s.as_deref(), Some(""), "{o:?}");
    }
}

/// The TOML table: parsed by `from_toml`, rendered again and parsed to the same
/// options; and each string option is the table's value of its key.
fn check_toml(body: &str) -> u64 {
    let o = match from_toml(body) {
        Ok(o) => o,
        Err(e) => {
            assert!(!e.is_empty());
            return shape(&e);
        }
    };
    check_options(&o);
    // The toml crate does not check the values of keys it skips (an integer past i64
    // is then accepted; a Table cannot hold it): compare only when it can.
    let table: toml::Table = toml::from_str(body).unwrap_or_default();
    if !table.is_empty() {
        let s = |k: &str| {
            table
                .get(k)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
        };
        assert_eq!(o.root.as_deref(), s("Root"));
        assert_eq!(o.shim_cgroup.as_deref(), s("ShimCgroup"));
        assert_eq!(o.criu_image_path.as_deref(), s("CriuImagePath"));
        assert_eq!(o.criu_work_path.as_deref(), s("CriuWorkPath"));
    }
    let rendered = to_toml(&o);
    assert_eq!(
        from_toml(&rendered).as_ref(),
        Ok(&o),
        "round trip through {rendered:?}"
    );
    sig(&(
        table.len().min(8),
        o.root.is_some(),
        o.systemd_cgroup,
        o.io_uid != 0,
    ))
}

#[test]
fn fuzz_toml_options() {
    target("toml_options")
        .dict(&[
            "Root",
            "SystemdCgroup",
            "NoPivotRoot",
            "IoUid",
            "IoGid",
            "ShimCgroup",
            "CriuImagePath",
            "CriuWorkPath",
            "BinaryName",
            " = ",
            "true",
            "false",
            "\"\"\"",
            "'''",
            "[runsc_config]",
            "[[a]]",
            "#",
            "\\u00e9",
            "\\\"",
            "{ a = 1 }",
            "1979-05-27T07:32:00Z",
        ])
        .max_len(8 * 1024)
        .run(|data| check_toml(&String::from_utf8_lossy(data)));
}

const URLS: &[&str] = &[
    "containerd.runc.v1.Options",
    "type.googleapis.com/containerd.runc.v1.Options",
    "containerd.linux.runc.CreateOptions",
    "type.googleapis.com/containerd.linux.runc.CreateOptions",
    "runtimeoptions.v1.Options",
    "type.googleapis.com/runtimeoptions.v1.Options",
    "containerd.runc.v1.CheckpointOptions",
    "containerd.linux.runc.CheckpointOptions",
    "",
    "example.com/foo.Bar",
];

/// Byte 0 picks the type URL, the rest is the Any's value. Both decoders run on it;
/// what decodes is re-encoded in the same message type and decodes to the same options.
fn check_any(data: &[u8]) -> u64 {
    let Some((&pick, value)) = data.split_first() else {
        return 0;
    };
    let url = URLS[usize::from(pick) % URLS.len()];
    let kind = url.rsplit('/').next().unwrap_or(url);
    if kind == "runtimeoptions.v1.Options" {
        let cri = <runrs_proto::runtimeoptions::Options as prost::Message>::decode(value);
        if cri.is_ok_and(|c| c.config_body.is_empty() && !c.config_path.is_empty()) {
            // The shim would read that file: not the decoder's business.
            return 0;
        }
    }
    let any = Any {
        type_url: url.into(),
        value: value.to_vec(),
        ..Default::default()
    };
    let created = decode(Some(&any));
    let checkpoint = decode_checkpoint(Some(&any));
    if let Ok(o) = &created {
        check_options(o);
        if !URLS[..6].contains(&url) {
            // No type and no value: the defaults.
            assert_eq!(o, &RuntimeOptions::default(), "{url}");
            return 1;
        }
        let again = match kind {
            "containerd.runc.v1.Options" => {
                let mut r = oci::Options::new();
                r.root = o.root.clone().unwrap_or_default();
                r.systemd_cgroup = o.systemd_cgroup;
                r.no_pivot_root = o.no_pivot_root;
                r.io_uid = o.io_uid;
                r.io_gid = o.io_gid;
                r.shim_cgroup = o.shim_cgroup.clone().unwrap_or_default();
                r.criu_image_path = o.criu_image_path.clone().unwrap_or_default();
                r.criu_work_path = o.criu_work_path.clone().unwrap_or_default();
                r.write_to_bytes().expect("encode")
            }
            "containerd.linux.runc.CreateOptions" => {
                let r = runrs_proto::runctypes::CreateOptions {
                    no_pivot_root: o.no_pivot_root,
                    io_uid: o.io_uid,
                    io_gid: o.io_gid,
                    shim_cgroup: o.shim_cgroup.clone().unwrap_or_default(),
                    criu_image_path: o.criu_image_path.clone().unwrap_or_default(),
                    criu_work_path: o.criu_work_path.clone().unwrap_or_default(),
                    ..Default::default()
                };
                prost::Message::encode_to_vec(&r)
            }
            "runtimeoptions.v1.Options" => {
                let r = runrs_proto::runtimeoptions::Options {
                    config_body: to_toml(o).into_bytes(),
                    ..Default::default()
                };
                prost::Message::encode_to_vec(&r)
            }
            _ => panic!("{url}: options from a type that has none"),
        };
        let any2 = Any {
            type_url: url.into(),
            value: again,
            ..Default::default()
        };
        assert_eq!(decode(Some(&any2)).as_ref().ok(), Some(o), "round trip");
    }
    if let Ok(c) = &checkpoint {
        assert!(c.image_path.as_deref() != Some("") && c.work_path.as_deref() != Some(""));
    }
    let class = |r: Result<(), String>| match r {
        Ok(()) => 1,
        Err(e) => shape(&e),
    };
    sig(&(
        pick as usize % URLS.len(),
        class(created.map(|_| ()).map_err(|e| e.to_string())),
        class(checkpoint.map(|_| ()).map_err(|e| e.to_string())),
    ))
}

#[test]
fn fuzz_runtime_options() {
    target("runtime_options")
        .dict(&[
            "\x08\x01",
            "\x10\x01",
            "\x1a\x00",
            "\x12\x04/run",
            "Root = ",
        ])
        .max_len(4 * 1024)
        .run(check_any);
}

/// A `binary://` URI as containerd writes it: each component percent-encoded.
fn uri_of(path: &str, query: &[(String, String)]) -> String {
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    let q: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    format!("binary:///{}?{}", enc(path), q.join("&"))
}

/// The input as a stdio URI (logger and fifo parsing must not panic; an accepted
/// logger is an absolute path), and as the parts of a logger URI that is built,
/// encoded and parsed back to them.
fn check_uri(data: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(data);
    let logger = crate::logger::parse(&text);
    if let Ok((path, _)) = &logger {
        assert!(path.starts_with('/'), "{text:?} gave the logger {path:?}");
    }
    match crate::stdio::fifo_path(&text) {
        Ok(Some(p)) => assert_eq!(format!("fifo://{p}"), text),
        Ok(None) => assert!(!text.contains("://") || text.starts_with("file://")),
        Err(_) => assert!(text.contains("://")),
    }

    let mut u = Unstructured::new(data);
    let path: String = u.arbitrary().unwrap_or_default();
    let query: Vec<(String, String)> = u.arbitrary().unwrap_or_default();
    let uri = uri_of(&path, &query);
    let (p, args) = crate::logger::parse(&uri).expect("an encoded URI parses");
    assert_eq!(p, format!("/{path}"), "{uri}");
    let want: Vec<&String> = query
        .iter()
        .flat_map(|(k, v)| std::iter::once(k).chain((!v.is_empty()).then_some(v)))
        .collect();
    assert_eq!(args.iter().collect::<Vec<_>>(), want, "{uri}");

    match logger {
        Ok((_, a)) => sig(&a.len().min(4)),
        Err(e) => shape(&e.to_string()),
    }
}

#[test]
fn fuzz_log_uri() {
    target("log_uri")
        .dict(&[
            "binary://",
            "fifo://",
            "file://",
            "/usr/bin/logger",
            "?",
            "&",
            "=",
            "%",
            "%2",
            "%20",
            "%C3%A9",
            "%e9",
            "+",
        ])
        .max_len(4 * 1024)
        .run(check_uri);
}
