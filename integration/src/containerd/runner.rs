//! A tiny test runner for the containerd suite (a `harness = false` test target).
//!
//! Why not libtest: the suite starts one private containerd per version, runs every
//! scenario against it and must stop it at the end, also when a scenario fails or
//! panics. libtest has no suite-level setup or teardown (a daemon in a `OnceLock` is
//! never dropped, so it would outlive the test binary), and it runs tests in parallel
//! threads, which on a 2-core CI machine makes timings noisy and ordering-dependent
//! checks (events) flaky. Here `main` owns the instances: each is a value whose `Drop`
//! tears it down, scenarios run one after another and a panic in one is caught and
//! reported as its failure.
//!
//! Arguments: words that do not start with `-` select checks whose name contains one of
//! them (`cargo test --test containerd_e2e -- tty closeio`); `--list` prints the check
//! names; other flags (`--nocapture`, `--test-threads`) are accepted and ignored.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;

/// How a check ended.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// It passed.
    Pass,
    /// It failed, with the message.
    Fail(String),
    /// It did not run, with the reason.
    Skip(String),
}

/// One check's result.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Where it ran, e.g. "containerd 1.6.20~ds1 / runrs".
    pub group: String,
    /// The check's name.
    pub name: String,
    /// Pass, fail or skip.
    pub verdict: Verdict,
    /// How long it took.
    pub elapsed: Duration,
}

/// Collects outcomes and prints them as they come and as a summary at the end.
pub struct Runner {
    filters: Vec<String>,
    /// `--list`: print names, run nothing.
    pub list_only: bool,
    outcomes: Vec<Outcome>,
    started: Instant,
    label: &'static str,
}

impl Runner {
    /// A runner configured from the command line.
    pub fn from_args() -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        Self {
            list_only: args.iter().any(|a| a == "--list"),
            filters: args.into_iter().filter(|a| !a.starts_with('-')).collect(),
            outcomes: Vec::new(),
            started: Instant::now(),
            label: "containerd e2e",
        }
    }

    /// Names the suite in the closing line (`<label>: N passed, N failed, N skipped`,
    /// which integration/run-tests.sh counts); the default is "containerd e2e".
    pub fn labelled(mut self, label: &'static str) -> Self {
        self.label = label;
        self
    }

    /// True if check `name` is selected by the command line.
    pub fn selected(&self, name: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }

    /// Runs `f` as check `name` of `group` (if selected), timing it and catching panics.
    pub fn check(&mut self, group: &str, name: &str, f: impl FnOnce() -> Result<()>) -> bool {
        if !self.selected(name) {
            return true;
        }
        self.always(group, name, f)
    }

    /// Runs `f` as check `name` of `group` whatever the selection (setup and teardown).
    pub fn always(&mut self, group: &str, name: &str, f: impl FnOnce() -> Result<()>) -> bool {
        let t = Instant::now();
        let verdict = match catch_unwind(AssertUnwindSafe(f)) {
            Ok(Ok(())) => Verdict::Pass,
            Ok(Err(e)) => Verdict::Fail(format!("{e:#}")),
            Err(p) => Verdict::Fail(format!(
                "panicked: {}",
                p.downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| p.downcast_ref::<&str>().copied())
                    .unwrap_or("?")
            )),
        };
        let passed = matches!(verdict, Verdict::Pass);
        self.record(Outcome {
            group: group.to_owned(),
            name: name.to_owned(),
            verdict,
            elapsed: t.elapsed(),
        });
        passed
    }

    /// Records that check `name` of `group` did not run, and why.
    pub fn skip(&mut self, group: &str, name: &str, reason: &str) {
        if self.list_only || !self.selected(name) {
            return;
        }
        self.record(Outcome {
            group: group.to_owned(),
            name: name.to_owned(),
            verdict: Verdict::Skip(reason.to_owned()),
            elapsed: Duration::ZERO,
        });
    }

    /// Records a failure outside any check (setup), so the run fails.
    pub fn fail(&mut self, group: &str, name: &str, message: String) {
        self.record(Outcome {
            group: group.to_owned(),
            name: name.to_owned(),
            verdict: Verdict::Fail(message),
            elapsed: Duration::ZERO,
        });
    }

    fn record(&mut self, o: Outcome) {
        let head = format!("[{}] {}", o.group, o.name);
        match &o.verdict {
            Verdict::Pass => println!("{head} ... ok ({:.2}s)", o.elapsed.as_secs_f64()),
            Verdict::Skip(r) => println!("{head} ... SKIPPED: {r}"),
            Verdict::Fail(m) => println!(
                "{head} ... FAILED ({:.2}s)\n    {}",
                o.elapsed.as_secs_f64(),
                m.replace('\n', "\n    ")
            ),
        }
        self.outcomes.push(o);
    }

    /// The outcomes so far.
    pub fn outcomes(&self) -> &[Outcome] {
        &self.outcomes
    }

    /// Prints the summary; the exit code is a failure if any check failed.
    pub fn finish(self) -> ExitCode {
        if self.list_only {
            return ExitCode::SUCCESS;
        }
        let count =
            |p: fn(&Verdict) -> bool| self.outcomes.iter().filter(|o| p(&o.verdict)).count();
        let passed = count(|v| matches!(v, Verdict::Pass));
        let failed = count(|v| matches!(v, Verdict::Fail(_)));
        let skipped = count(|v| matches!(v, Verdict::Skip(_)));
        println!("\nsummary:");
        for o in &self.outcomes {
            let v = match &o.verdict {
                Verdict::Pass => "ok".to_owned(),
                Verdict::Fail(_) => "FAILED".to_owned(),
                Verdict::Skip(r) => format!("skipped ({r})"),
            };
            println!(
                "  {:<40} {:<12} {:>6.2}s  {v}",
                o.group,
                o.name,
                o.elapsed.as_secs_f64()
            );
        }
        println!(
            "\n{}: {passed} passed, {failed} failed, {skipped} skipped in {:.1}s",
            self.label,
            self.started.elapsed().as_secs_f64()
        );
        if failed > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}
