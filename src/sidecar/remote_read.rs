//! Prometheus remote read (`POST /api/v1/read`): a snappy-compressed
//! protobuf request; the answer is either a stream of frames, each a
//! uvarint length, a big-endian CRC32C of the message and a
//! `ChunkedReadResponse` carrying Prometheus' stored XOR chunks
//! (`STREAMED_XOR_CHUNKS`), or one snappy-compressed `ReadResponse` with
//! samples (`SAMPLES`, for servers that do not stream), which is re-encoded
//! into XOR chunks here. Everything read from the server is checked: a bad
//! frame, CRC or message is an error naming the server, never a panic.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use prost::Message;

use super::client::{PromClientConfig, PromHttp};
use crate::model::{
    Chunk, ChunkEncoding, Label, Labels, Matcher, Sample, Series, MAX_SAMPLES_PER_CHUNK,
};
use crate::proto::prometheus as prom;
use crate::store::StoreError;

/// Largest frame accepted from Prometheus (it sends at most 1 MiB by
/// default, `--storage.remote.read-max-bytes-in-frame`).
const MAX_FRAME_BYTES: usize = 64 << 20;

/// Largest SAMPLES answer (snappy-compressed) read from Prometheus; its
/// `--storage.remote.read-sample-limit` of 50 M samples compresses to less.
const MAX_SAMPLES_BODY: usize = 256 << 20;

/// Largest a SAMPLES answer may claim to be once decompressed. Snappy
/// cannot expand data more than 32 times, so a claim beyond that of the
/// compressed size is a lie, and is refused before anything is allocated.
const MAX_SAMPLES_DECOMPRESSED: usize = 1 << 30;

/// Longest a remote read's answer may pause between two reads.
const MIN_READ_TIMEOUT: Duration = Duration::from_secs(60);

const STREAMED_CONTENT_TYPE: &str =
    "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";

#[derive(Clone)]
pub struct RemoteRead {
    url: String,
    http: PromHttp,
}

/// Prometheus' remote read numbers matcher types as the Store API does
/// (EQ 0, NEQ 1, RE 2, NRE 3), so the Store API's encoding serves both.
fn matcher_to_prom(m: &Matcher) -> prom::LabelMatcher {
    let m = crate::proto::matcher_to_pb(m);
    prom::LabelMatcher {
        r#type: m.r#type,
        name: m.name,
        value: m.value,
    }
}

impl RemoteRead {
    /// A client for the Prometheus at `base` (e.g. `http://127.0.0.1:9090`).
    pub fn new(base: &str, timeout: Duration) -> Result<Self, StoreError> {
        let cfg = PromClientConfig::plain(base)
            .map_err(|e| StoreError::InvalidArgument(format!("{e:#}")))?;
        Self::with_client(&cfg, timeout)
    }

    /// A client for the Prometheus `cfg` describes.
    pub fn with_client(cfg: &PromClientConfig, timeout: Duration) -> Result<Self, StoreError> {
        let http = PromHttp::new(cfg, timeout, Some(timeout.max(MIN_READ_TIMEOUT)))
            .map_err(|e| StoreError::InvalidArgument(format!("{e:#}")))?;
        Ok(Self {
            url: format!("{}/api/v1/read", cfg.url),
            http,
        })
    }

    fn unavailable(&self, message: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable {
            peer: self.url.clone(),
            message: message.to_string(),
        }
    }

    fn garbage(&self, message: impl std::fmt::Display) -> StoreError {
        StoreError::protocol(&self.url, message)
    }

