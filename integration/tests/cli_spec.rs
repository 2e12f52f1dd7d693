//! `spec`: the default config.json (what `runc spec` writes) and its refusal to overwrite.

use anyhow::{ensure, Context, Result};
use integration::cmd::{run_capture, CMD_TIMEOUT};
use integration::config::namespaces;
use integration::runtime_path;
use serde_json::{json, Value};

fn spec_in(dir: &std::path::Path) -> Result<integration::CmdOutput> {
    let mut cmd = std::process::Command::new(runtime_path()?);
    cmd.arg("spec").arg("--bundle").arg(dir);
    run_capture(cmd, None, CMD_TIMEOUT)
}

#[test]
fn default_spec() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("runrs-it-spec-")
        .tempdir()?;
    spec_in(dir.path())?.ok()?;
    let c: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json"))?)?;
    ensure!(
        c["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "ociVersion: {}",
        c["ociVersion"]
    );
    let p = &c["process"];
    ensure!(
        p["terminal"] == json!(true) && p["args"] == json!(["sh"]) && p["cwd"] == "/",
        "process: {p}"
    );
    ensure!(
        p["user"]["uid"] == 0 && p["user"]["gid"] == 0,
        "user: {}",
        p["user"]
    );
    ensure!(p["noNewPrivileges"] == json!(true), "noNewPrivileges: {p}");
    let env: Vec<&str> = p["env"]
        .as_array()
        .context("env")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    ensure!(
        env.iter().any(|e| e.starts_with("PATH=")) && env.contains(&"TERM=xterm"),
        "env: {env:?}"
    );
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    for set in ["bounding", "effective", "permitted", "ambient"] {
        ensure!(
            p["capabilities"][set] == caps,
            "capabilities.{set}: {}",
            p["capabilities"]
        );
    }
    ensure!(
        p["rlimits"] == json!([{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }]),
        "rlimits: {}",
        p["rlimits"]
    );
    ensure!(
        c["root"] == json!({ "path": "rootfs", "readonly": true }),
        "root: {}",
        c["root"]
    );
    ensure!(c["hostname"].is_string(), "hostname: {}", c["hostname"]);
    let dests: Vec<&str> = c["mounts"]
        .as_array()
        .context("mounts")?
        .iter()
        .filter_map(|m| m["destination"].as_str())
        .collect();
    ensure!(
        dests
            == [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup"
            ],
        "mounts: {dests:?}"
    );
    let mut ns = namespaces(&c);
    ns.sort();
    ensure!(
        ns == ["ipc", "mount", "network", "pid", "uts"],
        "namespaces: {ns:?}"
    );
    ensure!(
        c["linux"]["resources"]["devices"] == json!([{ "allow": false, "access": "rwm" }]),
        "devices: {}",
        c["linux"]["resources"]
    );
    ensure!(c["linux"]["maskedPaths"]
        .as_array()
        .is_some_and(|a| a.contains(&json!("/proc/kcore"))));
    ensure!(c["linux"]["readonlyPaths"]
        .as_array()
        .is_some_and(|a| a.contains(&json!("/proc/sys"))));
    Ok(())
}

#[test]
fn spec_does_not_overwrite() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("runrs-it-spec-")
        .tempdir()?;
    std::fs::write(dir.path().join("config.json"), "keep me")?;
    let out = spec_in(dir.path())?.fails()?;
    out.stderr_mentions("exists")?;
    ensure!(std::fs::read_to_string(dir.path().join("config.json"))? == "keep me");
    Ok(())
}
