//! [`Trace::load`] and [`Trace::parse`]: read a file in any supported format into a [`Trace`].

use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::TraceError;
use super::options::{LoadOptions, SeriesSelect, TraceFormat};
use super::piecewise::{TimelineBuilder, Trace};
use super::read::{self, Parsed};
use super::sniff::sniff;

impl Trace {
    /// Reads a trace file unchanged, in the format `opts.format` or the one sniffed from its
    /// first lines. The trace is named after the file.
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Trace, TraceError> {
        let io = |source| TraceError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        if size > opts.max_bytes {
            return Err(TraceError::TooLarge {
                path: path.to_path_buf(),
                size,
                limit: opts.max_bytes,
            });
        }
        // The file may grow after the metadata call: never read more than the limit.
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(opts.max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > opts.max_bytes {
            return Err(TraceError::TooLarge {
                path: path.to_path_buf(),
                size: bytes.len() as u64,
                limit: opts.max_bytes,
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| TraceError::NotText {
            path: path.to_path_buf(),
            offset: e.utf8_error().valid_up_to(),
        })?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        parse_at(&text, name, path, opts)
    }

    /// Reads trace text held in memory; `name` names the trace and stands in for the path in
    /// errors (and its extension, e.g. `.up`, gives a mahimahi trace its direction).
    pub fn parse(
        text: &str,
        name: impl Into<String>,
        opts: &LoadOptions,
    ) -> Result<Trace, TraceError> {
        let name = name.into();
        let path = PathBuf::from(&name);
        let mut trace = parse_at(text, name, &path, opts)?;
        trace.clear_source();
        Ok(trace)
    }
}

fn check_options(opts: &LoadOptions) -> Result<(), TraceError> {
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if !positive(opts.scale) {
        return Err(TraceError::BadOption {
            option: "scale",
            expected: "a finite factor > 0",
        });
    }
    if !positive(opts.mahimahi_window_s) {
        return Err(TraceError::BadOption {
            option: "mahimahi_window_s",
            expected: "a finite window > 0 s",
        });
    }
    if !positive(opts.interpolation_step_s) {
        return Err(TraceError::BadOption {
            option: "interpolation_step_s",
            expected: "a finite step > 0 s",
        });
    }
    Ok(())
}

fn parse_at(
    text: &str,
    name: String,
    path: &Path,
    opts: &LoadOptions,
) -> Result<Trace, TraceError> {
    check_options(opts)?;
    let format = match opts.format {
        Some(f) => f,
        None => sniff(path, text)?,
    };
    let Parsed { series, direction } = match format {
        TraceFormat::Mahimahi => read::mahimahi::read(path, text, opts.mahimahi_window_s)?,
        TraceFormat::TimeMbps => read::time_value::read_mbps(path, text)?,
        TraceFormat::TimeBytesCsv => read::time_value::read_bytes_csv(path, text)?,
        TraceFormat::Gnettrack => read::gnettrack::read(path, text, opts.column, opts.gaps)?,
        TraceFormat::NuwinsList => read::nuwins::read(path, text)?,
        TraceFormat::OboeChunks => read::oboe::read(path, text, opts.interpolation_step_s)?,
    };
    let count = series.len();
    let chosen: &[read::Pieces] = match opts.series {
        SeriesSelect::All => &series,
        SeriesSelect::Index(i) => match series.get(i) {
            Some(s) => std::slice::from_ref(s),
            None => {
                return Err(TraceError::NoSuchSeries {
                    path: path.to_path_buf(),
                    index: i,
                    count,
                });
            }
        },
    };
    let overflow = || TraceError::OutOfRange {
        path: path.to_path_buf(),
        what: "rates or times so large that one period's bits overflow",
    };
    let mut b = TimelineBuilder::default();
    for &(duration, bps) in chosen.iter().flatten() {
        // Unit factors can push a finite file value past f64's range.
        let bps = bps * opts.scale;
        if !duration.is_finite() || !bps.is_finite() {
            return Err(overflow());
        }
        b.push(duration, bps);
    }
    let mut trace = b.finish(name).ok_or_else(|| TraceError::Empty {
        path: path.to_path_buf(),
        what: "the selected series spans no time",
    })?;
    if !trace.total_bits().is_finite() || !trace.duration().is_finite() {
        return Err(overflow());
    }
    trace.set_origin(format, Some(path), opts.series, count);
    Ok(trace.with_direction(opts.direction.unwrap_or(direction)))
}
