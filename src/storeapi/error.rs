use crate::error::ErrorCode;
use crate::model::{ChunkError, LabelsError, MatcherError};

/// Errors of the Store API, on either side of the wire.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    #[error(transparent)]
    Matcher(#[from] MatcherError),
    #[error("store {peer} unavailable: {message}")]
    Unavailable { peer: String, message: String },
    #[error("store {peer} timed out: {message}")]
    Timeout { peer: String, message: String },
    #[error("request canceled")]
    Canceled,
    /// The peer answered with something that breaks the protocol.
    #[error("store {peer} sent an invalid response: {message}")]
    Protocol { peer: String, message: String },
    #[error("store {peer} failed: {message}")]
    Remote {
        peer: String,
        code: ErrorCode,
        message: String,
    },
    #[error("internal error: {0}")]
    Internal(String),
    /// A limit of the answering store; asking another member of its group
    /// gives the same answer.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// The store does not offer this service (gRPC `Unimplemented`).
    #[error("{0} is not offered by this store")]
    Unsupported(String),
}

impl StoreError {
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::InvalidArgument(_) | StoreError::Matcher(_) => ErrorCode::BadData,
            StoreError::Unavailable { .. } => ErrorCode::Unavailable,
            StoreError::Timeout { .. } => ErrorCode::Timeout,
            StoreError::Canceled => ErrorCode::Canceled,
            StoreError::Protocol { .. } | StoreError::Internal(_) => ErrorCode::Internal,
            StoreError::LimitExceeded(_) | StoreError::Unsupported(_) => ErrorCode::Execution,
            StoreError::Remote { code, .. } => *code,
        }
    }

    /// Whether another member of the group may answer where this one
    /// failed. A bad request, a limit or an unsupported request fails the
    /// same everywhere; a peer that is down, slow, canceled the call or
    /// spoke garbage may be alone in that.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::InvalidArgument(_)
            | StoreError::Matcher(_)
            | StoreError::LimitExceeded(_)
            | StoreError::Unsupported(_)
            | StoreError::Canceled => false,
            StoreError::Unavailable { .. }
            | StoreError::Timeout { .. }
            | StoreError::Protocol { .. }
            | StoreError::Internal(_) => true,
            StoreError::Remote { code, .. } => {
                matches!(code, ErrorCode::Canceled) || code.is_retryable()
            }
        }
    }

    pub fn protocol(peer: &str, message: impl std::fmt::Display) -> Self {
        StoreError::Protocol {
            peer: peer.to_string(),
            message: message.to_string(),
        }
    }

    /// Maps a gRPC status from `peer` onto a store error.
    pub fn from_status(peer: &str, status: &tonic::Status) -> Self {
        let peer = peer.to_string();
        let message = status.message().to_string();
        if status.code() == tonic::Code::Unimplemented {
            return StoreError::Unsupported(format!("{message} (store {peer})"));
        }
        match ErrorCode::from_grpc_code(status.code()) {
            ErrorCode::Unavailable => StoreError::Unavailable { peer, message },
            ErrorCode::Timeout => StoreError::Timeout { peer, message },
            code => StoreError::Remote {
                peer,
                code,
                message,
            },
        }
    }
}

impl From<StoreError> for tonic::Status {
    fn from(e: StoreError) -> Self {
        if let StoreError::Unsupported(what) = &e {
            return tonic::Status::unimplemented(format!("{what} is not offered by this store"));
        }
        tonic::Status::new(e.code().grpc_code(), e.to_string())
    }
}

impl From<LabelsError> for StoreError {
    fn from(e: LabelsError) -> Self {
        StoreError::InvalidArgument(e.to_string())
    }
}

impl From<ChunkError> for StoreError {
    fn from(e: ChunkError) -> Self {
        StoreError::Internal(e.to_string())
    }
}
