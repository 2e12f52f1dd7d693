//! `runrs ps`: the processes of a container. `--format json` prints the host pids as a
//! JSON array; `table` (the default) runs `ps` with the given options (default `-ef`)
//! and keeps the header and the lines whose PID column is one of the container's, as
//! runc does.

use anyhow::Context;
use runtime_core::Container;

/// Arguments of `runrs ps`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// table or json.
    #[arg(short, long, default_value = "table")]
    format: String,
    /// Container id.
    id: String,
    /// Options passed to ps(1) (default: -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

/// Run `runrs ps`.
pub fn run(root: &std::path::Path, a: Args) -> anyhow::Result<i32> {
    let c = Container::load(root, &a.id)?;
    let pids = c.processes()?;
    match a.format.as_str() {
        "json" => {
            println!("{}", serde_json::to_string(&pids)?);
            return Ok(0);
        }
        "table" => {}
        f => anyhow::bail!("invalid format option {f:?} (table or json)"),
    }
    let args = if a.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_args
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        anyhow::bail!(
            "ps {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    print!("{}", filter(&String::from_utf8_lossy(&out.stdout), &pids)?);
    Ok(0)
}

/// The header and the lines of `ps` output whose PID is in `pids`.
pub fn filter(ps_out: &str, pids: &[i32]) -> anyhow::Result<String> {
    let mut lines = ps_out.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| anyhow::anyhow!("couldn't find PID field in ps output"))?;
    let mut out = format!("{header}\n");
    for l in lines {
        let pid = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(l);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::filter;

    #[test]
    fn keeps_header_and_container_pids() {
        let ps = "UID   PID  PPID CMD\nroot    1     0 init\nroot   42     1 sleep 1\nroot  421     1 other\n";
        assert_eq!(
            filter(ps, &[42]).expect("filter"),
            "UID   PID  PPID CMD\nroot   42     1 sleep 1\n"
        );
        assert!(filter("USER COMMAND\n", &[1]).is_err());
    }
}
