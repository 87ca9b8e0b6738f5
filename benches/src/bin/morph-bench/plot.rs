//! The chart of the report: kernels' time relative to native, as grouped
//! bars (one group per kernel, one bar per backend) on a logarithmic axis.
//! The script backends' bars compare with native code at the script sizes
//! (their legend says so), the others at the full sizes.
//!
//! Drawn with plotters' SVG backend only (no `ttf` feature, so no
//! font-kit/freetype/fontconfig system libraries): without it plotters
//! estimates text sizes for layout and writes `<text>` elements that the
//! SVG viewer renders in its own sans-serif font, which is all an SVG needs.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::results::{ALL_BACKENDS, KERNELS, Measurements, NATIVE, is_script};

/// Width and height of the chart in pixels.
const SIZE: (u32, u32) = (900, 420);

/// What the chart shows.
#[derive(Debug, Clone, PartialEq)]
pub struct RatioChart {
    /// Group labels (kernels), left to right.
    pub groups: Vec<String>,
    /// `(backend, ratio per group)`; a `None` leaves a gap.
    pub series: Vec<(String, Vec<Option<f64>>)>,
}

impl RatioChart {
    /// Kernel ratios to native (each backend at the size it ran at): only
    /// kernels with a native time and at least one backend, and only
    /// backends with at least one ratio.
    pub fn kernels_vs_native(results: &Measurements) -> Self {
        let kernels: Vec<&str> = KERNELS
            .into_iter()
            .filter(|k| {
                ALL_BACKENDS
                    .iter()
                    .any(|b| results.kernel_ratio(k, b, NATIVE).is_some())
            })
            .collect();
        let series = ALL_BACKENDS
            .iter()
            .map(|b| {
                let ratios: Vec<Option<f64>> = kernels
                    .iter()
                    .map(|k| results.kernel_ratio(k, b, NATIVE))
                    .collect();
                let label = if is_script(b) {
                    format!("{b} (script n)")
                } else {
                    (*b).to_owned()
                };
                (label, ratios)
            })
            .filter(|(_, ratios)| ratios.iter().any(Option::is_some))
            .collect();
        Self {
            groups: kernels
                .iter()
                .map(|k| k.strip_prefix("kernel_").unwrap_or(k).to_owned())
                .collect(),
            series,
        }
    }

    /// Smallest and largest ratio shown, with 1.0 (native) always inside.
    fn bounds(&self) -> (f64, f64) {
        self.series
            .iter()
            .flat_map(|(_, ratios)| ratios.iter().flatten())
            .fold((1.0f64, 1.0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)))
    }
}

/// Grid values 1, 2, 5, 10, 20, 50… (only powers of ten past three
/// decades) within `lo..=hi`: plotters' own log-axis points crowd the axis
/// with a line per unit.
fn one_two_five(lo: f64, hi: f64) -> Vec<f64> {
    let multipliers: &[f64] = if hi / lo > 1000.0 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    (first..=last)
        .flat_map(|exponent| multipliers.iter().map(move |m| m * 10f64.powi(exponent)))
        .filter(|v| (lo..=hi).contains(v))
        .collect()
}

/// A y-axis label: the ratio with at most 2 decimals and a "×" (`0.5×`,
/// `2×`, `100×`).
fn axis_label(y: f64) -> String {
    let text = format!("{y:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}×")
}

/// Bar colour of the `index`th series (colour-blind-friendly Okabe–Ito).
fn colour(index: usize) -> RGBColor {
    const COLOURS: [RGBColor; 7] = [
        RGBColor(0, 114, 178),
        RGBColor(86, 180, 233),
        RGBColor(204, 121, 167),
        RGBColor(0, 158, 115),
        RGBColor(230, 159, 0),
        RGBColor(213, 94, 0),
        RGBColor(240, 228, 66),
    ];
    COLOURS[index % COLOURS.len()]
}

/// The chart as SVG text. An empty chart is a frame with a "no results"
/// line, so the report's image link is never broken.
pub fn svg(chart: &RatioChart) -> anyhow::Result<String> {
    let mut out = String::new();
    draw(chart, &mut out).map_err(|e| anyhow::anyhow!("drawing the chart: {e}"))?;
    Ok(out)
}

/// Width of the legend column right of the plot, in pixels.
const LEGEND_WIDTH: u32 = 170;

