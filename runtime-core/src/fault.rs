//! Error vocabulary every module may use without depending on [`crate::error`]: the
//! [`Kind`] of a failure (whose fault it is, mapped to protocol codes by callers) and
//! [`chain`] to render an error with its causes. A leaf: it imports nothing of
//! runtime-core, so the modules whose errors [`crate::error::Error`] wraps can use it
//! without an import cycle.

/// What kind of failure, for mapping to protocol status codes. It also travels from
/// init to the runtime with init's error message ([`crate::process::sync::Msg`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The container (or file) does not exist.
    NotFound,
    /// It already exists.
    AlreadyExists,
    /// The container is in the wrong state for the request.
    FailedPrecondition,
    /// The request or configuration is invalid.
    InvalidArgument,
    /// Anything else.
    #[default]
    Internal,
}

/// Render an error with its whole source chain on one line ("a: b: c").
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !t.is_empty() && !s.ends_with(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}
