//! The event round-trip distribution as an SVG plot: the empirical distribution function
//! of each series (the share of samples at or below each time), on one time axis. Written
//! by hand: two polylines and their axes need no plotting crate.

use std::fmt::Write;

/// One series to plot: a label, a colour and its samples in microseconds.
pub struct Series<'a> {
    pub label: &'a str,
    pub colour: &'a str,
    pub microseconds: &'a [f64],
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 400.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

/// The plot; the time axis ends at the 99th percentile of all samples, so one outlier
/// does not squeeze the rest into a corner.
pub fn distribution(title: &str, series: &[Series]) -> String {
    let mut all: Vec<f64> = series
        .iter()
        .flat_map(|s| s.microseconds.iter().copied())
        .filter(|value| value.is_finite())
        .collect();
    all.sort_by(f64::total_cmp);
    let end = if all.is_empty() {
        1.0
    } else {
        all[(all.len() - 1) * 99 / 100].max(f64::MIN_POSITIVE)
    };
    let x = |us: f64| LEFT + (us.min(end) / end) * (WIDTH - LEFT - RIGHT);
    let y = |share: f64| HEIGHT - BOTTOM - share * (HEIGHT - TOP - BOTTOM);

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    // Axes, with five ticks each.
    let _ = writeln!(
        svg,
        r#"<path d="M{LEFT},{TOP} V{} H{}" fill="none" stroke="black"/>"#,
        HEIGHT - BOTTOM,
        WIDTH - RIGHT
    );
    for tick in 0..=4 {
        let share = f64::from(tick) / 4.0;
        let us = end * share;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{us:.1}</text>"#,
            x(us),
            HEIGHT - BOTTOM + 16.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{:.0}%</text>"#,
            LEFT - 6.0,
            y(share) + 4.0,
            share * 100.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">microseconds (guest clock), axis cut at the 99th percentile</text>"#,
        WIDTH / 2.0,
        HEIGHT - 12.0
    );
    for (index, s) in series.iter().enumerate() {
        let mut sorted: Vec<f64> = s.microseconds.to_vec();
        sorted.sort_by(f64::total_cmp);
        let count = sorted.len() as f64;
        let points: Vec<String> = sorted
            .iter()
            .enumerate()
            .map(|(rank, &us)| format!("{:.1},{:.1}", x(us), y((rank + 1) as f64 / count)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.5"/>"#,
            points.join(" "),
            s.colour
        );
        let legend_y = TOP + 16.0 * index as f64 + 10.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{}" y="{}" width="12" height="3" fill="{}"/><text x="{}" y="{}">{} ({} samples)</text>"#,
            WIDTH - RIGHT - 260.0,
            legend_y - 4.0,
            s.colour,
            WIDTH - RIGHT - 242.0,
            legend_y,
            escape(s.label),
            s.microseconds.len()
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_series_is_one_rising_line_ending_at_the_top() {
        let svg = distribution(
            "a <title>",
            &[
                Series {
                    label: "events",
                    colour: "red",
                    microseconds: &[3.0, 1.0, 2.0],
                },
                Series {
                    label: "ping-pong",
                    colour: "blue",
                    microseconds: &[1.0],
                },
            ],
        );
        assert!(svg.starts_with("<svg "));
        assert!(svg.ends_with("</svg>\n"));
        assert!(svg.contains("a &lt;title&gt;"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("events (3 samples)"));
        // The one ping-pong sample reaches 100% (y = TOP).
        assert!(svg.contains(&format!(",{TOP:.1}\" fill=\"none\" stroke=\"blue\"")));
    }

    #[test]
    fn no_samples_still_draw_axes() {
        let svg = distribution("empty", &[]);
        assert!(svg.contains("<path"));
    }
}
