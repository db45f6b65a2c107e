//! Downsampled chunks: Thanos' aggregate chunk (TSDB chunk encoding 0xff),
//! five XOR sub-chunks over the same windows, one per aggregate.
//!
//! Layout, for count, sum, min, max and counter in that order: a uvarint
//! length L; when L is 0 the aggregate is absent, else one encoding byte (1,
//! XOR) and L bytes of XOR chunk follow.
//!
//! Each window of the resolution contributes one sample to every
//! aggregate, at the window's last millisecond (or the chunk's last raw
//! sample's time, for the chunk's last window): the count of raw samples,
//! their sum, minimum and maximum, and the counter. The counter sub-chunk
//! starts with the chunk's first raw sample as it was, then holds the
//! counter's running total (resets folded in) at each window, and ends with
//! a repeat of the last window's time carrying the last raw value, so that
//! a reader can tell whether the counter reset between two chunks.

use super::{ChunkError, Sample, XorIter};

/// One aggregate of a downsampled chunk, in the order of the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Aggr {
    Count = 0,
    Sum = 1,
    Min = 2,
    Max = 3,
    Counter = 4,
}

pub const AGGRS: [Aggr; 5] = [Aggr::Count, Aggr::Sum, Aggr::Min, Aggr::Max, Aggr::Counter];

/// The XOR encoding byte of the TSDB chunk format, inside an aggregate.
const XOR_BYTE: u8 = 1;

fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The XOR sub-chunks of an aggregate chunk, by [`Aggr`] (None: absent).
pub fn parts(data: &[u8]) -> Result<[Option<&[u8]>; 5], ChunkError> {
    let mut out: [Option<&[u8]>; 5] = [None; 5];
    let mut b = data;
    for slot in out.iter_mut() {
        if b.is_empty() {
            // Trailing absent aggregates may be left out entirely.
            break;
        }
        let (len, n) = uvarint(b).ok_or(ChunkError::BadVarint { decoded: 0 })?;
        b = &b[n..];
        if len == 0 {
            continue;
        }
        let len = usize::try_from(len).map_err(|_| ChunkError::Truncated { decoded: 0 })?;
        // The encoding byte and `len` bytes of chunk follow.
        if len >= b.len() {
            return Err(ChunkError::Truncated { decoded: 0 });
        }
        if b[0] != XOR_BYTE {
            return Err(ChunkError::BadAggregate(format!(
                "aggregate holds a chunk of encoding {}, not XOR",
                b[0]
            )));
        }
        *slot = Some(&b[1..len + 1]);
        b = &b[len + 1..];
    }
    Ok(out)
}

/// Builds an aggregate chunk's bytes from XOR sub-chunks.
pub fn encode_parts(parts: &[Option<&[u8]>; 5]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().flatten().map(|p| p.len() + 3).sum());
    for p in parts {
        match p {
            Some(p) if !p.is_empty() => {
                put_uvarint(&mut out, p.len() as u64);
                out.push(XOR_BYTE);
                out.extend_from_slice(p);
            }
            _ => put_uvarint(&mut out, 0),
        }
    }
    out
}

/// An aggregate chunk with only the aggregates in `keep` (all when empty).
pub fn retain(data: &[u8], keep: &[Aggr]) -> Result<Vec<u8>, ChunkError> {
    let mut p = parts(data)?;
    if !keep.is_empty() {
        for a in AGGRS {
            if !keep.contains(&a) {
                p[a as usize] = None;
            }
        }
    }
    Ok(encode_parts(&p))
}

/// Which values a query reads from downsampled data, from the function
/// around its selector (Thanos' choice): `rate`, `increase`, `irate` and
/// `resets` the counter; `min*`/`max*`/`count*`/`sum_*` their aggregate;
/// anything else the average of each window (sum / count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AggrChoice {
    One(Aggr),
    #[default]
    Average,
    /// The count aggregate, with each raw sample counting 1, so that a
    /// sum over windows and raw samples alike is a count of raw samples.
    Weights,
}

impl AggrChoice {
    pub fn for_func(f: &str) -> Self {
        if f == "min" || f.starts_with("min_") {
            AggrChoice::One(Aggr::Min)
        } else if f == "max" || f.starts_with("max_") {
            AggrChoice::One(Aggr::Max)
        } else if f == "count" || f.starts_with("count_") {
            AggrChoice::One(Aggr::Count)
        } else if f.starts_with("sum_") {
            AggrChoice::One(Aggr::Sum)
        } else if matches!(f, "rate" | "increase" | "irate" | "resets") {
            AggrChoice::One(Aggr::Counter)
        } else {
            AggrChoice::Average
        }
    }

