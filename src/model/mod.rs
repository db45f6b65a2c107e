//! The data model: labels, matchers, samples and XOR chunks. Pure: no I/O,
//! no async, nothing from the transport layers.

pub mod chunk;
pub mod labels;
pub mod matcher;
pub mod relabel;
pub mod series;
pub mod time;

pub use chunk::{Chunk, ChunkEncoding, ChunkError, XorEncoder, XorIter, MAX_SAMPLES_PER_CHUNK};
pub use labels::{Label, Labels, LabelsError};
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use series::{Sample, Series, STALE_NAN_BITS};
