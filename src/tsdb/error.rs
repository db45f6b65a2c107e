//! Errors of the block reader. Every variant names the file it is about (a
//! path such as `01H.../index`, or the index-header file) and the cause.

use std::fmt;

/// A part of a block file that carries its own checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Section {
    Toc,
    SymbolTable,
    /// A series entry; `series_ref` is its offset divided by 16.
    Series {
        series_ref: u64,
    },
    LabelIndex {
        offset: u64,
    },
    LabelOffsetTable,
    Postings {
        offset: u64,
    },
    PostingsOffsetTable,
    Chunk {
        chunk_ref: u64,
    },
    IndexHeader,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The last 52 bytes: what a cut-off file shows first.
            Section::Toc => f.write_str("table of contents (end of file; truncated file?)"),
            Section::SymbolTable => f.write_str("symbol table"),
            Section::Series { series_ref } => write!(
                f,
                "series entry {series_ref} (offset {})",
                series_ref.saturating_mul(16)
            ),
            Section::LabelIndex { offset } => write!(f, "label index at offset {offset}"),
            Section::LabelOffsetTable => f.write_str("label offset table"),
            Section::Postings { offset } => write!(f, "postings list at offset {offset}"),
            Section::PostingsOffsetTable => f.write_str("postings offset table"),
            Section::Chunk { chunk_ref } => write!(
                f,
                "chunk {chunk_ref:#x} (segment {}, offset {})",
                segment_file_name((chunk_ref >> 32) as u32),
                chunk_ref & 0xffff_ffff
            ),
            Section::IndexHeader => f.write_str("index header"),
        }
    }
}

/// The file name of chunk segment `seq` (0-based): `000001` for 0.
pub fn segment_file_name(seq: u32) -> String {
    format!("{:06}", u64::from(seq) + 1)
}

/// The segment number of a chunk segment file name (0 for `000001`), or
/// `None` when the name is not one.
pub fn segment_seq(name: &str) -> Option<u32> {
    if name.len() < 6 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = name.parse().ok()?;
    u32::try_from(n.checked_sub(1)?).ok()
}

#[derive(Debug, thiserror::Error)]
pub enum TsdbError {
    #[error("{file}: bad magic number {found:#010x}, expected {expected:#010x}")]
    BadMagic {
        file: String,
        expected: u32,
        found: u32,
    },
    #[error("{file}: unsupported {what} version {found} (supported: {supported})")]
    UnsupportedVersion {
        file: String,
        what: &'static str,
        found: u64,
        supported: u64,
    },
    #[error(
        "{file}: checksum mismatch in {section}: stored {stored:#010x}, computed {computed:#010x}"
    )]
    ChecksumMismatch {
        file: String,
        section: Section,
        stored: u32,
        computed: u32,
    },
    #[error(
        "{file}: truncated {what}: {needed} bytes needed at offset {offset}, {available} there"
    )]
    Truncated {
        file: String,
        what: String,
        offset: u64,
        needed: u64,
        available: u64,
    },
    #[error("{file}: {what} reference {reference} is out of range")]
    OutOfRange {
        file: String,
        what: &'static str,
        reference: u64,
    },
    #[error("{file}: malformed {what}: {detail}")]
    Malformed {
        file: String,
        what: String,
        detail: String,
    },
    #[error("block {block}: chunk segment {segment} is missing")]
    MissingSegment { block: String, segment: String },
    #[error("{file}: file is missing")]
    MissingFile { file: String },
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: invalid block meta: {detail}")]
    InvalidMeta { file: String, detail: String },
}

impl TsdbError {
    /// The file the error is about.
    pub fn file(&self) -> &str {
        match self {
            TsdbError::BadMagic { file, .. }
            | TsdbError::UnsupportedVersion { file, .. }
            | TsdbError::ChecksumMismatch { file, .. }
            | TsdbError::Truncated { file, .. }
            | TsdbError::OutOfRange { file, .. }
            | TsdbError::Malformed { file, .. }
            | TsdbError::MissingFile { file }
            | TsdbError::Io { file, .. }
            | TsdbError::InvalidMeta { file, .. } => file,
            TsdbError::MissingSegment { block, .. } => block,
        }
    }

    /// Whether the error says the stored bytes are damaged or not what they
    /// claim to be (as opposed to an I/O failure or a missing file).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            TsdbError::BadMagic { .. }
                | TsdbError::UnsupportedVersion { .. }
                | TsdbError::ChecksumMismatch { .. }
                | TsdbError::Truncated { .. }
                | TsdbError::OutOfRange { .. }
                | TsdbError::Malformed { .. }
                | TsdbError::InvalidMeta { .. }
        )
    }

    pub(crate) fn io(file: impl Into<String>, source: std::io::Error) -> Self {
        TsdbError::Io {
            file: file.into(),
            source,
        }
    }

    pub(crate) fn malformed(
        file: impl Into<String>,
        what: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        TsdbError::Malformed {
            file: file.into(),
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// Checks a CRC32C (Castagnoli) over `data` against `stored`.
pub(crate) fn check_crc(
    file: &str,
    section: Section,
    data: &[u8],
    stored: u32,
) -> Result<(), TsdbError> {
    let computed = crc32c::crc32c(data);
    if computed == stored {
        Ok(())
    } else {
        Err(TsdbError::ChecksumMismatch {
            file: file.to_string(),
            section,
            stored,
            computed,
        })
    }
}