    /// What a request for these aggregates reads: one of them, or the
    /// average (count and sum, or nothing said).
    pub fn from_aggregates(aggrs: &[Aggr]) -> Self {
        match aggrs {
            [a] => AggrChoice::One(*a),
            _ if aggrs.contains(&Aggr::Count) && aggrs.contains(&Aggr::Sum) => AggrChoice::Average,
            [] => AggrChoice::Average,
            [a, ..] => AggrChoice::One(*a),
        }
    }

    /// [`AggrChoice::Weights`] in place of the count aggregate when counts
    /// are to be added up.
    pub fn weighed(self, weigh_counts: bool) -> Self {
        match self {
            AggrChoice::One(Aggr::Count) if weigh_counts => AggrChoice::Weights,
            c => c,
        }
    }

    /// The aggregates a store must send.
    pub fn aggregates(self) -> Vec<Aggr> {
        match self {
            AggrChoice::One(a) => vec![a],
            AggrChoice::Weights => vec![Aggr::Count],
            AggrChoice::Average => vec![Aggr::Count, Aggr::Sum],
        }
    }
}

/// Appends the samples a query reads from one series' chunks, sorted by
/// time, which may mix raw XOR chunks and aggregate chunks (raw blocks next
/// to downsampled ones): raw chunks as they are, aggregate chunks as
/// `choice` says. Counters are rebuilt across chunks as Thanos does: each
/// chunk's samples continue the running total, a chunk's first value below
/// the previous chunk's true last value counts as a reset. Samples that go
/// back in time (overlapping chunks) are skipped.
pub fn materialize(
    chunks: &[super::Chunk],
    choice: AggrChoice,
    out: &mut Vec<Sample>,
) -> Result<(), ChunkError> {
    let mut counter = CounterState::default();
    let mut last_t = i64::MIN;
    let push = |out: &mut Vec<Sample>, s: Sample, last_t: &mut i64| {
        if s.t > *last_t {
            *last_t = s.t;
            out.push(s);
        }
    };
    for c in chunks {
        match c.encoding {
            super::ChunkEncoding::Xor => {
                for s in XorIter::new(&c.data)? {
                    let s = s?;
                    let s = match choice {
                        AggrChoice::One(Aggr::Counter) => match counter.next(s.t, s.v, false) {
                            Some(s) => s,
                            None => continue,
                        },
                        // A raw sample is a window of one.
                        AggrChoice::Weights => Sample { t: s.t, v: 1.0 },
                        _ => s,
                    };
                    push(out, s, &mut last_t);
                }
            }
            super::ChunkEncoding::Aggr => {
                let p = parts(&c.data)?;
                match choice {
                    AggrChoice::One(Aggr::Counter) => {
                        let data =
                            p[Aggr::Counter as usize].ok_or_else(|| missing(Aggr::Counter))?;
                        for s in XorIter::new(data)? {
                            let s = s?;
                            if let Some(s) = counter.next(s.t, s.v, true) {
                                push(out, s, &mut last_t);
                            }
                        }
                    }
                    AggrChoice::One(_) | AggrChoice::Weights => {
                        let a = match choice {
                            AggrChoice::One(a) => a,
                            _ => Aggr::Count,
                        };
                        let data = p[a as usize].ok_or_else(|| missing(a))?;
                        for s in XorIter::new(data)? {
                            push(out, s?, &mut last_t);
                        }
                    }
                    AggrChoice::Average => {
                        let count = p[Aggr::Count as usize].ok_or_else(|| missing(Aggr::Count))?;
                        let sum = p[Aggr::Sum as usize].ok_or_else(|| missing(Aggr::Sum))?;
                        let mut counts = XorIter::new(count)?;
                        for s in XorIter::new(sum)? {
                            let s = s?;
                            let n = counts.next().ok_or(ChunkError::BadAggregate(
                                "sum and count aggregates differ in length".into(),
                            ))??;
                            if n.t != s.t {
                                return Err(ChunkError::BadAggregate(
                                    "sum and count aggregates differ in time".into(),
                                ));
                            }
                            push(
                                out,
                                Sample {
                                    t: s.t,
                                    v: s.v / n.v,
                                },
                                &mut last_t,
                            );
                        }
                    }
                }
            }
            other => return Err(ChunkError::Unsupported(other)),
        }
    }
    Ok(())
}

fn missing(a: Aggr) -> ChunkError {
    ChunkError::BadAggregate(format!("the {a:?} aggregate is absent").to_lowercase())
}

