//! PNG line charts (learning curves, the demo's comparison and gradient flow) and heatmaps (attention weights).
//!
//! Text is drawn with DejaVu Sans embedded in the binary (registered with plotters' `ab_glyph` backend), so the
//! plots render the same on a machine without any system fonts.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

/// One curve: a label for the legend and its points.
#[derive(Clone, Debug)]
pub struct Series {
    /// The legend's text.
    pub label: String,
    /// `(x, y)` points in drawing order; non-finite values (and non-positive ones on a log axis) are skipped.
    pub points: Vec<(f64, f64)>,
}

/// One panel of a figure: a titled chart of several curves.
#[derive(Clone, Debug)]
pub struct Panel {
    /// Shown above the chart.
    pub title: String,
    /// The x axis' label.
    pub x_label: String,
    /// The y axis' label.
    pub y_label: String,
    /// Whether the y axis is logarithmic.
    pub log_y: bool,
    /// The curves.
    pub series: Vec<Series>,
    /// A dashed horizontal reference line and its legend text (a baseline).
    pub reference: Option<(f64, String)>,
}

const FONT: &str = "sans-serif";
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded fonts are valid TrueType files; a failure here would be a packaging bug.
        let _ = register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// Writes `panels` side by side, each `width × height` pixels, into one PNG at `path`.
pub fn write_png(path: &Path, panels: &[Panel], width: u32, height: u32) -> Result<(), String> {
    register_fonts();
    let fail = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());
    let columns = panels.len().max(1) as u32;
    let root = BitMapBackend::new(path, (width * columns, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let areas = root.split_evenly((1, columns as usize));
    for (panel, area) in panels.iter().zip(&areas) {
        draw_panel(area, panel).map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

type DrawResult = Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>>;

fn draw_panel(area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>, panel: &Panel) -> DrawResult {
    let keep = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!panel.log_y || y > 0.0);
    let points: Vec<(f64, f64)> = panel.series.iter().flat_map(|s| s.points.iter().copied()).filter(keep).collect();
    let reference = panel.reference.as_ref().map(|r| r.0).filter(|&y| y.is_finite() && (!panel.log_y || y > 0.0));
    let (mut x0, mut x1) = bounds(points.iter().map(|p| p.0));
    let (mut y0, mut y1) = bounds(points.iter().map(|p| p.1).chain(reference));
    if x0 == x1 {
        x0 -= 0.5;
        x1 += 0.5;
    }
    if panel.log_y {
        (y0, y1) = (y0 * 0.8, y1 * 1.25);
        if y0 == y1 {
            (y0, y1) = (y0 * 0.5, y1 * 2.0);
        }
    } else {
        let pad = ((y1 - y0) * 0.05).max(1e-6);
        (y0, y1) = (y0 - pad, y1 + pad);
    }
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(&panel.title, (FONT, 22).into_font().style(FontStyle::Bold))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70);
    let label_style = (FONT, 16).into_font();
    if panel.log_y {
        let decades = y1 / y0 >= 10.0;
        let mut chart = builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale())?;
        chart
            .configure_mesh()
            .x_desc(&panel.x_label)
            .y_desc(&panel.y_label)
            .axis_desc_style(label_style.clone())
            .label_style((FONT, 13))
            .light_line_style(TRANSPARENT)
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| if decades { decade(*v) } else { format!("{v:.3}") })
            .draw()?;
        draw_series(&mut chart, panel, &keep)?;
    } else {
        let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(&panel.x_label)
            .y_desc(&panel.y_label)
            .axis_desc_style(label_style)
            .label_style((FONT, 13))
            .light_line_style(TRANSPARENT)
            .x_label_formatter(&|v| tick(*v))
            .draw()?;
        draw_series(&mut chart, panel, &keep)?;
    }
    Ok(())
}

