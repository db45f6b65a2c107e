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
        // The connection or the stream broke below gRPC: the code tonic
        // derives from the HTTP/2 reason (ENHANCE_YOUR_CALM reads as
        // ResourceExhausted, a limit) is not the store's answer, and
        // another member may well answer.
        if broke_below_grpc(status) {
            return StoreError::Unavailable {
                peer,
                message: format!("connection broke: {message}"),
            };
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

/// Whether the status stands for an HTTP/2 error (a GOAWAY or a stream
/// reset) rather than a status the peer sent.
fn broke_below_grpc(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<h2::Error>() {
            return true;
        }
        source = e.source();
    }
    false
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_connection_is_retryable_whatever_its_http2_reason() {
        // A server that closes the connection for too many canceled streams
        // sends GOAWAY with ENHANCE_YOUR_CALM; tonic reads that as
        // ResourceExhausted, the code of a store's limit.
        for reason in [
            h2::Reason::ENHANCE_YOUR_CALM,
            h2::Reason::PROTOCOL_ERROR,
            h2::Reason::CANCEL,
        ] {
            let status = tonic::Status::from_error(Box::new(h2::Error::from(reason)));
            let e = StoreError::from_status("127.0.0.1:1", &status);
            assert!(
                matches!(e, StoreError::Unavailable { .. }) && e.is_retryable(),
                "{reason:?}: {e:?}"
            );
        }
        // A limit the store itself answers with stays final.
        let status = tonic::Status::resource_exhausted("series limit 10 exceeded");
        let e = StoreError::from_status("127.0.0.1:1", &status);
        assert_eq!(e.code(), ErrorCode::Execution);
        assert!(!e.is_retryable());
    }
}