    /// Series matching `matchers` in `[mint, maxt]`, as Prometheus sends
    /// them (sorted by labels), with their chunks.
    pub async fn read(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        hints: Option<prom::ReadHints>,
    ) -> Result<impl Stream<Item = Result<Series, StoreError>> + Send + use<>, StoreError> {
        let req = prom::ReadRequest {
            queries: vec![prom::Query {
                start_timestamp_ms: mint,
                end_timestamp_ms: maxt,
                matchers: matchers.iter().map(matcher_to_prom).collect(),
                hints,
            }],
            accepted_response_types: vec![
                prom::read_request::ResponseType::StreamedXorChunks as i32,
                prom::read_request::ResponseType::Samples as i32,
            ],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .map_err(|e| StoreError::Internal(format!("snappy: {e}")))?;
        let resp = self
            .http
            .request(reqwest::Method::POST, &self.url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Read-Version", "0.1.0")
            .header("User-Agent", concat!("skein/", env!("CARGO_PKG_VERSION")))
            .body(body)
            .send()
            .await
            .map_err(|e| self.unavailable(e))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            let text: String = text.chars().take(512).collect();
            let e = format!("remote read answered {status}: {}", text.trim());
            return Err(if status.is_server_error() {
                self.unavailable(e)
            } else {
                self.garbage(e)
            });
        }
        let streamed = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(STREAMED_CONTENT_TYPE));
        let this = self.clone();
        if streamed {
            let bytes = resp.bytes_stream();
            Ok(futures::future::Either::Left(coalesce(frames(this, bytes))))
        } else {
            let body = self.samples_body(resp).await?;
            let series = self.samples_response(&body)?;
            Ok(futures::future::Either::Right(futures::stream::iter(
                series.into_iter().map(Ok),
            )))
        }
    }

    /// A whole streamed (chunked) answer held in memory, decoded as if it
    /// had come from this client's Prometheus: for tools and fuzzing.
    pub fn decode_streamed(&self, body: Bytes) -> Result<Vec<Series>, StoreError> {
        use futures::FutureExt;
        let parts = futures::stream::iter([Ok::<Bytes, reqwest::Error>(body)]);
        coalesce(frames(self.clone(), parts))
            .collect::<Vec<_>>()
            .now_or_never()
            .unwrap_or_default()
            .into_iter()
            .collect()
    }

    /// A whole SAMPLES answer held in memory, decoded as if it had come
    /// from this client's Prometheus: for tools and fuzzing.
    pub fn decode_samples(&self, body: &[u8]) -> Result<Vec<Series>, StoreError> {
        self.samples_response(body)
    }

