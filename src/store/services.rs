//! What the services beside Series share on the wire: the partial-response
//! strategy, and an answer sent as a stream of ready frames.

use tonic::{Response, Status};

use super::{PartialResponse, StoreError};
use crate::proto::thanos as pb;

pub(crate) fn partial_to_pb(p: PartialResponse) -> i32 {
    let s = match p {
        PartialResponse::Warn => pb::PartialResponseStrategy::Warn,
        PartialResponse::Abort => pb::PartialResponseStrategy::Abort,
    };
    s as i32
}

pub(crate) fn partial_from_pb(v: i32) -> Result<PartialResponse, StoreError> {
    match pb::PartialResponseStrategy::try_from(v) {
        Ok(pb::PartialResponseStrategy::Warn) => Ok(PartialResponse::Warn),
        Ok(pb::PartialResponseStrategy::Abort) => Ok(PartialResponse::Abort),
        Err(_) => Err(StoreError::InvalidArgument(format!(
            "unknown partial response strategy {v}"
        ))),
    }
}

pub(crate) type Frames<T> =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send>>;

/// A streaming answer of frames that are all ready.
pub(crate) fn frames<T: Send + 'static>(v: Vec<T>) -> Response<Frames<T>> {
    Response::new(Box::pin(futures::stream::iter(v.into_iter().map(Ok))))
}
