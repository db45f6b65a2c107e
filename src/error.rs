//! The closed set of error codes every layer maps its errors onto, with their
//! gRPC code, HTTP status and Prometheus API `errorType`.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is malformed (bad matcher, bad range, bad parameter).
    BadData,
    /// The request was valid but could not be evaluated.
    Execution,
    /// A deadline passed.
    Timeout,
    /// The caller went away.
    Canceled,
    /// A peer or dependency cannot be reached; trying again or elsewhere may
    /// work.
    Unavailable,
    /// A bug, or a peer that speaks garbage.
    Internal,
}

impl ErrorCode {
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            ErrorCode::BadData => tonic::Code::InvalidArgument,
            ErrorCode::Execution => tonic::Code::FailedPrecondition,
            ErrorCode::Timeout => tonic::Code::DeadlineExceeded,
            ErrorCode::Canceled => tonic::Code::Cancelled,
            ErrorCode::Unavailable => tonic::Code::Unavailable,
            ErrorCode::Internal => tonic::Code::Internal,
        }
    }

    pub fn from_grpc_code(code: tonic::Code) -> Self {
        use tonic::Code;
        match code {
            Code::InvalidArgument | Code::OutOfRange => ErrorCode::BadData,
            Code::FailedPrecondition | Code::ResourceExhausted => ErrorCode::Execution,
            Code::DeadlineExceeded => ErrorCode::Timeout,
            Code::Cancelled => ErrorCode::Canceled,
            Code::Unavailable | Code::Aborted | Code::Unknown => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadData => 400,
            ErrorCode::Execution => 422,
            ErrorCode::Timeout | ErrorCode::Canceled | ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }

    /// The `errorType` of Prometheus' HTTP API.
    pub fn error_type(self) -> &'static str {
        match self {
            ErrorCode::BadData => "bad_data",
            ErrorCode::Execution => "execution",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Canceled => "canceled",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// Whether the same request may succeed when retried, here or on another
    /// member of a group.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::Timeout | ErrorCode::Unavailable | ErrorCode::Internal
        )
    }

    /// A bounded label value for metrics.
    pub fn as_str(self) -> &'static str {
        self.error_type()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_round_trip() {
        for code in [
            ErrorCode::BadData,
            ErrorCode::Execution,
            ErrorCode::Timeout,
            ErrorCode::Canceled,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ] {
            assert_eq!(ErrorCode::from_grpc_code(code.grpc_code()), code);
        }
    }
}
