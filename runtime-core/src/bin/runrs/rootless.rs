//! runc's rootless mode: when the caller is not the real root, cgroup hierarchies it may
//! not write are left out instead of failing a create (`--rootless auto|true|false`, as
//! runc's `shouldUseRootlessCgroupManager`), and state lives under XDG_RUNTIME_DIR.

/// Whether the process runs in a user namespace other than the initial one.
pub fn in_userns() -> bool {
    runtime_core::running_in_userns()
}

/// `--rootless`: true, false (runc accepts Go's boolean spellings) or auto (None).
fn parse(value: &str) -> anyhow::Result<Option<bool>> {
    match value {
        "" | "auto" | "AUTO" | "Auto" => Ok(None),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Some(true)),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Some(false)),
        other => anyhow::bail!("invalid value {other:?} for --rootless: want true, false or auto"),
    }
}

/// Whether cgroup permission errors are ignored: `--rootless` when given; else (auto)
/// for a non-zero euid, and for uid 0 in a user namespace with the cgroupfs driver
/// (its cgroup permissions are unknown; Podman's rootless mode runs the runtime so).
pub fn cgroups(flag: Option<&str>, systemd_cgroup: bool) -> anyhow::Result<bool> {
    if let Some(b) = flag.map(parse).transpose()?.flatten() {
        return Ok(b);
    }
    let euid = nix::unistd::geteuid().as_raw();
    Ok(auto(euid, in_userns(), systemd_cgroup))
}

fn auto(euid: u32, in_userns: bool, systemd_cgroup: bool) -> bool {
    euid != 0 || (in_userns && !systemd_cgroup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_and_auto() {
        assert_eq!(parse("auto").expect("auto"), None);
        assert_eq!(parse("true").expect("true"), Some(true));
        assert_eq!(parse("0").expect("0"), Some(false));
        let e = parse("yes").expect_err("yes").to_string();
        assert!(e.contains("--rootless") && e.contains("yes"), "{e}");
        assert!(auto(1000, false, false));
        assert!(!auto(0, false, false));
        assert!(auto(0, true, false));
        assert!(!auto(0, true, true));
    }
}