/// The running counter across chunks (Thanos' counter-reset iterator).
#[derive(Default)]
struct CounterState {
    seen: bool,
    last_t: i64,
    last_v: f64,
    total: f64,
}

impl CounterState {
    /// The next output sample for an input sample, or None for the marker
    /// that repeats a chunk's last time with its true last raw value.
    fn next(&mut self, t: i64, v: f64, aggregate: bool) -> Option<Sample> {
        if v.is_nan() {
            return None;
        }
        if !self.seen {
            self.seen = true;
            self.last_t = t;
            self.last_v = v;
            self.total = v;
            return Some(Sample { t, v });
        }
        if t > self.last_t {
            if v >= self.last_v {
                self.total += v - self.last_v;
            } else {
                self.total += v;
            }
            self.last_t = t;
            self.last_v = v;
            return Some(Sample { t, v: self.total });
        }
        if t == self.last_t && aggregate {
            // The true last raw value: what the next chunk is compared with.
            self.last_v = v;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_length_past_the_data_is_an_error() {
        // A sub-chunk length of 2^64 - 1: once overflowed a bounds check.
        let mut data = vec![0xff; 9];
        data.extend_from_slice(&[0x01, 0x01, 0x00]);
        assert!(parts(&data).is_err());
        assert!(parts(&[0x05, 0x01, 0x00]).is_err());
    }
    use crate::model::{Chunk, ChunkEncoding};

    fn xor(samples: &[(i64, f64)]) -> Vec<u8> {
        let s: Vec<Sample> = samples.iter().map(|&(t, v)| Sample { t, v }).collect();
        super::super::xor::encode_all(&s).unwrap()
    }

    #[test]
    fn parts_round_trip_and_absent_aggregates() {
        let count = xor(&[(299_999, 3.0)]);
        let sum = xor(&[(299_999, 30.0)]);
        let data = encode_parts(&[Some(&count), Some(&sum), None, None, None]);
        // Thanos' layout: uvarint length, encoding byte 1, bytes; 0 when unset.
        assert_eq!(data[0] as usize, count.len());
        assert_eq!(data[1], 1);
        assert_eq!(&data[data.len() - 3..], &[0, 0, 0]);
        let p = parts(&data).unwrap();
        assert_eq!(p[0], Some(&count[..]));
        assert_eq!(p[1], Some(&sum[..]));
        assert_eq!(p[2..], [None, None, None]);
        assert!(parts(&data[..3]).is_err());
    }

    #[test]
    fn counters_continue_across_chunks_and_keep_resets() {
        // Chunk 1: raw first (0, 10), window totals, then the true last raw
        // value 40 at the last window's time. Chunk 2 starts at 5 < 40: a
        // reset between the chunks.
        let c1 = xor(&[(0, 10.0), (299_999, 25.0), (599_999, 40.0), (599_999, 40.0)]);
        let c2 = xor(&[(600_000, 5.0), (899_999, 12.0), (899_999, 12.0)]);
        let chunk = |d: &[u8], lo, hi| Chunk {
            min_time: lo,
            max_time: hi,
            encoding: ChunkEncoding::Aggr,
            data: encode_parts(&[None, None, None, None, Some(d)]).into(),
        };
        let chunks = [chunk(&c1, 0, 599_999), chunk(&c2, 600_000, 899_999)];
        let mut out = Vec::new();
        materialize(&chunks, AggrChoice::One(Aggr::Counter), &mut out).unwrap();
        let v: Vec<(i64, f64)> = out.iter().map(|s| (s.t, s.v)).collect();
        assert_eq!(
            v,
            vec![
                (0, 10.0),
                (299_999, 25.0),
                (599_999, 40.0),
                (600_000, 45.0),
                (899_999, 52.0)
            ]
        );
        assert!(materialize(&chunks, AggrChoice::One(Aggr::Sum), &mut out).is_err());
    }

    #[test]
    fn choice_from_functions() {
        assert_eq!(AggrChoice::for_func("rate"), AggrChoice::One(Aggr::Counter));
        assert_eq!(
            AggrChoice::for_func("max_over_time"),
            AggrChoice::One(Aggr::Max)
        );
        assert_eq!(
            AggrChoice::for_func("count_over_time"),
            AggrChoice::One(Aggr::Count)
        );
        assert_eq!(
            AggrChoice::for_func("sum_over_time"),
            AggrChoice::One(Aggr::Sum)
        );
        assert_eq!(AggrChoice::for_func("sum"), AggrChoice::Average);
        assert_eq!(AggrChoice::for_func(""), AggrChoice::Average);
    }
}
