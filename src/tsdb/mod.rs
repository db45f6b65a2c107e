//! Reading Prometheus TSDB blocks (`meta.json`, `index`, `chunks/*`) by
//! range reads, so that blocks can be served from object storage.
//!
//! - [`meta`]: `meta.json`, with the Thanos section.
//! - [`index`]: the index format (version 2) and a ranged [`IndexReader`].
//! - [`header`]: the [`IndexHeader`], a local summary of an index that lets
//!   matchers resolve to postings without reading the index first.
//! - [`postings`]: set operations and matcher semantics.
//! - [`chunks`]: chunk segment files.
//! - [`block`]: [`Block`], what a store gateway queries.
//! - [`source`]: where bytes come from ([`ReadAt`], [`BlockFiles`]).
//! - [`writer`]: writing blocks ([`BlockWriter`], [`write_blocks`]).

pub mod block;
pub mod cache;
pub mod chunks;
pub mod downsample;
mod encoding;
pub mod error;
pub mod header;
pub mod index;
pub mod meta;
pub mod postings;
pub mod source;
#[cfg(test)]
pub(crate) mod testutil;
pub mod writer;

pub use block::{header_path, Block, BlockSeries, SeriesStream};
pub use chunks::ChunkReader;
pub use error::{Section, TsdbError};
pub use header::IndexHeader;
pub use index::{ChunkMeta, IndexReader, IndexSummary, SeriesEntry, SeriesRef, Toc};
pub use meta::BlockMeta;
pub use source::{
    BlockFiles, Counted, LocalBlockDir, LocalFile, MemBlockFiles, MemFile, ReadAt, ReadStats,
};
pub use writer::{write_blocks, BlockWriter, BlockWriterOptions, WriteError};
