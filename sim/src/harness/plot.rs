//! Figures of an evaluation, as SVG (no font needed) and PNG (DejaVu Sans, registered at run
//! time from the system's fonts).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::report::Table;
use super::run::{LatencyHistogram, Series};

/// Where the DejaVu font is looked for (Debian `fonts-dejavu-core`).
pub const DEJAVU: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Why a figure could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The drawing backend failed.
    #[error("{path}: {message}")]
    Draw {
        /// The file.
        path: PathBuf,
        /// The backend's message.
        message: String,
    },
}

/// Registers DejaVu Sans as plotters' `sans-serif` once; false when the font is missing.
pub fn register_font() -> bool {
    static DONE: OnceLock<bool> = OnceLock::new();
    *DONE.get_or_init(|| match std::fs::read(DEJAVU) {
        Ok(bytes) => {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
        }
        Err(_) => false,
    })
}

const COLORS: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
    RGBColor(255, 187, 120),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

type Res = Result<(), Box<dyn std::error::Error>>;

/// Draws `f` into `stem.svg` and, when the font is there, `stem.png`.
fn both(
    stem: &Path,
    size: (u32, u32),
    f: impl Fn(&DrawingArea<SVGBackend, Shift>) -> Res + Copy,
    g: impl Fn(&DrawingArea<BitMapBackend, Shift>) -> Res,
) -> Result<Vec<PathBuf>, PlotError> {
    let mut written = Vec::new();
    // Even SVG text is measured with the registered font.
    let font = register_font();
    let svg = stem.with_extension("svg");
    let err = |path: &Path, e: Box<dyn std::error::Error>| PlotError::Draw {
        path: path.to_owned(),
        message: e.to_string(),
    };
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        f(&root).map_err(|e| err(&svg, e))?;
        root.present().map_err(|e| err(&svg, e.into()))?;
    }
    written.push(svg);
    if font {
        let png = stem.with_extension("png");
        {
            let root = BitMapBackend::new(&png, size).into_drawing_area();
            g(&root).map_err(|e| err(&png, e))?;
            root.present().map_err(|e| err(&png, e.into()))?;
        }
        written.push(png);
    }
    Ok(written)
}

fn utility_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    table: &Table,
    setting: usize,
    policies: &[String],
) -> Res
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    let fams: Vec<(&String, &Vec<(String, super::report::Aggregate)>)> = table
        .iter()
        .filter(|((s, _), _)| *s == setting)
        .map(|((_, f), e)| (f, e))
        .collect();
    let values = fams
        .iter()
        .flat_map(|(_, e)| e.iter().map(|(_, a)| a.utility));
    let (lo, hi) = values.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Mean utility per frame, by family and policy",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(90)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..fams.len() as f64, (lo - 0.05)..(hi + 0.05))?;
    let names: Vec<String> = fams.iter().map(|(f, _)| (*f).clone()).collect();
    chart
        .configure_mesh()
        .x_labels(fams.len().max(1))
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            names.get(i).cloned().unwrap_or_default()
        })
        .x_label_style(
            ("sans-serif", 11)
                .into_font()
                .transform(FontTransform::Rotate90),
        )
        .y_desc("utility")
        .draw()?;
    let n = policies.len().max(1) as f64;
    for (pi, p) in policies.iter().enumerate() {
        let c = color(pi);
        let bars: Vec<_> = fams
            .iter()
            .enumerate()
            .filter_map(|(fi, (_, e))| {
                e.iter().find(|(q, _)| q == p).map(|(_, a)| {
                    let x0 = fi as f64 + 0.1 + 0.8 * pi as f64 / n;
                    Rectangle::new([(x0, 0.0), (x0 + 0.8 / n, a.utility)], c.filled())
                })
            })
            .collect();
        chart
            .draw_series(bars)?
            .label(p.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 11))
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    Ok(())
}

/// Bar chart of mean utility per family and policy (first setting).
pub fn utility_by_family(
    dir: &Path,
    table: &Table,
    policies: &[String],
) -> Result<Vec<PathBuf>, PlotError> {
    both(
        &dir.join("utility_by_family"),
        (1200, 650),
        |a| utility_chart(a, table, 0, policies),
        |a| utility_chart(a, table, 0, policies),
    )
}

