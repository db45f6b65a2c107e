//! Store API server metrics.

use std::time::Instant;

use metrics::{counter, describe_counter, describe_histogram, histogram, Unit};

use crate::error::ErrorCode;

pub const GRPC_REQUESTS_TOTAL: &str = "skein_store_grpc_requests_total";
pub const GRPC_REQUEST_DURATION_SECONDS: &str = "skein_store_grpc_request_duration_seconds";
pub const SERIES_SENT_TOTAL: &str = "skein_store_series_sent_total";
pub const CHUNKS_SENT_TOTAL: &str = "skein_store_chunks_sent_total";
pub const STREAMS_ABANDONED_TOTAL: &str = "skein_store_streams_abandoned_total";
pub const CALLER_DEADLINE_SECONDS: &str = "skein_store_grpc_caller_deadline_seconds";

pub fn describe() {
    describe_counter!(
        GRPC_REQUESTS_TOTAL,
        Unit::Count,
        "Store API requests served, by RPC and result code."
    );
    describe_histogram!(
        GRPC_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time to serve a Store API request, to the last frame for Series."
    );
    describe_counter!(
        SERIES_SENT_TOTAL,
        Unit::Count,
        "Series sent in Series responses."
    );
    describe_counter!(
        CHUNKS_SENT_TOTAL,
        Unit::Count,
        "Chunks sent in Series responses."
    );
    describe_counter!(
        STREAMS_ABANDONED_TOTAL,
        Unit::Count,
        "Series answers dropped because the caller stopped reading them for --grpc.send-timeout."
    );
    describe_histogram!(
        CALLER_DEADLINE_SECONDS,
        Unit::Seconds,
        "Time the caller gave a Store API request (its grpc-timeout), by RPC; requests without one are not counted."
    );
    // Present from the start, so a scrape of a fresh process sees zeros
    // rather than nothing.
    for rpc in ["info", "series", "label_names", "label_values"] {
        counter!(GRPC_REQUESTS_TOTAL, "rpc" => rpc, "code" => "ok").increment(0);
    }
    counter!(SERIES_SENT_TOTAL).increment(0);
    counter!(CHUNKS_SENT_TOTAL).increment(0);
    counter!(STREAMS_ABANDONED_TOTAL).increment(0);
}

/// Records the time a caller allowed for a request.
pub(crate) fn caller_deadline(rpc: &'static str, allowed: std::time::Duration) {
    histogram!(CALLER_DEADLINE_SECONDS, "rpc" => rpc).record(allowed.as_secs_f64());
}

/// Records one served request when dropped, so canceled streams count too.
pub(crate) struct RequestTimer {
    rpc: &'static str,
    start: Instant,
    code: Option<ErrorCode>,
    canceled: bool,
}

impl RequestTimer {
    pub(crate) fn start(rpc: &'static str) -> Self {
        Self {
            rpc,
            start: Instant::now(),
            code: None,
            canceled: true,
        }
    }

    /// Whether the outcome is still unknown.
    pub(crate) fn is_open(&self) -> bool {
        self.canceled
    }

    pub(crate) fn finish(&mut self, result: Result<(), ErrorCode>) {
        self.canceled = false;
        self.code = result.err();
    }
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        let code = match (self.canceled, self.code) {
            (true, _) => "canceled",
            (false, None) => "ok",
            (false, Some(c)) => c.as_str(),
        };
        counter!(GRPC_REQUESTS_TOTAL, "rpc" => self.rpc, "code" => code).increment(1);
        histogram!(GRPC_REQUEST_DURATION_SECONDS, "rpc" => self.rpc)
            .record(self.start.elapsed().as_secs_f64());
    }
}