    /// A SAMPLES answer's body, read up to [`MAX_SAMPLES_BODY`].
    async fn samples_body(&self, resp: reqwest::Response) -> Result<BytesMut, StoreError> {
        let too_big = || {
            self.garbage(format!(
                "SAMPLES answer larger than {MAX_SAMPLES_BODY} bytes; narrow the query"
            ))
        };
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_SAMPLES_BODY as u64)
        {
            return Err(too_big());
        }
        let mut body = BytesMut::new();
        let mut parts = std::pin::pin!(resp.bytes_stream());
        while let Some(part) = parts.next().await {
            let part = part.map_err(|e| self.unavailable(e))?;
            if body.len() + part.len() > MAX_SAMPLES_BODY {
                return Err(too_big());
            }
            body.extend_from_slice(&part);
        }
        Ok(body)
    }

    fn samples_response(&self, body: &[u8]) -> Result<Vec<Series>, StoreError> {
        let claimed = snap::raw::decompress_len(body)
            .map_err(|e| self.garbage(format!("bad snappy body: {e}")))?;
        if claimed > MAX_SAMPLES_DECOMPRESSED || claimed > body.len().saturating_mul(32) + 64 {
            return Err(self.garbage(format!(
                "snappy body of {} bytes claims {claimed} bytes decompressed",
                body.len()
            )));
        }
        let raw = snap::raw::Decoder::new()
            .decompress_vec(body)
            .map_err(|e| self.garbage(format!("bad snappy body: {e}")))?;
        let resp = prom::ReadResponse::decode(raw.as_slice())
            .map_err(|e| self.garbage(format!("bad ReadResponse: {e}")))?;
        let mut out = Vec::new();
        for result in resp.results {
            for ts in result.timeseries {
                let labels = self.labels(ts.labels)?;
                let mut samples: Vec<Sample> = ts
                    .samples
                    .iter()
                    .map(|s| Sample {
                        t: s.timestamp,
                        v: s.value,
                    })
                    .collect();
                samples.sort_by_key(|s| s.t);
                let chunks = Chunk::encode_xor(&samples, MAX_SAMPLES_PER_CHUNK)?;
                out.push(Series { labels, chunks });
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    fn labels(&self, labels: Vec<prom::Label>) -> Result<Labels, StoreError> {
        Labels::new(
            labels
                .into_iter()
                .map(|l| Label {
                    name: l.name,
                    value: l.value,
                })
                .collect(),
        )
        .map_err(|e| self.garbage(e))
    }

    fn series(&self, s: prom::ChunkedSeries) -> Result<Series, StoreError> {
        let labels = self.labels(s.labels)?;
        let mut chunks = Vec::with_capacity(s.chunks.len());
        for c in s.chunks {
            let encoding = match prom::chunk::Encoding::try_from(c.r#type) {
                Ok(prom::chunk::Encoding::Xor) => ChunkEncoding::Xor,
                Ok(prom::chunk::Encoding::Histogram) => ChunkEncoding::Histogram,
                Ok(prom::chunk::Encoding::FloatHistogram) => ChunkEncoding::FloatHistogram,
                _ => {
                    return Err(self.garbage(format!(
                        "series {labels} has a chunk of unknown encoding {}",
                        c.r#type
                    )))
                }
            };
            if c.min_time_ms > c.max_time_ms {
                return Err(self.garbage(format!(
                    "series {labels} has a chunk ending before it starts"
                )));
            }
            chunks.push(Chunk {
                min_time: c.min_time_ms,
                max_time: c.max_time_ms,
                encoding,
                data: c.data,
            });
        }
        Ok(Series { labels, chunks })
    }
}

/// One frame of a streamed remote-read answer, as Prometheus writes it:
/// the message's length (uvarint), its CRC32C (Castagnoli, big-endian),
/// the message.
pub fn encode_frame(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 14);
    let mut len = msg.len() as u64;
    while len >= 0x80 {
        out.push(len as u8 | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(&crc32c::crc32c(msg).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

fn read_uvarint(buf: &[u8]) -> Option<Result<(u64, usize), ()>> {
    let mut v = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some(if i == 9 && b > 1 {
                Err(())
            } else {
                Ok((v, i + 1))
            });
        }
    }
    if buf.len() >= 10 {
        Some(Err(()))
    } else {
        None
    }
}

/// Splits the byte stream into checked frames and their series.
fn frames(
    rr: RemoteRead,
    bytes: impl Stream<Item = Result<Bytes, reqwest::Error>> + Send + 'static,
) -> impl Stream<Item = Result<Series, StoreError>> + Send {
    async_stream::try_stream! {
        let mut buf = BytesMut::new();
        let mut bytes = std::pin::pin!(bytes);
        let mut done = false;
        loop {
            // Parse every complete frame in the buffer.
            loop {
                let (len, head) = match read_uvarint(&buf) {
                    None => break,
                    Some(Err(())) => Err(rr.garbage("bad frame length"))?,
                    Some(Ok(x)) => x,
                };
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                if len > MAX_FRAME_BYTES {
                    Err(rr.garbage(format!("frame of {len} bytes is larger than {MAX_FRAME_BYTES}")))?;
                }
                if buf.len() < head + 4 + len {
                    break;
                }
                buf.advance(head);
                let crc = buf.get_u32();
                let msg = buf.split_to(len);
                if crc32c::crc32c(&msg) != crc {
                    Err(rr.garbage("frame checksum mismatch"))?;
                }
                let resp = prom::ChunkedReadResponse::decode(msg.freeze())
                    .map_err(|e| rr.garbage(format!("bad ChunkedReadResponse: {e}")))?;
                for s in resp.chunked_series {
                    yield rr.series(s)?;
                }
            }
            if done {
                if !buf.is_empty() {
                    Err(rr.garbage(format!("stream ended inside a frame ({} bytes left)", buf.len())))?;
                }
                break;
            }
            match bytes.next().await {
                Some(chunk) => buf.extend_from_slice(&chunk.map_err(|e| rr.unavailable(e))?),
                None => done = true,
            }
        }
    }
}

/// Joins consecutive parts of one series: Prometheus splits a series whose
/// chunks do not fit one frame across several frames.
fn coalesce(
    input: impl Stream<Item = Result<Series, StoreError>> + Send,
) -> impl Stream<Item = Result<Series, StoreError>> + Send {
    async_stream::try_stream! {
        let mut input = std::pin::pin!(input);
        let mut pending: Option<Series> = None;
        while let Some(s) = input.next().await {
            let s = s?;
            match pending.as_mut() {
                Some(p) if p.labels == s.labels => p.chunks.extend(s.chunks),
                _ => {
                    if let Some(p) = pending.replace(s) {
                        yield p;
                    }
                }
            }
        }
        if let Some(p) = pending {
            yield p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snappy_claims_beyond_what_the_body_can_hold_are_refused() {
        let rr = RemoteRead::new("http://127.0.0.1:1", Duration::from_secs(1)).unwrap();
        // A 5-byte header claiming 4 GiB, then a few bytes.
        let mut body = vec![0xff, 0xff, 0xff, 0xff, 0x0f];
        body.extend_from_slice(&[0; 16]);
        let err = rr.samples_response(&body).unwrap_err();
        assert!(err.to_string().contains("claims"), "{err}");
        // A real answer (the fuzzing seed: one series of 20 samples) still
        // decodes.
        let body = crate::fuzzing::seeds("remote_read_samples").remove(0);
        let series = rr.samples_response(&body).unwrap();
        assert_eq!(series.len(), 1);
    }

    #[test]
    fn matcher_types_are_numbered_alike_in_both_protocols() {
        use crate::model::MatchOp;
        for (op, want) in [
            (MatchOp::Equal, prom::label_matcher::Type::Eq),
            (MatchOp::NotEqual, prom::label_matcher::Type::Neq),
            (MatchOp::Regex, prom::label_matcher::Type::Re),
            (MatchOp::NotRegex, prom::label_matcher::Type::Nre),
        ] {
            let m = Matcher::new(op, "a", "b").unwrap();
            assert_eq!(matcher_to_prom(&m).r#type, want as i32, "{op:?}");
        }
    }

    fn frame(msg: &[u8]) -> Vec<u8> {
        encode_frame(msg)
    }

    fn response(names: &[&str]) -> Vec<u8> {
        prom::ChunkedReadResponse {
            chunked_series: names
                .iter()
                .map(|n| prom::ChunkedSeries {
                    labels: vec![prom::Label {
                        name: "__name__".into(),
                        value: n.to_string(),
                    }],
                    chunks: vec![],
                })
                .collect(),
            query_index: 0,
        }
        .encode_to_vec()
    }

    async fn parse(bytes: Vec<Vec<u8>>) -> Vec<Result<Series, StoreError>> {
        let rr = RemoteRead::new("http://prometheus.invalid", Duration::from_secs(1)).unwrap();
        let s = futures::stream::iter(bytes.into_iter().map(|b| Ok(Bytes::from(b))));
        coalesce(frames(rr, s)).collect().await
    }

    #[tokio::test]
    async fn frames_split_anywhere_and_series_split_across_frames() {
        let mut all = frame(&response(&["a", "b"]));
        all.extend(frame(&response(&["b", "c"])));
        // Deliver the bytes in awkward pieces.
        let pieces: Vec<Vec<u8>> = all.chunks(3).map(<[u8]>::to_vec).collect();
        let out = parse(pieces).await;
        let names: Vec<String> = out
            .into_iter()
            .map(|s| s.unwrap().labels.get("__name__").unwrap().to_string())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn garbage_is_an_error() {
        let good = frame(&response(&["a"]));
        let mut bad_crc = good.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0xff;
        for bytes in [
            bad_crc,
            good[..good.len() - 2].to_vec(),
            vec![0xff; 12],
            frame(b"\x0a\xff\xff"),
        ] {
            let out = parse(vec![bytes]).await;
            assert!(out.iter().any(Result::is_err), "accepted garbage");
        }
    }
}