fn cdf_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    hists: &[LatencyHistogram],
    policies: &[String],
) -> Res
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Latency CDF over all traces (results that arrived)",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..400f64, 0f64..1f64)?;
    chart
        .configure_mesh()
        .x_desc("capture-to-result latency (ms)")
        .y_desc("fraction of results")
        .draw()?;
    for (pi, (p, h)) in policies.iter().zip(hists).enumerate() {
        let total: u64 = h.bins.iter().sum();
        if total == 0 {
            continue;
        }
        let c = color(pi);
        let mut acc = 0u64;
        let pts: Vec<(f64, f64)> = h
            .bins
            .iter()
            .enumerate()
            .take(401)
            .map(|(ms, &n)| {
                acc += n;
                ((ms + 1) as f64, acc as f64 / total as f64)
            })
            .collect();
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))?
            .label(p.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 11))
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    Ok(())
}

/// Latency CDFs per policy over all traces (first setting).
pub fn latency_cdf(
    dir: &Path,
    hists: &[LatencyHistogram],
    policies: &[String],
) -> Result<Vec<PathBuf>, PlotError> {
    both(
        &dir.join("latency_cdf"),
        (900, 600),
        |a| cdf_chart(a, hists, policies),
        |a| cdf_chart(a, hists, policies),
    )
}

fn series_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
    shown: &[&str],
) -> Res
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    let Some(first) = series.first() else {
        return Ok(());
    };
    let t_max = first.points.last().map_or(1.0, |p| p.t).max(1.0);
    let (top, bottom) = area.split_vertically(area.dim_in_pixel().1 / 2);
    let cap_max = first
        .points
        .iter()
        .map(|p| p.capacity_bps.max(p.estimate_bps))
        .fold(1.0f64, f64::max)
        / 1e6;
    let mut c1 = ChartBuilder::on(&top)
        .caption(
            format!("{}: capacity and estimate", first.trace),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..t_max, 0f64..cap_max * 1.05)?;
    c1.configure_mesh().y_desc("Mbit/s").draw()?;
    c1.draw_series(LineSeries::new(
        first.points.iter().map(|p| (p.t, p.capacity_bps / 1e6)),
        color(7).stroke_width(1),
    ))?
    .label("trace capacity")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], color(7).stroke_width(2)));
    for (i, s) in series
        .iter()
        .filter(|s| shown.contains(&s.policy.as_str()) && s.policy != "oracle")
        .enumerate()
    {
        let c = color(i);
        c1.draw_series(LineSeries::new(
            s.points.iter().map(|p| (p.t, p.estimate_bps / 1e6)),
            c.stroke_width(1),
        ))?
        .label(format!("estimate ({})", s.policy))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], c.stroke_width(2)));
    }
    c1.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 11))
        .draw()?;
    let k_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.layers))
        .max()
        .unwrap_or(1) as f64;
    let mut c2 = ChartBuilder::on(&bottom)
        .caption("layers sent (0 = local or skipped)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..t_max, -0.2f64..k_max + 0.5)?;
    c2.configure_mesh()
        .x_desc("time (s)")
        .y_desc("layers")
        .draw()?;
    for (i, s) in series
        .iter()
        .filter(|s| shown.contains(&s.policy.as_str()))
        .enumerate()
    {
        let c = if s.policy == "oracle" {
            BLACK
        } else {
            color(i)
        };
        c2.draw_series(LineSeries::new(
            s.points.iter().map(|p| (p.t, f64::from(p.layers))),
            c.stroke_width(1),
        ))?
        .label(s.policy.as_str())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], c.stroke_width(2)));
    }
    c2.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 11))
        .draw()?;
    Ok(())
}

/// Time series of one trace: capacity, estimates and layers of the `shown` policies.
pub fn time_series(
    dir: &Path,
    series: &[Series],
    shown: &[&str],
) -> Result<Vec<PathBuf>, PlotError> {
    both(
        &dir.join("timeseries"),
        (1200, 800),
        |a| series_chart(a, series, shown),
        |a| series_chart(a, series, shown),
    )
}
