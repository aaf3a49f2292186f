//! The loss curve of a run as a picture: each logged loss as a light dot, the smoothed loss as a
//! line, on a log scale with a labelled grid (a few digits in a small built-in font, no font
//! files needed).

use image::{Rgb, RgbImage};

const WIDTH: u32 = 720;
const HEIGHT: u32 = 420;
/// Left, top, right, bottom margins.
const MARGIN: [u32; 4] = [64, 16, 16, 36];
const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const GRID: Rgb<u8> = Rgb([215, 215, 215]);
const FAINT: Rgb<u8> = Rgb([240, 240, 240]);
const AXIS: Rgb<u8> = Rgb([90, 90, 90]);
const RAW: Rgb<u8> = Rgb([160, 190, 230]);
const SMOOTH: Rgb<u8> = Rgb([20, 70, 170]);

/// One logged point: the step, its loss and the smoothed loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossPoint {
    /// Optimiser steps done.
    pub step: u64,
    /// The step's loss.
    pub loss: f64,
    /// The smoothed loss.
    pub smoothed: f64,
}

/// The picture of `points` (at least one, losses positive), steps across, loss up (log scale).
pub fn loss_curve(points: &[LossPoint]) -> RgbImage {
    let mut canvas = RgbImage::from_pixel(WIDTH, HEIGHT, WHITE);
    let [left, top, right, bottom] = MARGIN;
    let (x0, x1, y0, y1) = (left, WIDTH - right, top, HEIGHT - bottom);
    let positive = points
        .iter()
        .flat_map(|p| [p.loss, p.smoothed])
        .filter(|v| *v > 0.0);
    let (low, high) = positive.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if low > high {
        return canvas;
    }
    // Whole decades around the data, at least one.
    let (lo, hi) = (
        low.log10().floor(),
        high.log10().ceil().max(low.log10().floor() + 1.0),
    );
    let last = points.iter().map(|p| p.step).max().unwrap_or(1).max(1) as f64;
    let x = |step: u64| x0 as f64 + (x1 - x0) as f64 * step as f64 / last;
    let y = |value: f64| y1 as f64 - (y1 - y0) as f64 * (value.log10() - lo) / (hi - lo);

    for decade in lo as i32..=hi as i32 {
        for mantissa in 1..10 {
            let value = 10f64.powi(decade) * mantissa as f64;
            if value > 10f64.powf(hi) {
                break;
            }
            let row = (y(value).round() as u32).min(y1);
            let color = if mantissa == 1 { GRID } else { FAINT };
            (x0..=x1).for_each(|c| canvas.put_pixel(c, row, color));
            if mantissa == 1 {
                let label = format!("1e{decade}");
                text(
                    &mut canvas,
                    &label,
                    x0.saturating_sub(6 + 6 * label.len() as u32),
                    row.saturating_sub(3),
                );
            }
        }
    }
    for i in 0..=4u64 {
        let step = (last as u64 * i) / 4;
        let column = x(step).round() as u32;
        (y0..=y1).for_each(|r| canvas.put_pixel(column.min(x1), r, GRID));
        let label = step.to_string();
        let start = column
            .saturating_sub(3 * label.len() as u32)
            .min(WIDTH - 6 * label.len() as u32);
        text(&mut canvas, &label, start, y1 + 8);
    }
    text(&mut canvas, "step", (x0 + x1) / 2 - 12, y1 + 22);
    text(&mut canvas, "loss", 6, y0 + 2);
    (x0..=x1).for_each(|c| canvas.put_pixel(c, y1, AXIS));
    (y0..=y1).for_each(|r| canvas.put_pixel(x0, r, AXIS));

    for point in points.iter().filter(|p| p.loss > 0.0) {
        dot(&mut canvas, x(point.step), y(point.loss), RAW);
    }
    for pair in points
        .windows(2)
        .filter(|w| w[0].smoothed > 0.0 && w[1].smoothed > 0.0)
    {
        let (a, b) = (&pair[0], &pair[1]);
        line(
            &mut canvas,
            (x(a.step), y(a.smoothed)),
            (x(b.step), y(b.smoothed)),
        );
    }
    canvas
}

