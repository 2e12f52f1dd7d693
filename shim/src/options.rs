//! Runtime options containerd sends with Create (and on `start`'s stdin), as a
//! protobuf Any: `containerd.runc.v1.Options` (current clients for io.containerd.runc.*
//! names), `containerd.linux.runc.CreateOptions` (clients for other runtime names, such
//! as ours), or the CRI's `runtimeoptions.v1.Options` whose body is the TOML table of
//! the runtime's options. Type URLs come bare or with a `type.googleapis.com/` prefix.

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci;

use crate::error::ShimError;

/// The options runrs honours.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// State root override (runc's `Root`).
    pub root: Option<String>,
    /// Use the systemd cgroup driver.
    pub systemd_cgroup: bool,
    /// MS_MOVE + chroot instead of pivot_root.
    pub no_pivot_root: bool,
    /// Owner of the stdio pipes.
    pub io_uid: u32,
    /// Group of the stdio pipes.
    pub io_gid: u32,
    /// Cgroup for the shim itself (only used by `start`).
    pub shim_cgroup: Option<String>,
    /// CRIU image path default.
    pub criu_image_path: Option<String>,
    /// CRIU work path default.
    pub criu_work_path: Option<String>,
}

impl RuntimeOptions {
    /// The checkpoint image a new task is restored from at Start: the request's
    /// `checkpoint` (a checkpoint containerd unpacked from its content store), else the
    /// options' CriuImagePath. containerd's `WithRestoreImagePath` puts the path in the
    /// create options; containerd itself turns it into `checkpoint` only for runtimes
    /// named `io.containerd.runc.*` (services/tasks `getRestorePath`), so for runrs the
    /// shim reads it here.
    pub fn restore_image(&self, checkpoint: &str) -> Option<std::path::PathBuf> {
        if !checkpoint.is_empty() {
            return Some(checkpoint.into());
        }
        self.criu_image_path.as_ref().map(Into::into)
    }
}

fn type_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// Decode the options Any. `None`/empty gives the defaults.
pub fn decode(any: Option<&Any>) -> Result<RuntimeOptions, ShimError> {
    let Some(any) = any.filter(|a| !a.type_url.is_empty() || !a.value.is_empty()) else {
        return Ok(RuntimeOptions::default());
    };
    let bad = |e: &dyn std::fmt::Display| {
        ShimError::InvalidArgument(format!("runtime options {}: {e}", any.type_url))
    };
    match type_name(&any.type_url) {
        "containerd.runc.v1.Options" => {
            let o = oci::Options::parse_from_bytes(&any.value).map_err(|e| bad(&e))?;
            Ok(RuntimeOptions {
                root: non_empty(&o.root),
                systemd_cgroup: o.systemd_cgroup,
                no_pivot_root: o.no_pivot_root,
                io_uid: o.io_uid,
                io_gid: o.io_gid,
                shim_cgroup: non_empty(&o.shim_cgroup),
                criu_image_path: non_empty(&o.criu_image_path),
                criu_work_path: non_empty(&o.criu_work_path),
            })
        }
        "containerd.linux.runc.CreateOptions" => {
            let o = <runrs_proto::runctypes::CreateOptions as prost::Message>::decode(&*any.value)
                .map_err(|e| bad(&e))?;
            Ok(RuntimeOptions {
                no_pivot_root: o.no_pivot_root,
                io_uid: o.io_uid,
                io_gid: o.io_gid,
                shim_cgroup: non_empty(&o.shim_cgroup),
                criu_image_path: non_empty(&o.criu_image_path),
                criu_work_path: non_empty(&o.criu_work_path),
                ..Default::default()
            })
        }
        "runtimeoptions.v1.Options" => {
            let o = <runrs_proto::runtimeoptions::Options as prost::Message>::decode(&*any.value)
                .map_err(|e| bad(&e))?;
            let body = if o.config_body.is_empty() && !o.config_path.is_empty() {
                std::fs::read(&o.config_path)
                    .map_err(|e| bad(&format!("read {}: {e}", o.config_path)))?
            } else {
                o.config_body
            };
            from_toml(&String::from_utf8_lossy(&body)).map_err(|e| bad(&e))
        }
        other => Err(ShimError::InvalidArgument(format!(
            "unsupported runtime options type {other:?} (expected containerd.runc.v1.Options, \
             containerd.linux.runc.CreateOptions or runtimeoptions.v1.Options)"
        ))),
    }
}

