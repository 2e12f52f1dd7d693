//! runc's (urfave/cli's) version and help entry points, which callers and runc's own
//! tests use: `-v`/`--version` prints `NAME version X`, `spec: ...` and
//! `libseccomp: ...` lines; `help` and `help CMD` print the help; an unknown command
//! (`foo`, `foo -h`, `help foo`) fails with "No help topic for 'foo'", exit 3.

use std::ffi::OsString;

use clap::Command;

/// Top-level flags that take a value (skipped while looking for the command name).
const VALUED: &[&str] = &[
    "root",
    "log",
    "log-format",
    "criu",
    "rootless",
    "resctrl-root",
];

/// urfave/cli's exit code for an unknown command.
const NO_TOPIC_EXIT: i32 = 3;

/// Handle `-v`/`--version` and `help [CMD]` before the command line is parsed; returns
/// when the command line asks for something else.
pub fn early(cmd: &mut Command, raw: &[OsString]) {
    let mut it = raw.iter().skip(1);
    while let Some(a) = it.next() {
        let Some(s) = a.to_str() else { return };
        if let Some(body) = s.strip_prefix('-') {
            let body = body.strip_prefix('-').unwrap_or(body);
            if body == "v" || body == "version" {
                print_version();
                std::process::exit(0)
            }
            if VALUED.contains(&body) {
                it.next();
            }
            continue;
        }
        if s != "help" && s != "h" {
            return;
        }
        let topic = it.next().and_then(|t| t.to_str());
        let printed = match topic {
            None => cmd.print_help(),
            Some(t) => match cmd.find_subcommand_mut(t) {
                Some(sub) => sub.print_help(),
                None => no_topic(t),
            },
        };
        std::process::exit(if printed.is_ok() { 0 } else { 1 })
    }
}

/// Fail like runc for an unknown command.
pub fn no_topic(name: &str) -> ! {
    eprintln!("No help topic for '{name}'");
    std::process::exit(NO_TOPIC_EXIT)
}

fn print_version() {
    let f = runtime_core::features();
    let seccomp = f
        .annotations
        .get("io.github.seccomp.libseccomp.version")
        .cloned()
        .unwrap_or_default();
    println!("runrs version {}", env!("CARGO_PKG_VERSION"));
    println!("spec: {}", f.oci_version_max);
    println!("libseccomp: {seccomp}");
}
