//! The one error type of the trace layer.

use std::path::PathBuf;

/// Why a trace could not be read or built.
///
/// Every variant that comes from a file names that file (for [`Trace::parse`] the name given
/// stands in for the path), and parse errors name the 1-based line and what was expected there.
///
/// [`Trace::parse`]: crate::trace::Trace::parse
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file is bigger than [`LoadOptions::max_bytes`](crate::trace::LoadOptions::max_bytes).
    #[error("{}: {size} bytes, more than the {limit}-byte limit for a trace file", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes (at least this many were seen).
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The file is not UTF-8 text (a binary file such as a PNG, say).
    #[error("{}: not a text file (invalid UTF-8 at byte {offset})", path.display())]
    NotText {
        /// The file.
        path: PathBuf,
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// The file holds no samples (empty, blank, or too few samples to span any time).
    #[error("{}: no trace data ({what})", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
        /// What was missing.
        what: &'static str,
    },
    /// Auto-detection recognised none of the trace formats.
    #[error("{}: unknown trace format (first line: {first_line:?}); name one with --format / LoadOptions::format", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// The first non-blank line, shortened.
        first_line: String,
    },
    /// A line does not hold what its format requires.
    #[error("{}:{line}: expected {expected}, found {found:?}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What the format requires there.
        expected: &'static str,
        /// What is there, shortened.
        found: String,
    },
    /// The numbers parse but describe no usable trace (rates so large that the bits of one
    /// period overflow, say).
    #[error("{}: {what}", path.display())]
    OutOfRange {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: &'static str,
    },
    /// The requested series index is not in the file.
    #[error("{}: series {index} requested, but the file has {count} series (indices from 0)", path.display())]
    NoSuchSeries {
        /// The file.
        path: PathBuf,
        /// The requested index.
        index: usize,
        /// How many series the file has.
        count: usize,
    },
    /// A load option is out of range.
    #[error("invalid load option `{option}`: {expected}")]
    BadOption {
        /// The option's field name in [`LoadOptions`](crate::trace::LoadOptions).
        option: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A segment handed to [`Trace::from_segments`](crate::trace::Trace::from_segments) is invalid.
    #[error("trace {name:?}, segment {index}: {expected}")]
    BadSegment {
        /// The trace's name.
        name: String,
        /// 0-based index of the segment (equal to the count when the whole list is at fault).
        index: usize,
        /// What the segment must be.
        expected: &'static str,
    },
}

/// Longest excerpt of offending input kept in an error.
const EXCERPT_CHARS: usize = 60;

/// Shortens offending input so that an error never carries a whole (possibly huge) line.
pub(crate) fn excerpt(s: &str) -> String {
    let mut out: String = s.chars().take(EXCERPT_CHARS).collect();
    if s.chars().nth(EXCERPT_CHARS).is_some() {
        out.push('…');
    }
    out
}
