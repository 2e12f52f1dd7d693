//! runc-compatible logging: `--log FILE` (default stderr), `--log-format text|json`
//! (`{"level":"error","msg":"…","time":"…"}` lines, which go-runc parses), `--debug`.

use std::fmt;
use std::io::Write;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// logrus text: `time="…" level=info msg="…"`.
    Text,
    /// logrus JSON lines.
    Json,
}

struct RuncFormat(Format);

struct MsgVisitor(String);

impl tracing::field::Visit for MsgVisitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        } else {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            self.0.push_str(&format!("{}={value:?}", field.name()));
        }
    }
}

fn level(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

impl<S, N> FormatEvent<S, N> for RuncFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut v = MsgVisitor(String::new());
        event.record(&mut v);
        let time = runtime_core::now_rfc3339();
        let lvl = level(event.metadata().level());
        match self.0 {
            Format::Json => {
                let line = serde_json::json!({"level": lvl, "msg": v.0, "time": time});
                writeln!(w, "{line}")
            }
            Format::Text => writeln!(w, "time={time:?} level={lvl} msg={:?}", v.0),
        }
    }
}

/// Install the global subscriber.
pub fn init(log: Option<&std::path::Path>, format: Format, debug: bool) -> anyhow::Result<()> {
    let max = if debug { Level::DEBUG } else { Level::WARN };
    let builder = tracing_subscriber::fmt()
        .with_max_level(max)
        .event_format(RuncFormat(format));
    match log {
        Some(p) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| anyhow::anyhow!("open log file {}: {e}", p.display()))?;
            let f = std::sync::Mutex::new(f);
            builder.with_writer(f).init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

/// Flush helper for the end of main.
pub fn flush() {
    let _ = std::io::stderr().flush();
}
