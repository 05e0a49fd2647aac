//! The timeline picture of one scenario: a self-contained SVG drawn from its journal alone. Time
//! runs left to right; each lane is one thing the polls watched (overall health and every breaker
//! per instance, then each alert), coloured by its state; under load (phase 4.5) each stream adds
//! its latency over time and its outcomes; the fault window is shaded; every measured latency is a
//! solid line and its budget a dashed one. Elements carry `class` and `data-*` attributes (state,
//! times in ms) so tests and tools can read the picture back.

mod lanes;
mod load;
mod parts;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::time::Duration;

use crate::vocab::health::{BreakerState, Overall};
use crate::vocab::journal::{AlertState, Journal};
use crate::vocab::units::secs;

const WIDTH: f64 = 1200.0;
const LEFT: f64 = 200.0;
const RIGHT: f64 = 40.0;
const LANE_H: f64 = 24.0;
const LANE_GAP: f64 = 6.0;
const LABEL_ROW_H: f64 = 16.0;
const FONT: &str = "DejaVu Sans, Helvetica, Arial, sans-serif";

const GREEN: &str = "#43a047";
const AMBER: &str = "#f4b400";
const RED: &str = "#e53935";
const GREY: &str = "#cfd8dc";
const PURPLE: &str = "#8e6cc0";
const PALE_GREEN: &str = "#a5d6a7";
const INK: &str = "#263238";
const MEASURED: &str = "#1e63b5";
const BUDGET: &str = "#6d4c41";

fn breaker_colour(s: BreakerState) -> &'static str {
    match s {
        BreakerState::Closed => GREEN,
        BreakerState::HalfOpen => AMBER,
        BreakerState::Open => RED,
    }
}

fn health_colour(s: Overall) -> &'static str {
    match s {
        Overall::Healthy => GREEN,
        Overall::Degraded => AMBER,
        Overall::Unhealthy => RED,
    }
}

fn alert_colour(s: AlertState) -> &'static str {
    match s {
        AlertState::Inactive => GREY,
        AlertState::Pending => AMBER,
        AlertState::Firing => RED,
        AlertState::Suppressed => PURPLE,
        AlertState::Resolved => PALE_GREEN,
    }
}

/// Text for XML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0; they carry nothing worth drawing.
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn dur(ms: u64) -> String {
    secs(Duration::from_millis(ms))
}

/// Where things go in the picture.
#[derive(Debug, Clone, Copy)]
struct Layout {
    end_ms: u64,
    plot_w: f64,
    title_h: f64,
    lanes_top: f64,
    /// Where the load lanes begin, under the state lanes.
    load_top: f64,
    /// The row of scenario steps, under the load lanes.
    steps_y: f64,
    lanes_bottom: f64,
    axis_y: f64,
    legend_y: f64,
    height: f64,
}

impl Layout {
    fn of(j: &Journal, lanes: usize, has_faults: bool) -> Layout {
        let last_event = j.events.last().map_or(0, |e| e.t_ms);
        let marker_end = j
            .measurements
            .iter()
            .map(|m| m.at_ms.max(m.start_ms() + m.budget_ms.unwrap_or(0)))
            .max()
            .unwrap_or(0);
        // A little room on the right so the last change is visible as a band, not a line.
        let end_ms = (last_event.max(marker_end).max(load::end_ms(j)) as f64 * 1.04).max(1_000.0) as u64;
        let title_h = 64.0;
        let fault_label_h = if has_faults { LABEL_ROW_H } else { 0.0 };
        let lanes_top = title_h + j.measurements.len() as f64 * LABEL_ROW_H + fault_label_h + 8.0;
        let events_lane_h = 40.0;
        let load_top = lanes_top + lanes as f64 * (LANE_H + LANE_GAP);
        let steps_y = load_top + load::height(j);
        let lanes_bottom = steps_y + events_lane_h;
        let axis_y = lanes_bottom + 4.0;
        let legend_y = axis_y + 52.0;
        let height = legend_y + 24.0 + j.findings.len() as f64 * 16.0 + 12.0;
        Layout {
            end_ms,
            plot_w: WIDTH - LEFT - RIGHT,
            title_h,
            lanes_top,
            load_top,
            steps_y,
            lanes_bottom,
            axis_y,
            legend_y,
            height,
        }
    }

    /// The x coordinate of a time in ms since the scenario started.
    fn x(&self, t: u64) -> f64 {
        LEFT + self.plot_w * (t.min(self.end_ms) as f64 / self.end_ms as f64)
    }
}

/// Renders the timeline of `j` as a standalone SVG document.
pub fn render(j: &Journal) -> String {
    let lanes = lanes::lanes(j);
    let provisional = Layout::of(j, lanes.len(), true);
    let windows = lanes::fault_windows_of(j, provisional.end_ms);
    let l = Layout::of(j, lanes.len(), !windows.is_empty());
    let findings: Vec<String> = j.findings.iter().map(|f| f.to_string()).collect();
    let (height, end_ms) = (l.height, l.end_ms);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="{FONT}" font-size="12" data-requirement="{}" data-verdict="{}" data-end-ms="{end_ms}">"#,
        esc(&j.requirement),
        j.verdict,
    );
    let _ = write!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    parts::title(&mut s, j);
    parts::grid(&mut s, &l);
    parts::lane_bands(&mut s, &l, &lanes);
    load::lanes(&mut s, &l, j);
    parts::fault_windows(&mut s, &l, &windows);
    parts::steps(&mut s, &l, j);
    parts::measurements(&mut s, &l, j);
    parts::legend(&mut s, &l);
    parts::findings(&mut s, &l, &findings);
    s.push_str("</svg>\n");
    s
}
