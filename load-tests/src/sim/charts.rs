//! The charts, as SVG: the RTT distribution, regional load over the day, and the reconnect
//! wave after a region loss.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::SimError;
use super::scenarios::Report;

const SIZE: (u32, u32) = (900, 500);

fn failed(path: &Path, err: impl std::fmt::Display) -> SimError {
    SimError::Chart {
        path: path.to_path_buf(),
        why: err.to_string(),
    }
}

/// Share of viewers per 10 ms of RTT.
pub fn rtt(report: &Report, path: &Path) -> Result<PathBuf, SimError> {
    let total: f64 = report.rtt_histogram.iter().sum::<f64>().max(1.0);
    let shares: Vec<f64> = report.rtt_histogram.iter().map(|v| v / total).collect();
    let top = shares.iter().cloned().fold(0.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Viewer RTT to their region — {}", report.scenario),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..(shares.len() * 10) as f64, 0f64..top.max(0.01))
        .map_err(|e| failed(path, e))?;
    chart
        .configure_mesh()
        .x_desc("round-trip time, ms (10 ms buckets; the last holds the rest)")
        .y_desc("share of viewers")
        .draw()
        .map_err(|e| failed(path, e))?;
    chart
        .draw_series(shares.iter().enumerate().map(|(i, s)| {
            let x = (i * 10) as f64;
            Rectangle::new([(x, 0.0), (x + 9.0, *s)], BLUE.filled())
        }))
        .map_err(|e| failed(path, e))?;
    root.present().map_err(|e| failed(path, e))?;
    Ok(path.to_path_buf())
}

/// Sessions over capacity per region through the day (the 8 busiest regions).
pub fn day(report: &Report, path: &Path) -> Result<PathBuf, SimError> {
    let mut busiest: Vec<usize> = (0..report.regions.len()).collect();
    busiest.sort_by(|a, b| {
        report.regions[*b]
            .peak_sessions
            .total_cmp(&report.regions[*a].peak_sessions)
    });
    busiest.truncate(8);
    let top = busiest
        .iter()
        .map(|&r| report.regions[r].peak_load)
        .fold(0.0, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Regional load over a normal day", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..24f64, 0f64..top.max(0.1))
        .map_err(|e| failed(path, e))?;
    chart
        .configure_mesh()
        .x_desc("hour, UTC")
        .y_desc("sessions / capacity")
        .draw()
        .map_err(|e| failed(path, e))?;
    for (k, &r) in busiest.iter().enumerate() {
        let row = &report.regions[r];
        let color = Palette99::pick(k).to_rgba();
        chart
            .draw_series(LineSeries::new(
                report.day[r]
                    .iter()
                    .enumerate()
                    .map(|(q, s)| (q as f64 / 4.0, s / row.capacity)),
                color.stroke_width(2),
            ))
            .map_err(|e| failed(path, e))?
            .label(row.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    finish(chart, root, path)
}

/// Reconnects accepted per second after the loss, one line per policy.
pub fn wave(report: &Report, path: &Path) -> Result<PathBuf, SimError> {
    let seconds = report
        .waves
        .iter()
        .map(|w| w.per_second.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let top = report
        .waves
        .iter()
        .flat_map(|w| w.per_second.iter().cloned())
        .fold(0.0, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Reconnect wave — {}", report.what),
            ("sans-serif", 16),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..seconds as f64, 0f64..top.max(1.0))
        .map_err(|e| failed(path, e))?;
    chart
        .configure_mesh()
        .x_desc("seconds after the loss")
        .y_desc("reconnects accepted per second")
        .draw()
        .map_err(|e| failed(path, e))?;
    for (k, w) in report.waves.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        chart
            .draw_series(LineSeries::new(
                w.per_second.iter().enumerate().map(|(s, v)| (s as f64, *v)),
                color.stroke_width(2),
            ))
            .map_err(|e| failed(path, e))?
            .label(w.policy)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    finish(chart, root, path)
}

/// The legend, then the file.
fn finish<'a, X, Y>(
    mut chart: ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    root: DrawingArea<SVGBackend<'a>, plotters::coord::Shift>,
    path: &Path,
) -> Result<PathBuf, SimError>
where
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| failed(path, e))?;
    root.present().map_err(|e| failed(path, e))?;
    Ok(path.to_path_buf())
}
