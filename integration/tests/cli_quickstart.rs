//! The runc README quick start, verbatim: spec, create, start, state/list in every state,
//! delete; and the shape of `state`, `list --format json` and the `list` table.

use std::time::{Duration, SystemTime};

use anyhow::{ensure, Context, Result};
use integration::config::set_args;
use integration::time::parse_rfc3339;
use integration::{proc, Bundle, Runtime, State};

/// Checks the fields every state object must carry, for container `b` in `status`.
fn check_state(st: &State, b: &Bundle, status: &str, t0: SystemTime) -> Result<()> {
    let raw = &st.raw;
    ensure!(st.id == b.id(), "id: {raw}");
    ensure!(st.status == status, "status is not {status}: {raw}");
    ensure!(!st.oci_version.is_empty(), "ociVersion empty: {raw}");
    ensure!(
        raw["ociVersion"].is_string(),
        "ociVersion not a string: {raw}"
    );
    ensure!(
        st.bundle == b.path().to_string_lossy(),
        "bundle is not the absolute bundle path: {raw}"
    );
    let rootfs = st.rootfs.as_deref().context("no rootfs field")?;
    ensure!(
        rootfs == b.rootfs().to_string_lossy(),
        "rootfs is not <bundle>/rootfs: {raw}"
    );
    let created = parse_rfc3339(st.created.as_deref().context("no created field")?)?;
    let now = SystemTime::now();
    ensure!(
        created + Duration::from_secs(5) >= t0 && created <= now + Duration::from_secs(5),
        "created {:?} is not between the test start and now: {raw}",
        st.created
    );
    ensure!(raw["owner"].is_string(), "owner is not a string: {raw}");
    if status == "stopped" {
        ensure!(st.pid == 0, "pid of a stopped container is not 0: {raw}");
    } else {
        ensure!(st.pid > 0, "pid of a {status} container is not > 0: {raw}");
        ensure!(
            proc::pid_alive(st.pid),
            "pid {} is not alive: {raw}",
            st.pid
        );
    }
    Ok(())
}

/// One row of `list` for the container: fields split on whitespace.
fn list_row(rt: &Runtime, id: &str) -> Result<Vec<String>> {
    let out = rt.cli(["list"])?.ok()?;
    let mut lines = out.stdout.lines();
    let header: Vec<&str> = lines
        .next()
        .context("list printed nothing")?
        .split_whitespace()
        .collect();
    ensure!(
        header == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        "list header: {header:?}\n{out}"
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .filter(|r: &Vec<String>| !r.is_empty())
        .collect();
    ensure!(
        rows.len() == 1,
        "list shows {} rows, want 1:\n{out}",
        rows.len()
    );
    ensure!(
        rows[0].len() == 6 && rows[0][0] == id,
        "list row: {:?}\n{out}",
        rows[0]
    );
    Ok(rows[0].clone())
}

#[test]
fn quick_start_lifecycle() -> Result<()> {
    let t0 = SystemTime::now();
    let rt = Runtime::new()?;
    let b = Bundle::with_config("quickstart", |c| set_args(c, &["sleep", "2"]))?;
    let id = b.id();

    // Nothing yet: list is empty (runc prints `null` for --format json, accepted as []).
    ensure!(rt.list()?.is_empty(), "list not empty before create");

    rt.create(&b)?.ok()?;
    let st = rt.state(id)?;
    check_state(&st, &b, "created", t0)?;
    let cg =
        proc::cgroup_procs(b.cgroups_path())?.context("no cgroup for the created container")?;
    ensure!(
        cg.contains(&(st.pid as i32)),
        "init pid {} not in its cgroup {}: {cg:?}",
        st.pid,
        b.cgroups_path()
    );
    ensure!(
        proc::ns_link(&st.pid.to_string(), "pid")? != proc::ns_link("self", "pid")?,
        "created init is in the host pid namespace"
    );

    let listed = rt.list()?;
    ensure!(listed.len() == 1, "list --format json: {listed:?}");
    check_state(&listed[0], &b, "created", t0)?;
    ensure!(
        listed[0].pid == st.pid && listed[0].created == st.created,
        "list and state disagree"
    );
    ensure!(
        listed[0].owner.as_deref() == Some("root"),
        "list owner is not root: {}",
        listed[0].raw
    );
    let row = list_row(&rt, id)?;
    ensure!(
        row[1] == st.pid.to_string() && row[2] == "created",
        "list row: {row:?}"
    );
    ensure!(
        row[3] == b.path().to_string_lossy()
            && Some(&row[4]) == st.created.as_ref()
            && row[5] == "root"
    );
    let quiet = rt.cli(["list", "-q"])?.ok()?;
    ensure!(quiet.stdout.trim() == id, "list -q: {quiet}");

    rt.start(id)?.ok()?;
    let st2 = rt.state(id)?;
    check_state(&st2, &b, "running", t0)?;
    ensure!(
        st2.pid == st.pid,
        "pid changed on start: {} -> {}",
        st.pid,
        st2.pid
    );
    ensure!(list_row(&rt, id)?[2] == "running");
    check_state(&rt.list()?[0], &b, "running", t0)?;

    let st3 = rt.wait_for_status(id, "stopped", Duration::from_secs(10))?;
    check_state(&st3, &b, "stopped", t0)?;
    let row = list_row(&rt, id)?;
    ensure!(row[1] == "0" && row[2] == "stopped", "list row: {row:?}");
    check_state(&rt.list()?[0], &b, "stopped", t0)?;

    rt.delete(id)?.ok()?;
    ensure!(rt.list()?.is_empty(), "list not empty after delete");
    let out = rt.cli(["state", id])?.fails()?;
    out.stderr_mentions("does not exist")?;
    rt.assert_no_leftovers(&b)
}

#[test]
fn containerd_style_invocation() -> Result<()> {
    // The command lines containerd's runc shim (go-runc) uses: global --log/--log-format json,
    // create with --pid-file, kill with a signal number, delete --force.
    let rt = Runtime::new()?;
    let b = Bundle::with_config("quickstart-shim", |c| set_args(c, &["sleep", "30"]))?;
    let log = b.path().join("log.json");
    let pid_file = b.path().join("init.pid");
    let (log_s, pid_s) = (
        log.to_string_lossy().into_owned(),
        pid_file.to_string_lossy().into_owned(),
    );
    let global = ["--log", log_s.as_str(), "--log-format", "json"];
    rt.detached_with_globals(&global, "create", &b, &["--pid-file", &pid_s])?
        .ok()?;
    let pid = std::fs::read_to_string(&pid_file).context("no pid file")?;
    let st = rt.state(b.id())?;
    ensure!(
        pid.trim() == st.pid.to_string(),
        "pid file {pid:?} != state pid {}",
        st.pid
    );
    let with_globals = |args: &[&str]| rt.cli(global.iter().chain(args));
    with_globals(&["start", b.id()])?.ok()?;
    ensure!(rt.state(b.id())?.status == "running");
    with_globals(&["kill", b.id(), "9"])?.ok()?;
    rt.wait_for_status(b.id(), "stopped", Duration::from_secs(10))?;
    with_globals(&["delete", "--force", b.id()])?.ok()?;
    if let Ok(text) = std::fs::read_to_string(&log) {
        for l in text.lines() {
            let v: serde_json::Value =
                serde_json::from_str(l).with_context(|| format!("log line is not JSON: {l}"))?;
            ensure!(
                v["level"] != "error",
                "error logged by successful commands: {l}"
            );
        }
    }
    rt.assert_no_leftovers(&b)
}
