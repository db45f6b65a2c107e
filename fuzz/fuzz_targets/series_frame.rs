//! Arbitrary bytes as a Series response frame from a peer: protobuf decode,
//! conversion to domain types and chunk decoding must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use skein::proto::{self, thanos as pb};

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = pb::SeriesResponse::decode(data) else {
        return;
    };
    if let Some(pb::series_response::Result::Series(s)) = frame.result {
        if let Ok(series) = proto::series_from_pb(s, "fuzz") {
            for c in &series.chunks {
                let _ = c.samples();
            }
        }
    }
});