/// Checkpoint options (containerd's CheckpointOptions, either package).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointOpts {
    /// Stop the container after the checkpoint.
    pub exit: bool,
    /// Checkpoint established TCP connections.
    pub open_tcp: bool,
    /// Allow external unix sockets.
    pub external_unix_sockets: bool,
    /// Allow a terminal (shell job).
    pub terminal: bool,
    /// Checkpoint file locks.
    pub file_locks: bool,
    /// Namespaces to leave empty.
    pub empty_namespaces: Vec<String>,
    /// criu's cgroup mode.
    pub cgroups_mode: String,
    /// Image directory (overrides the request's path).
    pub image_path: Option<String>,
    /// criu work directory.
    pub work_path: Option<String>,
}

/// Decode the Checkpoint RPC's options Any.
pub fn decode_checkpoint(any: Option<&Any>) -> Result<CheckpointOpts, ShimError> {
    let Some(any) = any.filter(|a| !a.type_url.is_empty() || !a.value.is_empty()) else {
        return Ok(CheckpointOpts::default());
    };
    let bad = |e: &dyn std::fmt::Display| {
        ShimError::InvalidArgument(format!("checkpoint options {}: {e}", any.type_url))
    };
    match type_name(&any.type_url) {
        "containerd.runc.v1.CheckpointOptions" => {
            let o = oci::CheckpointOptions::parse_from_bytes(&any.value).map_err(|e| bad(&e))?;
            Ok(CheckpointOpts {
                exit: o.exit,
                open_tcp: o.open_tcp,
                external_unix_sockets: o.external_unix_sockets,
                terminal: o.terminal,
                file_locks: o.file_locks,
                empty_namespaces: o.empty_namespaces.clone(),
                cgroups_mode: o.cgroups_mode.clone(),
                image_path: non_empty(&o.image_path),
                work_path: non_empty(&o.work_path),
            })
        }
        "containerd.linux.runc.CheckpointOptions" => {
            let o =
                <runrs_proto::runctypes::CheckpointOptions as prost::Message>::decode(&*any.value)
                    .map_err(|e| bad(&e))?;
            Ok(CheckpointOpts {
                exit: o.exit,
                open_tcp: o.open_tcp,
                external_unix_sockets: o.external_unix_sockets,
                terminal: o.terminal,
                file_locks: o.file_locks,
                empty_namespaces: o.empty_namespaces,
                cgroups_mode: o.cgroups_mode,
                image_path: non_empty(&o.image_path),
                work_path: non_empty(&o.work_path),
            })
        }
        other => Err(ShimError::InvalidArgument(format!(
            "unsupported checkpoint options type {other:?}"
        ))),
    }
}

/// The keys of a CRI runtime options table that runrs reads (runc's names; a missing
/// key keeps its default). Other keys (BinaryName, runc-only knobs) and tables are
/// ignored: containerd passes the whole `options` section of the runtime.
#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct TomlOptions {
    root: String,
    systemd_cgroup: bool,
    no_pivot_root: bool,
    io_uid: u32,
    io_gid: u32,
    shim_cgroup: String,
    criu_image_path: String,
    criu_work_path: String,
}

