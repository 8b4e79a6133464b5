//! Writing a run to disk: `frames.csv` (one row per frame) and `summary.json`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::record::{FrameRecord, Summary};

/// Why a run's output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A file or folder could not be created or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A CSV row could not be written.
    #[error("{path}: {source}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: csv::Error,
    },
}

/// Streams frame records into a CSV file.
pub struct FramesCsv {
    path: PathBuf,
    writer: csv::Writer<BufWriter<File>>,
}

impl FramesCsv {
    /// Creates (or truncates) the file.
    pub fn create(path: &Path) -> Result<Self, OutputError> {
        let file = File::create(path).map_err(|source| OutputError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(FramesCsv {
            path: path.to_owned(),
            writer: csv::Writer::from_writer(BufWriter::new(file)),
        })
    }

    /// Appends one row.
    pub fn write(&mut self, record: &FrameRecord) -> Result<(), OutputError> {
        self.writer
            .serialize(record)
            .map_err(|source| OutputError::Csv {
                path: self.path.clone(),
                source,
            })
    }

    /// Flushes the file.
    pub fn finish(mut self) -> Result<(), OutputError> {
        self.writer.flush().map_err(|source| OutputError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// The `summary.json` of one run: what was run and how it went.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport<'a, C: Serialize> {
    /// Trace name.
    pub trace: &'a str,
    /// Policy name.
    pub policy: &'a str,
    /// Profile name.
    pub profile: &'a str,
    /// The settings of the run.
    pub config: &'a C,
    /// The results.
    pub summary: &'a Summary,
}

/// Writes any serialisable value as pretty JSON, with a trailing newline.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), OutputError> {
    let io = |source| OutputError::Io {
        path: path.to_owned(),
        source,
    };
    let mut w = BufWriter::new(File::create(path).map_err(io)?);
    serde_json::to_writer_pretty(&mut w, value).map_err(|e| io(e.into()))?;
    w.write_all(b"\n").map_err(io)?;
    w.flush().map_err(io)
}
