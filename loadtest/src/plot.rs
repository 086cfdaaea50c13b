//! SVG plots: the latency distribution of a run, and CPU / latency against players for a sweep.

use std::path::Path;

use anyhow::{anyhow, Result};
use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::report::Report;

/// Percentile points of `h` (µs) as (x = 1/(1−q), y = ms), the classic HDR plot where each
/// decade on x is one more "9".
pub fn percentile_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut pts = Vec::new();
    for v in h.iter_quantiles(1) {
        let q = v.quantile_iterated_to();
        if q >= 1.0 {
            break;
        }
        pts.push((1.0 / (1.0 - q), v.value_iterated_to() as f64 / 1000.0));
    }
    if !h.is_empty() {
        let x_max = pts.last().map_or(2.0, |p| p.0 * 10.0);
        pts.push((x_max, h.max() as f64 / 1000.0));
    }
    pts
}

/// Writes `latency.svg` (latency by percentile, log x) and `latency_histogram.svg` into `dir`.
pub fn latency_plots(dir: &Path, h: &Histogram<u64>, title: &str) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let pts = percentile_points(h);
    if pts.is_empty() {
        return Err(anyhow!("no latency samples to plot"));
    }
    let y_max = pts.iter().map(|p| p.1).fold(0.0, f64::max).max(0.001) * 1.1;
    let x_max = pts.iter().map(|p| p.0).fold(10.0, f64::max);
    {
        let path = dir.join("latency.svg");
        let root = SVGBackend::new(&path, (900, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("End-to-end latency by percentile — {title}"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((1.0f64..x_max).log_scale(), 0.0f64..y_max)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .x_label_formatter(&|x| format!("{:.4}%", 100.0 * (1.0 - 1.0 / x)))
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(LineSeries::new(pts, &BLUE))
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    {
        // Linear buckets from 0 to the p99.9 value (the tail beyond is in the other plot).
        const BUCKETS: u32 = 50;
        let top = h.value_at_quantile(0.999).max(BUCKETS.into());
        let width = (top / u64::from(BUCKETS)).max(1);
        let mut counts = vec![0u64; BUCKETS as usize];
        for v in h.iter_recorded() {
            let b = (v.value_iterated_to() / width).min(u64::from(BUCKETS) - 1) as usize;
            counts[b] += v.count_at_value();
        }
        let c_max = counts.iter().copied().max().unwrap_or(1).max(1);
        let path = dir.join("latency_histogram.svg");
        let root = SVGBackend::new(&path, (900, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("Latency histogram — {title}"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((0u32..BUCKETS).into_segmented(), 0u64..c_max + c_max / 10)
            .map_err(plot_err)?;
        let bucket_ms = width as f64 / 1000.0;
        chart
            .configure_mesh()
            .x_desc(format!("latency (ms, buckets of {bucket_ms:.2} ms)"))
            .y_desc("frames")
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(b) | SegmentValue::Exact(b) => {
                    format!("{:.1}", f64::from(*b) * bucket_ms)
                }
                SegmentValue::Last => String::new(),
            })
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(
                plotters::series::Histogram::vertical(&chart)
                    .style(BLUE.filled())
                    .data(counts.iter().enumerate().map(|(i, &c)| (i as u32, c))),
            )
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(())
}

/// Writes `cpu_vs_players.svg` and `latency_vs_players.svg` for a sweep.
pub fn sweep_plots(dir: &Path, reports: &[Report]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let xs: Vec<f64> = reports
        .iter()
        .map(|r| r.connections.players_target as f64)
        .collect();
    let x_max = xs.iter().copied().fold(1.0, f64::max) * 1.05;
    let server: Vec<(f64, f64)> = reports
        .iter()
        .zip(&xs)
        .filter_map(|(r, &x)| r.server.as_ref().map(|s| (x, s.cpu_percent)))
        .collect();
    let loader: Vec<(f64, f64)> = reports
        .iter()
        .zip(&xs)
        .map(|(r, &x)| (x, r.loader.cpu_percent_avg))
        .collect();
    let y_max = server
        .iter()
        .chain(&loader)
        .map(|p| p.1)
        .fold(10.0, f64::max)
        * 1.1;
    {
        let path = dir.join("cpu_vs_players.svg");
        let root = SVGBackend::new(&path, (900, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("CPU vs players", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0f64..x_max, 0.0f64..y_max)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("players")
            .y_desc("% of one core")
            .draw()
            .map_err(plot_err)?;
        if !server.is_empty() {
            chart
                .draw_series(LineSeries::new(server, &RED))
                .map_err(plot_err)?
                .label("server")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        }
        chart
            .draw_series(LineSeries::new(loader, &BLUE))
            .map_err(plot_err)?
            .label("rtmp-load")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    {
        let p50: Vec<(f64, f64)> = reports
            .iter()
            .zip(&xs)
            .map(|(r, &x)| (x, r.latency_ms.p50))
            .collect();
        let p99: Vec<(f64, f64)> = reports
            .iter()
            .zip(&xs)
            .map(|(r, &x)| (x, r.latency_ms.p99))
            .collect();
        let y_max = p99.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
        let path = dir.join("latency_vs_players.svg");
        let root = SVGBackend::new(&path, (900, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("End-to-end latency vs players", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0f64..x_max, 0.0f64..y_max)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("players")
            .y_desc("latency (ms)")
            .draw()
            .map_err(plot_err)?;
        for (pts, color, label) in [(p50, BLUE, "p50"), (p99, RED, "p99")] {
            chart
                .draw_series(LineSeries::new(pts, color))
                .map_err(plot_err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(())
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting: {e:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist() -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in 1..=10_000u64 {
            h.record(1000 + v * 3).unwrap();
        }
        h
    }

    #[test]
    fn percentile_points_rise_and_end_at_the_max() {
        let pts = percentile_points(&hist());
        assert!(pts.len() > 5);
        assert!(pts.windows(2).all(|w| w[1].0 > w[0].0 && w[1].1 >= w[0].1));
        let last = pts.last().unwrap();
        assert!((last.1 - 31.0).abs() < 0.1, "{last:?}");
    }

    #[test]
    fn latency_plots_are_written_as_svg() {
        let dir = std::env::temp_dir().join(format!("rtmp-load-plot-{}", std::process::id()));
        latency_plots(&dir, &hist(), "test").unwrap();
        for f in ["latency.svg", "latency_histogram.svg"] {
            let svg = std::fs::read_to_string(dir.join(f)).unwrap();
            assert!(svg.starts_with("<svg"), "{f}");
            assert!(svg.contains("<polyline") || svg.contains("<rect"), "{f}");
            assert!(svg.contains("latency"), "{f}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sweep_plots_have_a_point_per_run() {
        let mut a = crate::report::tests::report();
        let mut b = crate::report::tests::report();
        a.connections.players_target = 100;
        b.connections.players_target = 500;
        b.server.as_mut().unwrap().cpu_percent = 40.0;
        let dir = std::env::temp_dir().join(format!("rtmp-load-sweep-{}", std::process::id()));
        sweep_plots(&dir, &[a, b]).unwrap();
        let svg = std::fs::read_to_string(dir.join("cpu_vs_players.svg")).unwrap();
        assert!(svg.contains("server") && svg.contains("rtmp-load"));
        assert!(svg.contains("<polyline"), "lines are drawn");
        assert!(dir.join("latency_vs_players.svg").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn empty_histogram_is_not_plotted() {
        let h = Histogram::<u64>::new(3).unwrap();
        assert!(latency_plots(&std::env::temp_dir(), &h, "x").is_err());
    }
}