fn draw_series<'a, X, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>,
    panel: &Panel,
    keep: &dyn Fn(&(f64, f64)) -> bool,
) -> DrawResult
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, series) in panel.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(series.points.iter().copied().filter(keep), color.stroke_width(2)))?
            .label(&series.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    if let Some((y, label)) = &panel.reference {
        let (x0, x1) = (chart.x_range().start, chart.x_range().end);
        let grey = RGBColor(110, 110, 110);
        chart
            .draw_series(DashedLineSeries::new([(x0, *y), (x1, *y)], 6, 4, grey.stroke_width(1)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(legend_corner(panel))
        .draw()?;
    Ok(())
}

/// The upper corner the curves leave free: left when they end higher than they start (gradient flow, growing
/// towards the last step), right otherwise (falling losses).
fn legend_corner(panel: &Panel) -> SeriesLabelPosition {
    let rising = panel
        .series
        .iter()
        .filter_map(|s| Some((s.points.first()?.1, s.points.last()?.1)))
        .filter(|(a, b)| a < b)
        .count();
    if 2 * rising > panel.series.len() { SeriesLabelPosition::UpperLeft } else { SeriesLabelPosition::UpperRight }
}

/// Writes a heatmap of `weights` (`rows.len() × columns.len()`, row-major, each in `[0, 1]`) into a PNG at `path`:
/// one square per weight, white for 0 to dark blue for 1, the column labels above and the row labels on the left.
pub fn heatmap(path: &Path, title: &str, weights: &[f32], rows: &[String], columns: &[String]) -> Result<(), String> {
    if rows.is_empty() || columns.is_empty() || weights.len() != rows.len() * columns.len() {
        return Err(format!(
            "cannot draw {}: {} weights for {} rows and {} columns",
            path.display(),
            weights.len(),
            rows.len(),
            columns.len()
        ));
    }
    register_fonts();
    let fail = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());
    let (n_rows, n_cols) = (rows.len() as i32, columns.len() as i32);
    let cell = (640 / n_cols.max(n_rows)).clamp(16, 44);
    let (left, top) = (70, 80);
    let width = (left + n_cols * cell + 30).max(360) as u32;
    let height = (top + n_rows * cell + 30) as u32;
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let centered = |size: i32| {
        TextStyle::from((FONT, size).into_font()).pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Center,
        ))
    };
    let shown = |label: &str| if label == " " { "␣".to_string() } else { label.to_string() };
    let draw = || -> DrawResult {
        root.draw(&Text::new(title.to_string(), (width as i32 / 2, 22), centered(18)))?;
        let label_size = (cell * 3 / 5).clamp(11, 18);
        for (c, label) in columns.iter().enumerate() {
            let x = left + c as i32 * cell + cell / 2;
            root.draw(&Text::new(shown(label), (x, top - 14), centered(label_size)))?;
        }
        for (r, label) in rows.iter().enumerate() {
            let y = top + r as i32 * cell + cell / 2;
            root.draw(&Text::new(shown(label), (left - 24, y), centered(label_size)))?;
            for c in 0..columns.len() {
                let w = f64::from(weights[r * columns.len() + c]).clamp(0.0, 1.0);
                let shade = |full: u8| (255.0 - w * (255.0 - f64::from(full))).round() as u8;
                let color = RGBColor(shade(8), shade(48), shade(107));
                let (x0, y0) = (left + c as i32 * cell, top + r as i32 * cell);
                root.draw(&Rectangle::new([(x0, y0), (x0 + cell - 1, y0 + cell - 1)], color.filled()))?;
            }
        }
        let frame = [(left - 1, top - 1), (left + n_cols * cell, top + n_rows * cell)];
        root.draw(&Rectangle::new(frame, RGBColor(110, 110, 110).stroke_width(1)))?;
        Ok(())
    };
    draw().map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

/// An x tick's text: whole numbers without a decimal point (steps, time steps).
fn tick(v: f64) -> String {
    if v == v.round() { format!("{v:.0}") } else { format!("{v}") }
}

/// A log axis' tick text: powers of ten only (`1e-3`), the ticks between them unlabelled, so that they do not
/// overlap.
fn decade(v: f64) -> String {
    let exponent = v.log10().round();
    if (v.log10() - exponent).abs() < 1e-6 { format!("1e{exponent:.0}") } else { String::new() }
}

/// The smallest and largest of `values`, `(0, 1)` when there are none.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel(log_y: bool) -> Panel {
        Panel {
            title: "loss".into(),
            x_label: "step".into(),
            y_label: "MSE".into(),
            log_y,
            series: vec![
                Series { label: "train".into(), points: (0..50).map(|i| (i as f64, 1.0 / (1.0 + i as f64))).collect() },
                Series { label: "eval".into(), points: vec![(0.0, 0.9), (25.0, f64::NAN), (49.0, 0.05)] },
            ],
            reference: Some((0.167, "baseline".into())),
        }
    }

    #[test]
    fn writes_a_png_with_text_in_linear_and_log_scale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.png");
        write_png(&path, &[panel(false), panel(true)], 400, 300).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(bytes.len() > 5_000, "a chart with text and curves, not a blank page: {} bytes", bytes.len());
    }

    #[test]
    fn empty_and_constant_series_still_draw() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = panel(true);
        p.series = vec![Series { label: "flat".into(), points: vec![(0.0, 1.0), (1.0, 1.0)] }];
        p.reference = None;
        write_png(&dir.path().join("a.png"), &[p.clone()], 300, 200).unwrap();
        p.series.clear();
        write_png(&dir.path().join("b.png"), &[p], 300, 200).unwrap();
    }

    #[test]
    fn heatmaps_draw_one_square_per_weight() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.png");
        let labels = |s: &str| s.chars().map(String::from).collect::<Vec<_>>();
        let weights = [0.9, 0.1, 0.0, 0.2, 0.3, 0.5];
        heatmap(&path, "attention", &weights, &labels("ab"), &labels("x y")).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[1..4], b"PNG");
        assert!(heatmap(&path, "attention", &weights[..5], &labels("ab"), &labels("x y")).is_err());
    }

    #[test]
    fn bounds_of_nothing_is_the_unit_interval() {
        assert_eq!(bounds(std::iter::empty()), (0.0, 1.0));
        assert_eq!(bounds([3.0, -1.0, 2.0].into_iter()), (-1.0, 3.0));
        assert_eq!(decade(0.001), "1e-3");
        assert_eq!(decade(0.003), "");
        assert_eq!(tick(1500.0), "1500");
    }
}
