//! The one place where failures become ttrpc/gRPC status codes (STYLE.md). containerd
//! relies on specific codes: NOT_FOUND for unknown tasks and finished processes,
//! FAILED_PRECONDITION for wrong states, ALREADY_EXISTS for duplicate ids.

use containerd_shim_protos::ttrpc::{self, Code};
use runtime_core::Kind;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// No such container or process.
    #[error("{0}")]
    NotFound(String),
    /// Id already in use.
    #[error("{0}")]
    AlreadyExists(String),
    /// Wrong state for the request.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Bad request.
    #[error("{0}")]
    InvalidArgument(String),
    /// Not implemented by this shim (yet).
    #[error("{0}")]
    Unimplemented(String),
    /// Anything else.
    #[error("{0}")]
    Internal(String),
    /// runtime-core reported a failure.
    #[error(transparent)]
    Runtime(#[from] runtime_core::Error),
}

impl ShimError {
    fn code(&self) -> Code {
        match self {
            ShimError::NotFound(_) => Code::NOT_FOUND,
            ShimError::AlreadyExists(_) => Code::ALREADY_EXISTS,
            ShimError::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
            ShimError::InvalidArgument(_) => Code::INVALID_ARGUMENT,
            ShimError::Unimplemented(_) => Code::UNIMPLEMENTED,
            ShimError::Internal(_) => Code::INTERNAL,
            ShimError::Runtime(e) => match e.kind() {
                Kind::NotFound => Code::NOT_FOUND,
                Kind::AlreadyExists => Code::ALREADY_EXISTS,
                Kind::FailedPrecondition => Code::FAILED_PRECONDITION,
                Kind::InvalidArgument => Code::INVALID_ARGUMENT,
                Kind::Internal => Code::INTERNAL,
            },
        }
    }
}

impl From<ShimError> for ttrpc::Error {
    fn from(e: ShimError) -> Self {
        let msg = runtime_core::chain(&e);
        tracing::debug!("request failed: {msg}");
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), msg))
    }
}

/// Result of a service step.
pub type Result<T> = std::result::Result<T, ShimError>;
