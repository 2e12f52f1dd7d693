//! runc's command line is parsed by urfave/cli, which differs from clap in two ways that
//! callers rely on:
//! - every long flag may be spelled with one dash (`-root`, `-log`, `-no-subreaper`,
//!   `list -format json`): containerd's runc shim with `BinaryName = runrs` restores with
//!   `-no-subreaper`, so `docker start --checkpoint` needs it;
//! - a repeated flag overrides the earlier one (Podman 4.3 sends
//!   `checkpoint --leave-running --leave-running`; `--root A --root B` means B).
//!
//! [`normalize`] rewrites single-dash long flags into the double-dash form before clap
//! sees them, and [`overriding`] lets every flag of every command override itself.

use std::ffi::{OsStr, OsString};

use clap::{Arg, Command};

/// `cmd` and all its subcommands with `args_override_self`: the last repeat wins.
pub fn overriding(cmd: Command) -> Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    let mut cmd = cmd.args_override_self(true);
    for n in names {
        cmd = cmd.mut_subcommand(n, overriding);
    }
    cmd
}

fn long_arg<'a>(cmd: &'a Command, name: &str) -> Option<&'a Arg> {
    cmd.get_arguments().find(|a| {
        a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name))
    })
}

fn short_arg(cmd: &Command, c: char) -> Option<&Arg> {
    cmd.get_arguments().find(|a| a.get_short() == Some(c))
}

fn takes_value(a: &Arg) -> bool {
    a.get_action().takes_values()
}

/// The arguments with every single-dash spelling of a long flag of the command being
/// parsed (`-root`, `-root=/x`) turned into `--root`. `cmd` must be built
/// ([`Command::build`]) so that global flags are known to the subcommands.
///
/// Flags are rewritten up to the first positional argument of a command without
/// subcommands (runc stops parsing flags there too): what follows a container id, such
/// as `exec ID ls -la`, is the container's and stays as it is, as does everything after
/// `--`. Anything that is not a known long flag is left alone, for clap to judge.
pub fn normalize(cmd: &Command, args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut it = args.into_iter();
    let mut out: Vec<OsString> = it.next().into_iter().collect();
    let mut cur = cmd;
    let mut value_next = false;
    for arg in it.by_ref() {
        if value_next {
            value_next = false;
            out.push(arg);
            continue;
        }
        let Some(s) = arg.to_str().map(str::to_owned) else {
            out.push(arg);
            continue;
        };
        if s == "--" {
            out.push(arg);
            break;
        }
        if let Some(body) = s.strip_prefix("--") {
            let (name, inline) = split_value(body);
            value_next = !inline && long_arg(cur, name).is_some_and(takes_value);
            out.push(arg);
            continue;
        }
        if let Some(body) = s.strip_prefix('-').filter(|b| !b.is_empty()) {
            let (name, inline) = split_value(body);
            if name.chars().count() > 1 {
                if let Some(a) = long_arg(cur, name) {
                    value_next = !inline && takes_value(a);
                    out.push(OsString::from(format!("-{s}")));
                    continue;
                }
            } else if let Some(a) = name.chars().next().and_then(|c| short_arg(cur, c)) {
                value_next = !inline && takes_value(a);
            }
            out.push(arg);
            continue;
        }
        if let Some(sub) = cur.find_subcommand(OsStr::new(&s)) {
            cur = sub;
            out.push(arg);
            continue;
        }
        // The first positional of a leaf command: the rest is not ours to rewrite.
        out.push(arg);
        break;
    }
    out.extend(it);
    out
}

fn split_value(body: &str) -> (&str, bool) {
    match body.split_once('=') {
        Some((n, _)) => (n, true),
        None => (body, false),
    }
}

/// The value of global flag `--name` (any spelling, last one wins) in raw arguments, for
/// reporting a usage error before clap produced anything.
pub fn global_value(args: &[OsString], name: &str) -> Option<OsString> {
    let mut found = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let Some(s) = a.to_str() else { continue };
        if s == "--" {
            break;
        }
        let body = s.trim_start_matches('-');
        if body.len() == s.len() {
            continue;
        }
        match body.split_once('=') {
            Some((n, v)) if n == name => found = Some(OsString::from(v)),
            None if body == name => found = it.next().cloned(),
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn norm(args: &[&str]) -> Vec<String> {
        let mut cmd = crate::Cli::command();
        cmd.build();
        normalize(&cmd, args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.into_string().expect("utf8"))
            .collect()
    }

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        assert_eq!(
            norm(&["runrs", "-root", "/r", "-log", "/l", "list", "-format", "json"]),
            ["runrs", "--root", "/r", "--log", "/l", "list", "--format", "json"]
        );
        assert_eq!(
            norm(&[
                "runrs",
                "-root=/r",
                "restore",
                "-no-subreaper",
                "-bundle",
                "/b",
                "-d",
                "id"
            ]),
            [
                "runrs",
                "--root=/r",
                "restore",
                "--no-subreaper",
                "--bundle",
                "/b",
                "-d",
                "id"
            ]
        );
    }

    #[test]
    fn the_containers_arguments_and_values_stay_as_they_are() {
        // After the id: the process' own arguments; a value that looks like a flag.
        assert_eq!(
            norm(&["runrs", "exec", "-t", "id", "ls", "-root", "-la"]),
            ["runrs", "exec", "-t", "id", "ls", "-root", "-la"]
        );
        assert_eq!(
            norm(&["runrs", "--log", "-debug", "list"]),
            ["runrs", "--log", "-debug", "list"]
        );
        assert_eq!(
            norm(&["runrs", "kill", "id", "-KILL"]),
            ["runrs", "kill", "id", "-KILL"]
        );
        assert_eq!(norm(&["runrs", "-nonsense"]), ["runrs", "-nonsense"]);
    }

    #[test]
    fn repeated_flags_take_the_last_value() {
        let cmd = overriding(crate::Cli::command());
        let m = cmd
            .try_get_matches_from([
                "runrs", "--root", "/a", "--root", "/b", "delete", "--force", "--force", "x",
            ])
            .expect("repeats are accepted");
        assert_eq!(
            m.get_one::<std::path::PathBuf>("root")
                .map(|p| p.display().to_string()),
            Some("/b".into())
        );
    }

    #[test]
    fn global_values_are_found_in_raw_arguments() {
        let args: Vec<OsString> = [
            "runrs",
            "-log",
            "/a",
            "--log-format=json",
            "--log",
            "/b",
            "bad",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        assert_eq!(global_value(&args, "log"), Some("/b".into()));
        assert_eq!(global_value(&args, "log-format"), Some("json".into()));
        assert_eq!(global_value(&args, "debug"), None);
    }
}
