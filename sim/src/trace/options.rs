//! What a trace file is and how to read it: format ids, series choice, load options.

use std::fmt;
use std::str::FromStr;

/// The on-disk formats of `../shared/traces` (ids as in its `MANIFEST.csv`).
///
/// Units and quirks are those of `../shared/traces/README.md`; every reader converts to seconds
/// and bit/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceFormat {
    /// One integer per line: a millisecond at which one 1500-byte packet may cross the link.
    Mahimahi,
    /// `time_s<TAB>value` lines; the value (Mbit/s) covers the interval ending at its time.
    TimeMbps,
    /// G-NetTrack Pro CSV (UCC 5G): header row, `Timestamp`, `DL_bitrate`/`UL_bitrate` in kbit/s.
    Gnettrack,
    /// NUWiNS `.list`: `Run <k>` blocks of comma-separated Mbit/s (implicit 100 ms or paired times).
    NuwinsList,
    /// Oboe: `time_ms kbps` lines, a start and an end line per video chunk.
    OboeChunks,
    /// CSV without header: `time_s,bytes_per_second`, the value covering the second ending at its time.
    TimeBytesCsv,
}

impl TraceFormat {
    /// Every format, in a fixed order.
    pub const ALL: [TraceFormat; 6] = [
        TraceFormat::Mahimahi,
        TraceFormat::TimeMbps,
        TraceFormat::Gnettrack,
        TraceFormat::NuwinsList,
        TraceFormat::OboeChunks,
        TraceFormat::TimeBytesCsv,
    ];

    /// The format id used by `MANIFEST.csv` and on the command line.
    pub fn id(self) -> &'static str {
        match self {
            TraceFormat::Mahimahi => "mahimahi",
            TraceFormat::TimeMbps => "time_s-mbps",
            TraceFormat::Gnettrack => "gnettrack-csv",
            TraceFormat::NuwinsList => "nuwins-list",
            TraceFormat::OboeChunks => "oboe-chunks",
            TraceFormat::TimeBytesCsv => "time_s-bytes_per_s-csv",
        }
    }
}

impl fmt::Display for TraceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A string that names no [`TraceFormat`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown trace format id {0:?} (known: mahimahi, time_s-mbps, gnettrack-csv, nuwins-list, oboe-chunks, time_s-bytes_per_s-csv)"
)]
pub struct UnknownFormatId(pub String);

impl FromStr for TraceFormat {
    type Err = UnknownFormatId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TraceFormat::ALL
            .into_iter()
            .find(|f| f.id() == s)
            .ok_or_else(|| UnknownFormatId(s.to_owned()))
    }
}

/// Which series of a multi-series file (NUWiNS runs) becomes the trace.
///
/// The default is [`SeriesSelect::All`]: every series of the file, concatenated in file order,
/// which is also how `MANIFEST.csv` computes a file's statistics. Single-series files give the
/// same trace either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeriesSelect {
    /// All series, one after the other in file order.
    #[default]
    All,
    /// One series by 0-based index in file order (NUWiNS: runs in file order, and within a
    /// paired run its first, then its second series).
    Index(usize),
}

impl fmt::Display for SeriesSelect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeriesSelect::All => f.write_str("all"),
            SeriesSelect::Index(i) => write!(f, "{i}"),
        }
    }
}

/// A string that is neither `all` nor a series index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("series must be `all` or a 0-based index, not {0:?}")]
pub struct BadSeries(pub String);

impl FromStr for SeriesSelect {
    type Err = BadSeries;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "all" {
            return Ok(SeriesSelect::All);
        }
        s.parse()
            .map(SeriesSelect::Index)
            .map_err(|_| BadSeries(s.to_owned()))
    }
}

/// Link direction a trace describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Towards the device.
    Down,
    /// From the device (what offloading uses).
    Up,
    /// The file does not say.
    #[default]
    Unknown,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Down => "down",
            Direction::Up => "up",
            Direction::Unknown => "unknown",
        })
    }
}

/// Which bit-rate column of a G-NetTrack CSV is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RateColumn {
    /// `DL_bitrate` (what `MANIFEST.csv` uses).
    #[default]
    Downlink,
    /// `UL_bitrate` (only the reverse traffic of a download in the UCC set, not uplink capacity).
    Uplink,
}

/// How a G-NetTrack CSV's missing seconds (no row for that timestamp) are filled.
///
/// About 10 % of the UCC seconds have no row. `MANIFEST.csv` weights every kept row as one
/// second and leaves missing seconds out, so [`GapFill::Skip`] is the default: it reproduces
/// the manifest's statistics and keeps the measured value distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GapFill {
    /// Every kept row is one second; missing seconds are left out (the trace is shorter than
    /// the wall-clock session).
    #[default]
    Skip,
    /// A row's rate holds until the next kept timestamp (wall-clock aligned).
    Hold,
    /// Every kept row is one second; missing seconds have rate 0 (wall-clock aligned).
    Zero,
}

/// How [`Trace::load`](crate::trace::Trace::load) reads a file. `Default` = auto-detect the
/// format, all series concatenated, file units.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    /// The format; `None` sniffs it from the first lines.
    pub format: Option<TraceFormat>,
    /// Which series of a multi-series file.
    pub series: SeriesSelect,
    /// Factor applied to every rate after unit conversion. Default 1. Puffer files are read in
    /// their own unit by default (as `MANIFEST.csv` does); the unit is probably MB/s rather than
    /// the Mbit/s it claims, so set 8 to read them as MB/s.
    pub scale: f64,
    /// Averaging window (s) for mahimahi delivery opportunities, whose per-millisecond counts
    /// are bursty. Default 0.1 s; `MANIFEST.csv` used 1 s.
    pub mahimahi_window_s: f64,
    /// Longest piece (s) of the linear interpolation across Oboe's gaps between chunks. Each
    /// piece carries the ramp's mid value, so the integral is exact. Default 0.1 s.
    pub interpolation_step_s: f64,
    /// G-NetTrack column.
    pub column: RateColumn,
    /// G-NetTrack missing seconds.
    pub gaps: GapFill,
    /// Overrides the direction taken from the file (mahimahi `.up`/`.down`, NUWiNS = up,
    /// G-NetTrack column).
    pub direction: Option<Direction>,
    /// Largest file accepted, in bytes (the biggest shared trace is < 4 MiB). Default 256 MiB.
    pub max_bytes: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            format: None,
            series: SeriesSelect::All,
            scale: 1.0,
            mahimahi_window_s: 0.1,
            interpolation_step_s: 0.1,
            column: RateColumn::Downlink,
            gaps: GapFill::Skip,
            direction: None,
            max_bytes: 256 << 20,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_ids_round_trip() {
        for f in TraceFormat::ALL {
            assert_eq!(f.id().parse::<TraceFormat>(), Ok(f));
        }
        assert!("csv".parse::<TraceFormat>().is_err());
    }

    #[test]
    fn series_parses() {
        assert_eq!("all".parse::<SeriesSelect>(), Ok(SeriesSelect::All));
        assert_eq!("3".parse::<SeriesSelect>(), Ok(SeriesSelect::Index(3)));
        assert!("-1".parse::<SeriesSelect>().is_err());
    }
}
