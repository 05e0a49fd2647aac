//! The load lanes of a timeline (phase 4.5): per stream, its latency over time (p50, p99 and max
//! of each one-second window, on a logarithmic scale) with the phase marks, and its outcomes as
//! bands, one stacked column per window coloured by class. They sit under the breaker lanes, on
//! the same time axis, inside the fault window's shade.

use std::fmt::Write as _;
use std::time::Duration;

use super::{AMBER, GREEN, GREY, INK, LANE_GAP, LANE_H, LEFT, Layout, MEASURED, PALE_GREEN, PURPLE, RED, esc};
use crate::vocab::journal::Journal;
use crate::vocab::load::{Class, LoadReport, Window, millis};

/// Height of a latency lane.
pub(super) const LATENCY_H: f64 = 90.0;
/// Height of the legend row under the load lanes.
const LEGEND_H: f64 = 22.0;

const P50: &str = MEASURED;
const P99: &str = "#ef6c00";
const MAX: &str = "#b71c1c";
const TEAL: &str = "#26a69a";
const DARK: &str = "#37474f";

/// The height the load lanes of `j` take, legend included (none without load).
pub(super) fn height(j: &Journal) -> f64 {
    if j.load.is_empty() {
        return 0.0;
    }
    j.load.len() as f64 * (LATENCY_H + LANE_GAP + LANE_H + LANE_GAP) + LEGEND_H
}

/// Where the last window of any stream ends, in ms since the scenario started.
pub(super) fn end_ms(j: &Journal) -> u64 {
    j.load.iter().map(LoadReport::end_ms).max().unwrap_or(0)
}

fn class_colour(class: Class) -> &'static str {
    match class {
        Class::Decided | Class::Answered => GREEN,
        Class::Fallback => PALE_GREEN,
        Class::CacheHit => TEAL,
        Class::Unauthorized | Class::NotFound => PURPLE,
        Class::ServerError => RED,
        Class::Other => AMBER,
        Class::Timeout => MAX,
        Class::NoAnswer => DARK,
        Class::Dropped => "black",
    }
}

/// The y of `d` in a latency lane from `top`, log scale from 1 ms to `ceiling`.
fn latency_y(d: Duration, top: f64, ceiling: Duration) -> f64 {
    let floor = 1_000.0_f64.ln();
    let span = (ceiling.as_micros().max(10_000) as f64).ln() - floor;
    let v = ((d.as_micros().max(1_000) as f64).ln() - floor) / span;
    top + LATENCY_H - 4.0 - v.clamp(0.0, 1.0) * (LATENCY_H - 8.0)
}

/// The smallest power of ten of milliseconds at or above the slowest answer (at least 10 ms).
fn ceiling_of(report: &LoadReport) -> Duration {
    let slowest = report.windows.iter().map(|w| w.latency.max).max().unwrap_or_default();
    let mut ceiling = Duration::from_millis(10);
    while ceiling < slowest {
        ceiling *= 10;
    }
    ceiling
}

/// Draws every stream's lanes from `l.load_top`, then the legend.
pub(super) fn lanes(s: &mut String, l: &Layout, j: &Journal) {
    let mut y = l.load_top;
    for report in &j.load {
        latency_lane(s, l, report, y);
        y += LATENCY_H + LANE_GAP;
        outcome_lane(s, l, report, y);
        y += LANE_H + LANE_GAP;
    }
    if !j.load.is_empty() {
        legend(s, y + 14.0);
    }
}

