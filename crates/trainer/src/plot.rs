//! A run's curves as a picture, drawn with plotters: the training loss (each logged loss as a
//! light dot, the smoothed loss as a line, on a log scale) and, when the run measures it, FID
//! against the steps, from the typed records of `metrics.jsonl`.

use image::RgbImage;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::progress::{FidRecord, MetricsRecord};

const WIDTH: u32 = 800;
/// The loss chart's height, and the FID chart's below it.
const CHART_HEIGHT: u32 = 450;
const FID_HEIGHT: u32 = 320;
const RAW: RGBColor = RGBColor(160, 190, 230);
/// The smoothed loss.
pub const SMOOTH: RGBColor = RGBColor(20, 70, 170);
const FID: RGBColor = RGBColor(190, 60, 40);
/// The family plotters' text asks for, served by the embedded DejaVu Sans.
const FONT: &str = "sans-serif";

/// The picture of a run's `losses` (steps across, loss up on a log scale) and, if any, its
/// `fids` below; an empty loss chart when nothing positive was logged.
pub fn training_curves(losses: &[MetricsRecord], fids: &[FidRecord]) -> Result<RgbImage, String> {
    // DejaVu Sans, bundled by the `dejavu` crate: no font is read from the system.
    plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| "the embedded font does not parse".to_string())?;
    let height = CHART_HEIGHT + if fids.is_empty() { 0 } else { FID_HEIGHT };
    let mut pixels = vec![0u8; (WIDTH * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (top, bottom) = root.split_vertically(CHART_HEIGHT);
        draw_losses(&top, losses).map_err(|e| e.to_string())?;
        if !fids.is_empty() {
            draw_fids(&bottom, fids).map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(RgbImage::from_raw(WIDTH, height, pixels).expect("a buffer of the picture's size"))
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type Drawn =
    Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>>;

/// The steps the records span, at least one step wide.
fn step_range(steps: impl Iterator<Item = u64> + Clone) -> std::ops::Range<f64> {
    let first = steps.clone().min().unwrap_or(0) as f64;
    let last = steps.max().unwrap_or(1) as f64;
    first..last.max(first + 1.0)
}

fn draw_losses(area: &Area<'_>, losses: &[MetricsRecord]) -> Drawn {
    let positive = losses
        .iter()
        .flat_map(|r| [r.loss, r.loss_smoothed])
        .filter(|v| *v > 0.0 && v.is_finite());
    let (low, high) = positive.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (low, high) = match low <= high {
        true => (low / 1.2, high * 1.2),
        false => (0.01, 1.0),
    };
    let steps = step_range(losses.iter().map(|r| r.step));
    let mut chart = ChartBuilder::on(area)
        .caption("Training loss", (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(steps, (low..high).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss (log scale)")
        .x_label_formatter(&|step| format!("{step:.0}"))
        .y_label_formatter(&|loss| two_digits(*loss))
        .label_style((FONT, 14))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    let shown = |v: f64| v > 0.0 && v.is_finite();
    chart
        .draw_series(
            losses
                .iter()
                .filter(|r| shown(r.loss))
                .map(|r| Circle::new((r.step as f64, r.loss), 2, RAW.filled())),
        )?
        .label("logged loss")
        .legend(|(x, y)| Circle::new((x + 10, y), 3, RAW.filled()));
    chart
        .draw_series(LineSeries::new(
            losses
                .iter()
                .filter(|r| shown(r.loss_smoothed))
                .map(|r| (r.step as f64, r.loss_smoothed)),
            SMOOTH.stroke_width(2),
        ))?
        .label("smoothed")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], SMOOTH.stroke_width(2)));
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .draw()
}

fn draw_fids(area: &Area<'_>, fids: &[FidRecord]) -> Drawn {
    let high = fids.iter().map(|r| r.fid).fold(0.0, f64::max) * 1.1;
    let steps = step_range(fids.iter().map(|r| r.step));
    let mut chart = ChartBuilder::on(area)
        .caption("FID (lower is better)", (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(steps, 0.0..high.max(1.0))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("FID")
        .x_label_formatter(&|step| format!("{step:.0}"))
        .y_label_formatter(&|fid| two_digits(*fid))
        .label_style((FONT, 14))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    let points = fids.iter().map(|r| (r.step as f64, r.fid));
    chart.draw_series(LineSeries::new(points.clone(), FID.stroke_width(2)))?;
    chart.draw_series(points.map(|p| Circle::new(p, 3, FID.filled())))?;
    Ok(())
}

/// `value` to two significant digits, without a float's noise (`0.0031`, `0.25`, `14`).
fn two_digits(value: f64) -> String {
    if value <= 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let magnitude = value.log10().floor();
    let decimals = (1.0 - magnitude).max(0.0) as usize;
    format!("{value:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: u64, loss: f64) -> MetricsRecord {
        MetricsRecord {
            step,
            epoch: 0,
            loss,
            loss_smoothed: loss,
            lr: 1e-3,
            images_per_second: 100.0,
            wall_time_s: step as f64,
        }
    }

    #[test]
    fn tick_labels_have_two_significant_digits() {
        let labels: Vec<String> = [0.00314, 0.25, 0.7000000001, 14.2, 350.0]
            .into_iter()
            .map(two_digits)
            .collect();
        assert_eq!(labels, ["0.0031", "0.25", "0.70", "14", "350"]);
    }

    /// The smoothed line falls from left to right; the picture has text (the title's dark
    /// pixels); FID records add a chart below.
    #[test]
    fn the_smoothed_line_falls_and_fid_gets_its_own_chart() {
        let losses: Vec<MetricsRecord> = (1..=100).map(|s| record(s, 1.0 / s as f64)).collect();
        let picture = training_curves(&losses, &[]).unwrap();
        assert_eq!(picture.dimensions(), (WIDTH, CHART_HEIGHT));
        let line_row = |column: u32| {
            (0..CHART_HEIGHT)
                .find(|&r| picture.get_pixel(column, r).0 == [SMOOTH.0, SMOOTH.1, SMOOTH.2])
        };
        let columns: Vec<u32> = (0..WIDTH).filter(|&c| line_row(c).is_some()).collect();
        let (first, last) = (columns[0], columns[columns.len() - 1]);
        assert!(
            last - first > WIDTH / 2,
            "the line spans the chart: {first}..{last}"
        );
        assert!(line_row(first + 2) < line_row(last - 2), "it falls");
        let title = (0..WIDTH).flat_map(|c| (0..30).map(move |r| (c, r)));
        let dark = title.filter(|&(c, r)| picture.get_pixel(c, r).0.iter().all(|&v| v < 100));
        assert!(dark.count() > 50, "the title is drawn");

        let fids = [
            FidRecord {
                step: 50,
                fid: 80.0,
                kid: Some(0.05),
                fid_samples: 256,
            },
            FidRecord {
                step: 100,
                fid: 40.0,
                kid: None,
                fid_samples: 256,
            },
        ];
        let both = training_curves(&losses, &fids).unwrap();
        assert_eq!(both.dimensions(), (WIDTH, CHART_HEIGHT + FID_HEIGHT));
        let fid_pixels = both
            .pixels()
            .filter(|p| p.0 == [FID.0, FID.1, FID.2])
            .count();
        assert!(fid_pixels > 100, "the FID line is drawn");
        assert!(
            training_curves(&[], &[]).is_ok(),
            "an empty run draws empty axes"
        );
    }
}
