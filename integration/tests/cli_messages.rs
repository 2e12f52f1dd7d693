//! Wording that runc's callers match on (issues 14 and 16). Docker turns a failed create
//! into exit code 127 when the error says `no such file or directory` or `executable
//! file not found`, 126 when it says `permission denied`, else 125: the words must be
//! runc's (Go's exec.LookPath). Validated against runc with
//! `RUNRS_TEST_RUNTIME=/usr/sbin/runc`.

use anyhow::{ensure, Result};
use integration::config::set_args;
use integration::{Bundle, Runtime};

fn create_says(args: &[&str], name: &str, want: &str) -> Result<()> {
    let rt = Runtime::new()?;
    let b = Bundle::with_config(name, |c| set_args(c, args))?;
    let out = rt.create(&b)?.fails()?;
    // The message comes as a logrus line: msg="... exec: \"/x\": ..." (quotes escaped).
    let msg = out.stderr.replace("\\\"", "\"");
    ensure!(msg.contains(want), "stderr does not say {want:?}: {out}");
    rt.assert_no_leftovers(&b)?;
    Ok(())
}

#[test]
fn a_missing_program_is_worded_like_runc() -> Result<()> {
    create_says(
        &["/runrs-it-nonexistent"],
        "msg-nobin",
        r#"exec: "/runrs-it-nonexistent": stat /runrs-it-nonexistent: no such file or directory"#,
    )?;
    create_says(
        &["runrs-it-no-such-cmd"],
        "msg-nopath",
        r#"exec: "runrs-it-no-such-cmd": executable file not found in $PATH"#,
    )
}

#[test]
fn a_program_that_is_not_executable_is_worded_like_runc() -> Result<()> {
    create_says(
        &["/etc/passwd"],
        "msg-noexec",
        r#"exec: "/etc/passwd": permission denied"#,
    )
}