/// Read the options runrs supports from a TOML document (the CRI's `config_body`, or
/// the file at `config_path`), with the `toml` crate: strings of every TOML kind, `#`
/// inside strings, tables and arrays are what TOML says they are.
pub fn from_toml(body: &str) -> Result<RuntimeOptions, String> {
    let t: TomlOptions = toml::from_str(body).map_err(|e| match e.span() {
        Some(span) => {
            let before = &body.as_bytes()[..span.start.min(body.len())];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            format!("line {line}: {}", e.message().trim_end())
        }
        None => e.message().trim_end().to_string(),
    })?;
    Ok(RuntimeOptions {
        root: non_empty(&t.root),
        systemd_cgroup: t.systemd_cgroup,
        no_pivot_root: t.no_pivot_root,
        io_uid: t.io_uid,
        io_gid: t.io_gid,
        shim_cgroup: non_empty(&t.shim_cgroup),
        criu_image_path: non_empty(&t.criu_image_path),
        criu_work_path: non_empty(&t.criu_work_path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_runc_options_bare_and_prefixed() {
        let mut o = oci::Options::new();
        o.systemd_cgroup = true;
        o.root = "/run/x".into();
        o.io_uid = 7;
        let value = o.write_to_bytes().expect("encode");
        for url in [
            "containerd.runc.v1.Options",
            "type.googleapis.com/containerd.runc.v1.Options",
        ] {
            let any = Any {
                type_url: url.into(),
                value: value.clone(),
                ..Default::default()
            };
            let d = decode(Some(&any)).expect("decode");
            assert!(d.systemd_cgroup);
            assert_eq!(d.root.as_deref(), Some("/run/x"));
            assert_eq!(d.io_uid, 7);
        }
    }

    #[test]
    fn restore_image_from_the_checkpoint_else_criu_image_path() {
        // What containerd's WithRestoreImagePath sends for a runtime not named
        // io.containerd.runc.*: the legacy CreateOptions with CriuImagePath.
        let c = runrs_proto::runctypes::CreateOptions {
            criu_image_path: "/var/lib/cp/img".into(),
            ..Default::default()
        };
        let any = Any {
            type_url: "containerd.linux.runc.CreateOptions".into(),
            value: prost::Message::encode_to_vec(&c),
            ..Default::default()
        };
        let d = decode(Some(&any)).expect("decode");
        assert_eq!(
            d.restore_image(""),
            Some(std::path::PathBuf::from("/var/lib/cp/img"))
        );
        assert_eq!(
            d.restore_image("/run/ctd-restore"),
            Some(std::path::PathBuf::from("/run/ctd-restore"))
        );
        assert_eq!(RuntimeOptions::default().restore_image(""), None);
    }

    #[test]
    fn decodes_legacy_and_cri() {
        let c = runrs_proto::runctypes::CreateOptions {
            no_pivot_root: true,
            io_gid: 5,
            ..Default::default()
        };
        let any = Any {
            type_url: "containerd.linux.runc.CreateOptions".into(),
            value: prost::Message::encode_to_vec(&c),
            ..Default::default()
        };
        let d = decode(Some(&any)).expect("decode");
        assert!(d.no_pivot_root);
        assert_eq!(d.io_gid, 5);

        let r = runrs_proto::runtimeoptions::Options {
            config_body: b"BinaryName = \"x\"\nSystemdCgroup = true\nRoot = \"/run/r\"\n".to_vec(),
            ..Default::default()
        };
        let any = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: prost::Message::encode_to_vec(&r),
            ..Default::default()
        };
        let d = decode(Some(&any)).expect("decode");
        assert!(d.systemd_cgroup);
        assert_eq!(d.root.as_deref(), Some("/run/r"));
        assert!(decode(None).expect("none") == RuntimeOptions::default());
        let bad = Any {
            type_url: "foo.Bar".into(),
            value: vec![1],
            ..Default::default()
        };
        assert!(matches!(
            decode(Some(&bad)),
            Err(ShimError::InvalidArgument(_))
        ));
    }

    // Issue 15: the hand-written parser cut every line at `#`, also inside a string.
    #[test]
    fn toml_hash_inside_a_string_is_not_a_comment() {
        let o = from_toml("Root = \"/run/a#b\" # a comment\n").expect("parse");
        assert_eq!(o.root.as_deref(), Some("/run/a#b"));
    }

    // Issue 15, found again by fuzz_toml_options and fuzz_runtime_options (a literal
    // string did not round-trip): TOML literal strings ('...', the style of
    // deploy/containerd-runrs-v3.toml) kept their quotes; escapes were not decoded.
    #[test]
    fn toml_literal_and_escaped_strings() {
        let o = from_toml("Root = '/run/containerd/runrs'\nShimCgroup = \"a\\\"b\\u00e9\"\n")
            .expect("parse");
        assert_eq!(o.root.as_deref(), Some("/run/containerd/runrs"));
        assert_eq!(o.shim_cgroup.as_deref(), Some("a\"b\u{e9}"));
    }

    // Issue 15: keys of a table were read as top-level options.
    #[test]
    fn toml_keys_of_a_table_are_not_options() {
        let o = from_toml("SystemdCgroup = false\n[runsc_config]\nSystemdCgroup = true\n")
            .expect("parse");
        assert!(!o.systemd_cgroup);
    }

    #[test]
    fn toml_errors_name_the_line_and_the_key() {
        let e = from_toml("Root = \"/x\"\nIoUid = -1\n").expect_err("negative uid");
        assert!(e.starts_with("line 2: "), "{e}");
        let e = from_toml("SystemdCgroup = \"yes\"").expect_err("string for a bool");
        assert!(e.contains("bool"), "{e}");
        assert!(from_toml("Root = \"unterminated\n").is_err());
        assert_eq!(from_toml("").expect("empty"), RuntimeOptions::default());
    }
}