fn latency_lane(s: &mut String, l: &Layout, report: &LoadReport, top: f64) {
    let ceiling = ceiling_of(report);
    let label = format!("{} latency", report.stream);
    let _ = write!(
        s,
        r#"<g class="lane latency" data-lane="{}" data-route="{}" data-ceiling-ms="{}"><text x="{:.1}" y="{:.1}" text-anchor="end" fill="{INK}">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end" fill="{INK}" font-size="10">{}</text><rect x="{LEFT}" y="{top:.1}" width="{:.1}" height="{LATENCY_H}" fill="none" stroke="{GREY}"/>"#,
        esc(&label),
        esc(report.route.label()),
        ceiling.as_millis(),
        LEFT - 10.0,
        top + 16.0,
        esc(&label),
        LEFT - 10.0,
        top + 30.0,
        esc(report.route.label()),
        l.plot_w
    );
    // Gridlines at each power of ten, labelled on the left.
    let mut tick = Duration::from_millis(1);
    while tick <= ceiling {
        let y = latency_y(tick, top, ceiling);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eceff1"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="{INK}" font-size="9">{}</text>"##,
            LEFT + l.plot_w,
            LEFT - 3.0,
            y + 3.0,
            millis(tick)
        );
        tick *= 10;
    }
    for (colour, name, dash, pick) in [
        (P50, "p50", "", (|w: &Window| w.latency.p50) as fn(&Window) -> Duration),
        (P99, "p99", "", |w: &Window| w.latency.p99),
        (MAX, "max", r#" stroke-dasharray="3 2""#, |w: &Window| w.latency.max),
    ] {
        // One polyline per run of windows that sent something: an empty second is a gap.
        let mut runs: Vec<Vec<String>> = vec![Vec::new()];
        for w in &report.windows {
            if w.latency.count == 0 {
                runs.push(Vec::new());
                continue;
            }
            let x = l.x(report.start_ms + w.start.as_millis() as u64 + 500);
            let point = format!("{x:.1},{:.1}", latency_y(pick(w), top, ceiling));
            if let Some(run) = runs.last_mut() {
                run.push(point);
            }
        }
        for run in runs.iter().filter(|r| !r.is_empty()) {
            let _ = write!(
                s,
                r#"<polyline class="{name}" points="{}" fill="none" stroke="{colour}" stroke-width="1.6"{dash}/>"#,
                run.join(" ")
            );
        }
    }
    for w in &report.windows {
        let t = report.start_ms + w.start.as_millis() as u64;
        let (x0, x1) = (l.x(t), l.x(t + 1_000));
        let _ = write!(
            s,
            r#"<rect class="window" data-t-ms="{t}" data-requests="{}" data-p50-us="{}" data-p99-us="{}" data-max-us="{}" x="{x0:.1}" y="{top:.1}" width="{:.1}" height="{LATENCY_H}" fill="transparent"><title>{} {}</title></rect>"#,
            w.requests,
            w.latency.p50.as_micros(),
            w.latency.p99.as_micros(),
            w.latency.max.as_micros(),
            (x1 - x0).max(1.0),
            esc(&report.stream),
            esc(&w.to_string())
        );
    }
    for mark in &report.marks {
        let x = l.x(mark.at_ms);
        let _ = write!(
            s,
            r#"<g class="phase" data-phase="{}" data-t-ms="{}"><line x1="{x:.1}" y1="{top:.1}" x2="{x:.1}" y2="{:.1}" stroke="{INK}" stroke-dasharray="2 3"/><text x="{:.1}" y="{:.1}" fill="{INK}" font-size="10">{}</text></g>"#,
            esc(&mark.phase),
            mark.at_ms,
            top + LATENCY_H,
            x + 3.0,
            top + 11.0,
            esc(&mark.phase)
        );
    }
    s.push_str("</g>");
}

fn outcome_lane(s: &mut String, l: &Layout, report: &LoadReport, top: f64) {
    let label = format!("{} outcomes", report.stream);
    let _ = write!(
        s,
        r#"<g class="lane outcomes" data-lane="{}"><text x="{:.1}" y="{:.1}" text-anchor="end" fill="{INK}">{}</text><rect x="{LEFT}" y="{top:.1}" width="{:.1}" height="{LANE_H}" fill="none" stroke="{GREY}"/>"#,
        esc(&label),
        LEFT - 10.0,
        top + LANE_H / 2.0 + 4.0,
        esc(&label),
        l.plot_w
    );
    for w in &report.windows {
        let total = w.outcomes.total();
        if total == 0 {
            continue;
        }
        let t = report.start_ms + w.start.as_millis() as u64;
        let (x0, x1) = (l.x(t), l.x(t + 1_000));
        let mut y = top;
        for (class, n) in w.outcomes.iter() {
            let h = LANE_H * n as f64 / total as f64;
            let _ = write!(
                s,
                r#"<rect class="outcome" data-class="{}" data-t-ms="{t}" data-count="{n}" x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{h:.2}" fill="{}"><title>{} s: {n} of {total} {}</title></rect>"#,
                class_name(class),
                (x1 - x0).max(1.0),
                class_colour(class),
                t / 1000,
                class.label()
            );
            y += h;
        }
    }
    s.push_str("</g>");
}

fn class_name(class: Class) -> String {
    serde_json::to_value(class)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn legend(s: &mut String, y: f64) {
    let mut x = 16.0;
    for (name, colour, dash) in [("p50", P50, ""), ("p99", P99, ""), ("max", MAX, "3 2")] {
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/><text x="{:.1}" y="{y:.1}" fill="{INK}">{name}</text>"#,
            y - 4.0,
            x + 18.0,
            y - 4.0,
            x + 22.0
        );
        x += 60.0;
    }
    for class in Class::ALL {
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="{:.1}" width="12" height="10" fill="{}"/><text x="{:.1}" y="{y:.1}" fill="{INK}" font-size="11">{}</text>"#,
            y - 9.0,
            class_colour(class),
            x + 15.0,
            class.label()
        );
        x += 24.0 + 6.2 * class.label().len() as f64;
    }
}
