//! The container process: args, env, cwd, user and groups, umask, and how its exit status
//! becomes the exit code of `run`.

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use integration::config::{remove_namespace, set_args, sh};
use integration::{Bundle, Runtime};
use serde_json::json;

fn kv(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_end().to_owned()))
        .collect()
}

fn get<'a>(m: &'a BTreeMap<String, String>, k: &str) -> Result<&'a str> {
    m.get(k)
        .map(String::as_str)
        .with_context(|| format!("no {k} in {m:?}"))
}

#[test]
fn args_env_and_cwd() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::new("proc-args")?;
    // A directory that exists only inside the rootfs.
    std::fs::create_dir(b.rootfs().join("runrs-it-workdir"))?;
    b.configure(|c| {
        set_args(
            c,
            &[
                "sh",
                "-c",
                "echo argv0=$0; echo argc=$#; echo arg1=$1; echo arg2=$2; echo cwd=$(pwd); \
                 echo foo=$FOO; echo spaced=$SPACED; echo home=$HOME; echo path=$PATH; \
                 echo nenv=$(env | grep -c -E '^(FOO|SPACED)=')",
                "zero",
                "one two",
                "",
            ],
        );
        c["process"]["env"] = json!(["PATH=/usr/bin:/bin", "FOO=bar", "SPACED=a b  c"]);
        c["process"]["cwd"] = json!("/runrs-it-workdir");
    })?;
    let v = kv(&rt.output(&b)?);
    ensure!(
        get(&v, "argv0")? == "zero" && get(&v, "argc")? == "2",
        "{v:?}"
    );
    ensure!(
        get(&v, "arg1")? == "one two" && get(&v, "arg2")?.is_empty(),
        "args not passed verbatim: {v:?}"
    );
    ensure!(get(&v, "cwd")? == "/runrs-it-workdir", "{v:?}");
    ensure!(
        get(&v, "foo")? == "bar" && get(&v, "spaced")? == "a b c" && get(&v, "nenv")? == "2",
        "{v:?}"
    );
    ensure!(get(&v, "path")? == "/usr/bin:/bin", "{v:?}");
    // HOME is not in process.env: the runtime sets it from /etc/passwd (root -> /root).
    ensure!(get(&v, "home")? == "/root", "HOME: {v:?}");
    rt.assert_no_leftovers(&b)
}

#[test]
fn relative_args_are_looked_up_in_the_containers_path() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("proc-path", |c| {
        set_args(c, &["echo", "found"]);
        c["process"]["env"] = json!(["PATH=/bin"]);
    })?;
    ensure!(rt.output(&b)? == "found\n");
    rt.assert_no_leftovers(&b)
}

#[test]
fn user_group_and_additional_gids() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("proc-user", |c| {
        c["process"]["user"] = json!({ "uid": 1000, "gid": 1001, "additionalGids": [5, 1002] });
        sh(
            c,
            "echo u=$(id -u); echo g=$(id -g); echo groups=$(id -G); echo home=$HOME; \
             grep -E '^(Uid|Gid|Groups):' /proc/self/status | tr -s '\\t ' ' ' | sed 's/: /=/'",
        );
    })?;
    let v = kv(&rt.output(&b)?);
    ensure!(get(&v, "u")? == "1000" && get(&v, "g")? == "1001", "{v:?}");
    ensure!(
        get(&v, "Uid")? == "1000 1000 1000 1000",
        "real/effective/saved/fs uid: {v:?}"
    );
    ensure!(
        get(&v, "Gid")? == "1001 1001 1001 1001",
        "real/effective/saved/fs gid: {v:?}"
    );
    // Supplementary groups are exactly additionalGids (the primary gid is not added).
    ensure!(get(&v, "Groups")?.trim() == "5 1002", "{v:?}");
    ensure!(get(&v, "groups")? == "1001 5 1002", "{v:?}");
    // uid 1000 has no /etc/passwd entry: HOME falls back to "/".
    ensure!(get(&v, "home")? == "/", "{v:?}");
    rt.assert_no_leftovers(&b)
}

#[test]
fn umask() -> Result<()> {
    let rt = Runtime::new()?;
    let set = Bundle::with_config("proc-umask", |c| {
        c["process"]["user"]["umask"] = json!(0o077);
        c["root"]["readonly"] = json!(false);
        sh(c, "umask; touch /tmp/f; stat -c %a /tmp/f");
    })?;
    ensure!(
        rt.output(&set)? == "0077\n600\n",
        "process.user.umask 077 not applied"
    );
    rt.assert_no_leftovers(&set)?;
    let default = Bundle::with_config("proc-umask-default", |c| sh(c, "umask"))?;
    ensure!(
        rt.output(&default)? == "0022\n",
        "default umask is not 0022"
    );
    rt.assert_no_leftovers(&default)
}

#[test]
fn exit_code_is_propagated() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("proc-exit7", |c| sh(c, "echo before; exit 7"))?;
    let out = rt.run(&b, b"", Duration::from_secs(30))?;
    ensure!(out.code() == 7 && out.stdout == "before\n", "{out}");
    rt.assert_no_leftovers(&b)
}

#[test]
fn signalled_process_exits_128_plus_signal() -> Result<()> {
    let rt = Runtime::new()?;
    // Without a pid namespace the shell is not a namespace init, so it can kill itself.
    let b = Bundle::with_config("proc-kill9", |c| {
        remove_namespace(c, "pid");
        sh(c, "kill -9 $$");
    })?;
    let out = rt.run(&b, b"", Duration::from_secs(30))?;
    ensure!(out.code() == 137, "want 137 (128 + SIGKILL): {out}");
    rt.assert_no_leftovers(&b)
}

#[test]
fn run_returns_137_when_the_container_is_killed() -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config("proc-runkill", |c| set_args(c, &["sleep", "30"]))?;
    let out = thread::scope(|s| -> Result<_> {
        let running = s.spawn(|| rt.run(&b, b"", Duration::from_secs(30)));
        let killed = rt
            .wait_for_status(b.id(), "running", Duration::from_secs(10))
            .and_then(|_| rt.kill(b.id(), "KILL")?.ok());
        if killed.is_err() {
            let _ = rt.delete_force(b.id());
        }
        let out = running
            .join()
            .map_err(|_| anyhow::anyhow!("run thread panicked"))?;
        killed?;
        out
    })?;
    ensure!(out.code() == 137, "{out}");
    ensure!(
        rt.list()?.is_empty(),
        "run did not delete the container after it exited"
    );
    rt.assert_no_leftovers(&b)
}