fn inside(canvas: &RgbImage, x: f64, y: f64) -> Option<(u32, u32)> {
    let (x, y) = (x.round(), y.round());
    (x >= 0.0 && y >= 0.0 && (x as u32) < canvas.width() && (y as u32) < canvas.height())
        .then_some((x as u32, y as u32))
}

fn dot(canvas: &mut RgbImage, x: f64, y: f64, color: Rgb<u8>) {
    for (dx, dy) in [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)] {
        if let Some((c, r)) = inside(canvas, x + dx, y + dy) {
            canvas.put_pixel(c, r, color);
        }
    }
}

/// A two-pixel-thick segment.
fn line(canvas: &mut RgbImage, (ax, ay): (f64, f64), (bx, by): (f64, f64)) {
    let steps = (bx - ax).abs().max((by - ay).abs()).ceil().max(1.0) as usize;
    for i in 0..=steps {
        let t = i as f64 / steps as f64;
        let (x, y) = (ax + (bx - ax) * t, ay + (by - ay) * t);
        for (dx, dy) in [(0.0, 0.0), (0.0, 1.0)] {
            if let Some((c, r)) = inside(canvas, x + dx, y + dy) {
                canvas.put_pixel(c, r, SMOOTH);
            }
        }
    }
}

/// Writes `label` in a 5×7 font, 6 pixels a character, its top left at `(x, y)`. Characters the
/// font lacks are left blank.
fn text(canvas: &mut RgbImage, label: &str, x: u32, y: u32) {
    for (i, character) in label.chars().enumerate() {
        let Some(rows) = glyph(character) else {
            continue;
        };
        for (dy, row) in rows.iter().enumerate() {
            for (dx, bit) in row.bytes().enumerate() {
                let (c, r) = (x + 6 * i as u32 + dx as u32, y + dy as u32);
                if bit == b'#' && c < canvas.width() && r < canvas.height() {
                    canvas.put_pixel(c, r, AXIS);
                }
            }
        }
    }
}

/// The 5×7 glyphs of the characters the plot writes.
fn glyph(character: char) -> Option<[&'static str; 7]> {
    Some(match character {
        '0' => [
            " ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### ",
        ],
        '1' => [
            "  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### ",
        ],
        '2' => [
            " ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####",
        ],
        '3' => [
            "#### ", "    #", "    #", " ### ", "    #", "    #", "#### ",
        ],
        '4' => [
            "   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # ",
        ],
        '5' => [
            "#####", "#    ", "#### ", "    #", "    #", "#   #", " ### ",
        ],
        '6' => [
            "  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### ",
        ],
        '7' => [
            "#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   ",
        ],
        '8' => [
            " ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### ",
        ],
        '9' => [
            " ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  ",
        ],
        '-' => [
            "     ", "     ", "     ", "#####", "     ", "     ", "     ",
        ],
        'e' => [
            "     ", "     ", " ### ", "#   #", "#####", "#    ", " ### ",
        ],
        'l' => [
            " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### ",
        ],
        'o' => [
            "     ", "     ", " ### ", "#   #", "#   #", "#   #", " ### ",
        ],
        's' => [
            "     ", "     ", " ####", "#    ", " ### ", "    #", "#### ",
        ],
        't' => [
            " #   ", " #   ", "#### ", " #   ", " #   ", " #  #", "  ## ",
        ],
        'p' => [
            "     ", "     ", "#### ", "#   #", "#### ", "#    ", "#    ",
        ],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smoothed_line_falls_from_left_to_right() {
        let points: Vec<LossPoint> = (1..=100)
            .map(|step| LossPoint {
                step,
                loss: 1.0 / step as f64,
                smoothed: 1.0 / step as f64,
            })
            .collect();
        let picture = loss_curve(&points);
        assert_eq!(picture.dimensions(), (WIDTH, HEIGHT));
        // The row of the line's darkest pixel in a column near each end.
        let line_row = |column: u32| {
            (0..HEIGHT)
                .find(|&r| *picture.get_pixel(column, r) == SMOOTH)
                .expect("the line crosses every column")
        };
        let (start, end) = (line_row(MARGIN[0] + 10), line_row(WIDTH - MARGIN[2] - 2));
        assert!(start < end, "{start} {end}");
        assert!(loss_curve(&[]).pixels().all(|p| *p == WHITE));
    }
}