/// Draws `chart` into `out`: title on top, the plot on the left, the
/// legend in its own column on the right (never over a bar).
fn draw(chart: &RatioChart, out: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(out, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let title = "Kernels: time relative to native (log scale; native = 1, lower is better)";
    let body = root.titled(title, ("sans-serif", 18))?;
    if chart.groups.is_empty() || chart.series.is_empty() {
        body.draw(&Text::new(
            "no kernel results yet (run cargo xtask bench)",
            (200, 150),
            ("sans-serif", 16),
        ))?;
        root.present()?;
        return Ok(());
    }
    let (plot_area, legend_area) = body.split_horizontally(SIZE.0 - LEGEND_WIDTH);

    let (lo, hi) = chart.bounds();
    // Headroom in log space, so no bar touches the frame.
    let (y_lo, y_hi) = (lo / 1.5, hi * 1.5);
    let groups = chart.groups.len();
    // Plain f64 x axis with the group labels drawn by hand under each
    // group's centre: plotters' key-point combinator has no label
    // formatter for f64, and a segmented axis cannot place several bars
    // inside one segment.
    let mut ctx = ChartBuilder::on(&plot_area)
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(
            0f64..groups as f64,
            (y_lo..y_hi)
                .log_scale()
                .with_key_points(one_two_five(y_lo, y_hi)),
        )?;
    ctx.configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|_| String::new())
        .set_tick_mark_size(LabelAreaPosition::Bottom, 0)
        .y_label_formatter(&|y| axis_label(*y))
        .y_desc("backend time / native time")
        .label_style(("sans-serif", 13))
        .draw()?;
    let centred =
        TextStyle::from(("sans-serif", 14).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (index, group) in chart.groups.iter().enumerate() {
        let (x, y) = ctx.backend_coord(&(index as f64 + 0.5, y_lo));
        root.draw(&Text::new(group.as_str(), (x, y + 8), centred.clone()))?;
    }

    let bars = chart.series.len() as f64;
    let width = 0.8 / bars;
    for (index, (_, ratios)) in chart.series.iter().enumerate() {
        let fill = colour(index).filled();
        ctx.draw_series(ratios.iter().enumerate().filter_map(|(group, ratio)| {
            let ratio = (*ratio)?;
            let x0 = group as f64 + 0.1 + index as f64 * width;
            Some(Rectangle::new([(x0, y_lo), (x0 + width, ratio)], fill))
        }))?;
    }
    ctx.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, 1.0), (groups as f64, 1.0)],
        BLACK.stroke_width(1),
    )))?;

    let left =
        TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let entry_y = |i: usize| 30 + 22 * i as i32;
    for (index, (backend, _)) in chart.series.iter().enumerate() {
        let y = entry_y(index);
        legend_area.draw(&Rectangle::new(
            [(8, y - 6), (22, y + 6)],
            colour(index).filled(),
        ))?;
        legend_area.draw(&Text::new(backend.as_str(), (30, y), left.clone()))?;
    }
    let y = entry_y(chart.series.len());
    legend_area.draw(&PathElement::new(
        vec![(8, y), (22, y)],
        BLACK.stroke_width(1),
    ))?;
    legend_area.draw(&Text::new("native = 1", (30, y), left))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_keeps_measured_kernels_and_backends() {
        let mut m = Measurements::default();
        m.insert("kernel_fib", NATIVE, 100.0);
        m.insert("kernel_fib", "wasmi", 3000.0);
        m.insert("kernel_sha256", "wasmi", 50.0); // no native: dropped
        m.insert("kernel_loop", NATIVE, 10.0);
        m.insert("kernel_loop", "wasmtime", 15.0);
        m.insert("script_kernel_loop", NATIVE, 2.0);
        m.insert("script_kernel_loop", "python", 400.0);
        let chart = RatioChart::kernels_vs_native(&m);
        assert_eq!(chart.groups, ["fib", "loop"]);
        assert_eq!(
            chart.series,
            vec![
                ("wasmtime".to_owned(), vec![None, Some(1.5)]),
                ("wasmi".to_owned(), vec![Some(30.0), None]),
                ("python (script n)".to_owned(), vec![None, Some(200.0)]),
            ]
        );
        assert_eq!(chart.bounds(), (1.0, 200.0));
    }

    #[test]
    fn grid_values() {
        assert_eq!(one_two_five(0.6, 46.0), [1.0, 2.0, 5.0, 10.0, 20.0]);
        assert_eq!(one_two_five(0.3, 3.0), [0.5, 1.0, 2.0]);
        assert_eq!(one_two_five(0.6, 2000.0), [1.0, 10.0, 100.0, 1000.0]);
    }

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(axis_label(0.5), "0.5×");
        assert_eq!(axis_label(2.0000000001), "2×");
        assert_eq!(axis_label(100.0), "100×");
    }

    #[test]
    fn svg_has_bars_labels_and_legend() -> anyhow::Result<()> {
        let chart = RatioChart {
            groups: vec!["fib".into(), "loop".into()],
            series: vec![
                ("wasmtime".into(), vec![Some(1.5), Some(2.0)]),
                ("wasmi".into(), vec![Some(30.0), None]),
            ],
        };
        let text = svg(&chart)?;
        assert!(text.starts_with("<svg"), "{text}");
        for needle in ["fib", "loop", "wasmtime", "wasmi", "native = 1"] {
            assert!(text.contains(needle), "no {needle} in {text}");
        }
        assert!(text.matches("<rect").count() >= 3 + 2);
        let empty = svg(&RatioChart {
            groups: vec![],
            series: vec![],
        })?;
        assert!(empty.contains("no kernel results yet"));
        Ok(())
    }
}
