//! Capturing `ctr events` for a whole run, and reading the task events of one container.
//!
//! `ctr events` prints one line per event: `<timestamp> <namespace> <topic> <json>`, the
//! timestamp with spaces in it (`2026-11-29 10:03:52.21 +0000 UTC`), the JSON with
//! protobuf defaults left out (an `exit_status` of 0 is absent). The subscription has no
//! "ready" signal, so [`EventLog::barrier`] publishes an event of its own (a namespace
//! label) and waits until it comes back: every event published after that is captured.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::ctr::Ctr;

/// One event as `ctr events` printed it.
#[derive(Debug, Clone)]
pub struct Event {
    /// Namespace.
    pub namespace: String,
    /// Topic, e.g. `/tasks/exit`.
    pub topic: String,
    /// The event body.
    pub body: Value,
    /// The line as printed.
    pub line: String,
}

impl Event {
    /// An integer field of the body (absent: 0, as protobuf JSON leaves out defaults).
    pub fn int(&self, field: &str) -> i64 {
        self.body[field].as_i64().unwrap_or(0)
    }

    /// A string field of the body (absent: "").
    pub fn str(&self, field: &str) -> &str {
        self.body[field].as_str().unwrap_or("")
    }
}

/// Parses one line of `ctr events` output; None for anything else.
pub fn parse_line(line: &str, namespace: &str) -> Option<Event> {
    let marker = format!(" {namespace} /");
    let at = line.find(&marker)?;
    let rest = &line[at + marker.len() - 1..];
    let (topic, json) = rest.split_once(' ').unwrap_or((rest, "{}"));
    Some(Event {
        namespace: namespace.to_owned(),
        topic: topic.to_owned(),
        body: serde_json::from_str(json.trim()).unwrap_or(Value::Null),
        line: line.to_owned(),
    })
}

/// A running `ctr events`, writing into a file; killed on drop.
pub struct EventLog {
    child: Mutex<Child>,
    path: PathBuf,
    ctr: Ctr,
}

impl EventLog {
    /// Starts `ctr events` into `path` and waits until it receives events.
    pub fn start(ctr: &Ctr, path: &Path) -> Result<Self> {
        File::create(path).with_context(|| format!("create {}", path.display()))?;
        let log = Self {
            child: Mutex::new(Self::spawn(ctr, path)?),
            path: path.to_path_buf(),
            ctr: ctr.clone(),
        };
        log.barrier()
            .context("`ctr events` never received an event")?;
        Ok(log)
    }

    fn spawn(ctr: &Ctr, path: &Path) -> Result<Child> {
        let out = File::options()
            .append(true)
            .open(path)
            .with_context(|| format!("open {}", path.display()))?;
        let err = out.try_clone()?;
        ctr.command(["events"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("start `ctr events`")
    }

    /// Subscribes again (after containerd restarted, which ends `ctr events`), appending
    /// to the same file; waits until events arrive.
    pub fn reconnect(&self) -> Result<()> {
        {
            let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
            let _ = child.kill();
            let _ = child.wait();
            *child = Self::spawn(&self.ctr, &self.path)?;
        }
        self.barrier()
            .context("`ctr events` never received an event after reconnecting")
    }

    /// Publishes a namespace label update and waits until `ctr events` printed it, so the
    /// events published before this call are in the file.
    pub fn barrier(&self) -> Result<()> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let deadline = Instant::now() + Duration::from_secs(15);
        let ns = self.ctr.namespace.clone();
        loop {
            let value = format!(
                "{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            );
            self.ctr.ok([
                "namespaces",
                "label",
                &ns,
                &format!("runrs-e2e.barrier={value}"),
            ])?;
            let needle = format!("\"runrs-e2e.barrier\":\"{value}\"");
            let round = Instant::now() + Duration::from_secs(1);
            while Instant::now() < round {
                if self.text()?.contains(&needle) {
                    return Ok(());
                }
                thread::sleep(Duration::from_millis(10));
            }
            if Instant::now() > deadline {
                bail!(
                    "no /namespaces/update event within 15 s; captured:\n{}",
                    self.text()?
                );
            }
        }
    }

    fn text(&self) -> Result<String> {
        Ok(String::from_utf8_lossy(
            &fs::read(&self.path).with_context(|| format!("read {}", self.path.display()))?,
        )
        .into_owned())
    }

    /// Every event captured so far.
    pub fn events(&self) -> Result<Vec<Event>> {
        let ns = &self.ctr.namespace;
        Ok(self
            .text()?
            .lines()
            .filter_map(|l| parse_line(l, ns))
            .collect())
    }

    /// The `/tasks/*` events of container `id`, in the order printed.
    pub fn task_events(&self, id: &str) -> Result<Vec<Event>> {
        Ok(self
            .events()?
            .into_iter()
            .filter(|e| e.topic.starts_with("/tasks/") && e.str("container_id") == id)
            .collect())
    }

    /// Waits until container `id` has a `topic` event, then for a barrier (so whatever
    /// came with it is in too); returns the task events of `id`.
    pub fn wait_task_event(&self, id: &str, topic: &str, timeout: Duration) -> Result<Vec<Event>> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.task_events(id)?.iter().any(|e| e.topic == topic) {
                self.barrier()?;
                return self.task_events(id);
            }
            if Instant::now() > deadline {
                bail!(
                    "no {topic} event for {id} within {timeout:?}; its events:\n{}",
                    describe(&self.task_events(id)?)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The events as printed, one per line (for messages).
pub fn describe(events: &[Event]) -> String {
    if events.is_empty() {
        return "  (none)".into();
    }
    events
        .iter()
        .map(|e| format!("  {} {}", e.topic, e.body))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The topics of `events`.
pub fn topics(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.topic.as_str()).collect()
}

impl Drop for EventLog {
    fn drop(&mut self) {
        // Our own child: kill it by its pid and reap it.
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ctr_events_lines() {
        let l = r#"2026-11-29 10:03:52.736646627 +0000 UTC runrs-e2e /tasks/exit {"container_id":"c1","id":"c1","pid":8659,"exit_status":137,"exited_at":"2026-11-29T10:03:52.733959475Z"}"#;
        let e = parse_line(l, "runrs-e2e").expect("an event");
        assert_eq!(e.topic, "/tasks/exit");
        assert_eq!(e.str("container_id"), "c1");
        assert_eq!(e.int("pid"), 8659);
        assert_eq!(e.int("exit_status"), 137);
        let l = r#"2026-11-29 10:05:08.88 +0000 UTC runrs-e2e /tasks/start {"container_id":"c2","pid":12213}"#;
        let e = parse_line(l, "runrs-e2e").expect("an event");
        assert_eq!(e.int("exit_status"), 0);
        assert!(parse_line("ctr: some error", "runrs-e2e").is_none());
        assert!(parse_line(l, "other").is_none());
    }
}
