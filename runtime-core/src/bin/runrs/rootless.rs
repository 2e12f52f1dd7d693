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

/// Whether the cgroups are rootless: `--rootless` when given; else (auto) for a
/// non-zero euid, and for uid 0 in a user namespace: with the cgroupfs driver always
/// (its cgroup permissions are unknown; Podman's rootless mode runs the runtime so),
/// with the systemd driver when that uid 0 is an ordinary user outside (runc asks the
/// user bus for its OwnerUID; here the uid map says it). Rootless cgroupfs leaves out
/// hierarchies the caller may not write; rootless systemd uses the user's systemd.
pub fn cgroups(flag: Option<&str>, systemd_cgroup: bool) -> anyhow::Result<bool> {
    if let Some(b) = flag.map(parse).transpose()?.flatten() {
        return Ok(b);
    }
    let euid = nix::unistd::geteuid().as_raw();
    // On error, root (runc assumes OwnerUID 0 when busctl fails).
    let outer = || runtime_core::outer_uid().unwrap_or(0);
    Ok(auto(euid, in_userns(), systemd_cgroup, outer))
}

fn auto(euid: u32, in_userns: bool, systemd_cgroup: bool, outer: impl Fn() -> u32) -> bool {
    euid != 0 || (in_userns && (!systemd_cgroup || outer() != 0))
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
        let root = || 0;
        let user = || 1001;
        assert!(auto(1000, false, false, root));
        assert!(auto(1000, false, true, root));
        assert!(!auto(0, false, false, user));
        assert!(!auto(0, false, true, user));
        assert!(auto(0, true, false, root));
        // uid 0 of a user namespace: rootless systemd only when it is a user outside.
        assert!(!auto(0, true, true, root));
        assert!(auto(0, true, true, user));
    }
}
