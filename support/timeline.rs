//! The timeline picture of one scenario: a self-contained SVG drawn from its journal alone. Time
//! runs left to right; each lane is one thing the polls watched (overall health and every breaker
//! per instance, then each alert), coloured by its state; the fault window is shaded; every
//! measured latency is a solid line and its budget a dashed one. Elements carry `class` and
//! `data-*` attributes (state, times in ms) so tests and tools can read the picture back.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::journal::{AlertState, EventKind, Journal};
use crate::model::{Breaker, BreakerState, Overall};
use crate::poll::secs;

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

/// The states a lane went through: (time in ms, state name, colour).
type Changes = Vec<(u64, String, &'static str)>;

/// One lane: a label and the states it went through.
struct Lane {
    label: String,
    class: &'static str,
    changes: Changes,
}

/// The lanes of a journal in the order they were first seen: per instance its health then its
/// breakers, then the alerts.
fn lanes(j: &Journal) -> Vec<Lane> {
    let mut instances: Vec<String> = Vec::new();
    let mut health: BTreeMap<String, Changes> = BTreeMap::new();
    let mut breakers: BTreeMap<(String, Breaker), Changes> = BTreeMap::new();
    let mut alerts: Vec<(String, Changes)> = Vec::new();
    for e in &j.events {
        match &e.kind {
            EventKind::HealthChanged { instance, to, .. } => {
                if !instances.contains(instance) {
                    instances.push(instance.clone());
                }
                health
                    .entry(instance.clone())
                    .or_default()
                    .push((e.t_ms, to.to_string(), health_colour(*to)));
            }
            EventKind::BreakerChanged {
                instance, breaker, to, ..
            } => {
                if !instances.contains(instance) {
                    instances.push(instance.clone());
                }
                breakers.entry((instance.clone(), *breaker)).or_default().push((
                    e.t_ms,
                    to.to_string(),
                    breaker_colour(*to),
                ));
            }
            EventKind::AlertChanged { alert, to, .. } => {
                let change = (e.t_ms, to.to_string(), alert_colour(*to));
                match alerts.iter_mut().find(|(a, _)| a == alert) {
                    Some((_, changes)) => changes.push(change),
                    None => alerts.push((alert.clone(), vec![change])),
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for inst in &instances {
        out.push(Lane {
            label: format!("{inst} health"),
            class: "health",
            changes: health.remove(inst).unwrap_or_default(),
        });
        for b in Breaker::ALL {
            out.push(Lane {
                label: format!("{inst} {b} breaker"),
                class: "breaker",
                changes: breakers.remove(&(inst.clone(), b)).unwrap_or_default(),
            });
        }
    }
    for (alert, changes) in alerts {
        out.push(Lane {
            label: format!("alert {alert}"),
            class: "alert",
            changes,
        });
    }
    out
}

/// Fault windows: from the fault taking effect to its service answering again (or the end of
/// the picture, when the journal has no restore).
fn fault_windows(j: &Journal, end_ms: u64) -> Vec<(String, u64, u64, Option<u64>)> {
    let mut windows = Vec::new();
    for (i, e) in j.events.iter().enumerate() {
        if let EventKind::FaultApplied { fault } = &e.kind {
            let restored = j.events[i..].iter().find_map(|r| match &r.kind {
                EventKind::FaultRestored { fault: f, restore_ms } if f == fault => Some((r.t_ms, *restore_ms)),
                _ => None,
            });
            let (to, restore_ms) = restored.map_or((end_ms, None), |(t, r)| (t, Some(r)));
            windows.push((fault.to_string(), e.t_ms, to, restore_ms));
        }
    }
    windows
}

/// A tick step that gives at most about a dozen ticks.
fn tick_step_ms(end_ms: u64) -> u64 {
    const STEPS: [u64; 14] = [
        100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000,
    ];
    STEPS.iter().copied().find(|s| end_ms / s <= 12).unwrap_or(3_600_000)
}

fn tick_label(ms: u64, step: u64) -> String {
    if step < 1_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} s", ms / 1000)
    }
}

/// Renders the timeline of `j` as a standalone SVG document.
pub fn render(j: &Journal) -> String {
    let last_event = j.events.last().map_or(0, |e| e.t_ms);
    let marker_end = j
        .measurements
        .iter()
        .map(|m| m.at_ms.max(m.start_ms() + m.budget_ms.unwrap_or(0)))
        .max()
        .unwrap_or(0);
    // A little room on the right so the last change is visible as a band, not a line.
    let end_ms = (last_event.max(marker_end) as f64 * 1.04).max(1_000.0) as u64;
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |t: u64| LEFT + plot_w * (t.min(end_ms) as f64 / end_ms as f64);

    let lanes = lanes(j);
    let windows = fault_windows(j, end_ms);
    let marker_rows = j.measurements.len() as f64;
    let title_h = 64.0;
    let fault_label_h = if windows.is_empty() { 0.0 } else { LABEL_ROW_H };
    let lanes_top = title_h + marker_rows * LABEL_ROW_H + fault_label_h + 8.0;
    let events_lane_h = 40.0;
    let lanes_bottom = lanes_top + lanes.len() as f64 * (LANE_H + LANE_GAP) + events_lane_h;
    let axis_y = lanes_bottom + 4.0;
    let legend_y = axis_y + 52.0;
    let findings: Vec<_> = j.findings.iter().map(|f| f.to_string()).collect();
    let height = legend_y + 24.0 + findings.len() as f64 * 16.0 + 12.0;

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="{FONT}" font-size="12" data-requirement="{}" data-verdict="{}" data-end-ms="{end_ms}">"#,
        esc(&j.requirement),
        j.verdict,
    );
    let _ = write!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);

    // Title: requirement, its text, target and verdict.
    let verdict_colour = match j.verdict {
        crate::journal::Outcome::Pass => GREEN,
        crate::journal::Outcome::Running => GREY,
        _ => RED,
    };
    let _ = write!(
        s,
        r#"<text class="title" x="16" y="26" font-size="18" font-weight="bold" fill="{INK}">{} — {}</text>"#,
        esc(&j.requirement),
        esc(&j.title)
    );
    let _ = write!(
        s,
        r#"<rect x="16" y="36" width="92" height="18" rx="3" fill="{verdict_colour}"/><text class="verdict" x="62" y="49" text-anchor="middle" font-weight="bold" fill="white">{}</text>"#,
        j.verdict
    );
    let _ = write!(
        s,
        r#"<text class="target" x="118" y="49" fill="{INK}">{}</text>"#,
        esc(&j.target)
    );

    // Grid and axis first, so that bands and markers draw over them.
    let step = tick_step_ms(end_ms);
    let mut t = 0;
    while t <= end_ms {
        let tx = x(t);
        let _ = write!(
            s,
            r##"<line class="grid" x1="{tx:.1}" y1="{lanes_top:.1}" x2="{tx:.1}" y2="{axis_y:.1}" stroke="#eceff1"/><text class="tick" x="{tx:.1}" y="{:.1}" text-anchor="middle" fill="{INK}" data-t-ms="{t}">{}</text>"##,
            axis_y + 16.0,
            tick_label(t, step)
        );
        t += step;
    }
    let _ = write!(
        s,
        r#"<line class="axis" x1="{LEFT}" y1="{axis_y:.1}" x2="{:.1}" y2="{axis_y:.1}" stroke="{INK}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{INK}" font-style="italic">time since the scenario started</text>"#,
        WIDTH - RIGHT,
        LEFT + plot_w / 2.0,
        axis_y + 32.0
    );

    // One lane per watched thing, bands coloured by state.
    for (i, lane) in lanes.iter().enumerate() {
        let y = lanes_top + i as f64 * (LANE_H + LANE_GAP);
        let _ = write!(
            s,
            r#"<g class="lane {}" data-lane="{}"><text x="{:.1}" y="{:.1}" text-anchor="end" fill="{INK}">{}</text><rect x="{LEFT}" y="{y:.1}" width="{plot_w:.1}" height="{LANE_H}" fill="none" stroke="{GREY}"/>"#,
            lane.class,
            esc(&lane.label),
            LEFT - 10.0,
            y + LANE_H / 2.0 + 4.0,
            esc(&lane.label)
        );
        for (k, (from, state, colour)) in lane.changes.iter().enumerate() {
            let to = lane.changes.get(k + 1).map_or(end_ms, |n| n.0);
            let (x0, x1) = (x(*from), x(to));
            let _ = write!(
                s,
                r#"<rect class="band" data-state="{}" data-from-ms="{from}" data-to-ms="{to}" x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{LANE_H}" fill="{colour}"><title>{}: {} from {} to {}</title></rect>"#,
                esc(state),
                (x1 - x0).max(1.0),
                esc(&lane.label),
                esc(state),
                dur(*from),
                dur(to)
            );
            if x1 - x0 > 8.0 * state.len() as f64 {
                let _ = write!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" fill="white" font-size="11" font-weight="bold" pointer-events="none">{}</text>"#,
                    x0 + 5.0,
                    y + LANE_H / 2.0 + 4.0,
                    esc(state)
                );
            }
        }
        s.push_str("</g>");
    }

    // Fault windows, over the lanes: translucent, so the states stay readable inside them.
    for (spec, from, to, restore_ms) in &windows {
        let (x0, x1) = (x(*from), x(*to));
        let restore = restore_ms.map_or("not restored in this journal".to_string(), |r| {
            format!("restore took {}", dur(r))
        });
        let _ = write!(
            s,
            r##"<g class="fault" data-fault="{}" data-from-ms="{from}" data-to-ms="{to}"><title>fault {}: {} to {} ({restore})</title><rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#7f0000" fill-opacity="0.22" stroke="#7f0000" stroke-opacity="0.8" stroke-width="1.5" stroke-dasharray="5 3"/><text x="{:.1}" y="{:.1}" fill="#b71c1c" font-weight="bold">fault: {}</text></g>"##,
            esc(spec),
            esc(spec),
            dur(*from),
            dur(*to),
            lanes_top - 4.0,
            (x1 - x0).max(1.0),
            lanes_bottom - lanes_top + 4.0,
            x0 + 4.0,
            lanes_top - 8.0,
            esc(spec)
        );
    }

    // The scenario's steps: preflight, fault, restore, postcheck, as ticks with labels.
    let ev_y = lanes_top + lanes.len() as f64 * (LANE_H + LANE_GAP);
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="{INK}">scenario steps</text>"#,
        LEFT - 10.0,
        ev_y + 14.0
    );
    let mut step_no = 0;
    for e in &j.events {
        let (label, colour) = match &e.kind {
            EventKind::Preflight { instance } => (format!("preflight {instance}"), GREEN),
            EventKind::FaultApplied { fault } => (format!("{} {}", fault.kind.verb(), fault.service), RED),
            EventKind::FaultRestored { fault, .. } => (format!("{} back", fault.service), GREEN),
            EventKind::Postcheck { instance, settled } => (
                format!("postcheck {instance} {}", if *settled { "ok" } else { "FAILED" }),
                if *settled { GREEN } else { RED },
            ),
            _ => continue,
        };
        let ex = x(e.t_ms);
        // Alternate two label rows so steps close in time stay readable.
        let ly = ev_y + 14.0 + (step_no % 2) as f64 * 16.0;
        step_no += 1;
        let (lx, anchor) = if ex + 8.0 + 6.5 * label.len() as f64 > WIDTH {
            (ex - 7.0, "end")
        } else {
            (ex + 7.0, "start")
        };
        let _ = write!(
            s,
            r#"<g class="step" data-kind="{}" data-t-ms="{}"><title>{} at {}</title><path d="M{ex:.1} {:.1} l5 6 l-5 6 l-5 -6 z" fill="{colour}"/><text x="{lx:.1}" y="{ly:.1}" text-anchor="{anchor}" fill="{INK}" font-size="11">{}</text></g>"#,
            kind_name(&e.kind),
            e.t_ms,
            esc(&e.text),
            dur(e.t_ms),
            ly - 10.0,
            esc(&label)
        );
    }

    // Measurements: a solid line where the wait ended, a dashed line where its budget ends,
    // each labelled in its own row above the lanes.
    for (i, m) in j.measurements.iter().enumerate() {
        let row_y = title_h + (i as f64 + 1.0) * LABEL_ROW_H - 2.0;
        let (xs, xm) = (x(m.start_ms()), x(m.at_ms));
        let colour = if m.within_budget { MEASURED } else { RED };
        let label = match m.budget_ms {
            Some(b) => format!("{} {} / budget {}", m.what, dur(m.measured_ms), dur(b)),
            None => format!("{} {} (no budget)", m.what, dur(m.measured_ms)),
        };
        let _ = write!(
            s,
            r#"<g class="measurement" data-what="{}" data-measured-ms="{}" data-start-ms="{}" data-at-ms="{}"{}>"#,
            esc(&m.what),
            m.measured_ms,
            m.start_ms(),
            m.at_ms,
            m.budget_ms
                .map_or(String::new(), |b| format!(r#" data-budget-ms="{b}""#))
        );
        let _ = write!(
            s,
            r#"<line x1="{xs:.1}" y1="{:.1}" x2="{xm:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2"/><line class="measured" x1="{xm:.1}" y1="{:.1}" x2="{xm:.1}" y2="{lanes_bottom:.1}" stroke="{colour}" stroke-width="2"/>"#,
            row_y + 3.0,
            row_y + 3.0,
            row_y + 3.0
        );
        let mut label_end = xm;
        if let Some(b) = m.budget_ms {
            let xb = x(m.start_ms() + b);
            label_end = label_end.max(xb);
            let _ = write!(
                s,
                r#"<line class="budget" x1="{xb:.1}" y1="{:.1}" x2="{xb:.1}" y2="{lanes_bottom:.1}" stroke="{BUDGET}" stroke-width="1.5" stroke-dasharray="6 4"/>"#,
                row_y - 8.0
            );
        }
        // Labels go right of the marker unless that would leave the picture.
        let (lx, anchor) = if label_end + 8.0 + 7.0 * label.len() as f64 > WIDTH {
            (xs - 6.0, "end")
        } else {
            (label_end + 6.0, "start")
        };
        let _ = write!(
            s,
            r#"<text class="measurement-label" x="{lx:.1}" y="{row_y:.1}" text-anchor="{anchor}" fill="{colour}" font-weight="bold">{}</text></g>"#,
            esc(&label)
        );
    }

    // Legend.
    let legend = [
        ("CLOSED / healthy", GREEN),
        ("HALF_OPEN / degraded / pending", AMBER),
        ("OPEN / unhealthy / firing", RED),
        ("suppressed", PURPLE),
        ("resolved", PALE_GREEN),
    ];
    let mut lx = 16.0;
    for (name, colour) in legend {
        let _ = write!(
            s,
            r#"<rect x="{lx:.1}" y="{:.1}" width="14" height="12" fill="{colour}"/><text x="{:.1}" y="{legend_y:.1}" fill="{INK}">{name}</text>"#,
            legend_y - 10.0,
            lx + 18.0
        );
        lx += 26.0 + 6.6 * name.len() as f64;
    }
    let _ = write!(
        s,
        r##"<rect x="{lx:.1}" y="{:.1}" width="14" height="12" fill="#7f0000" fill-opacity="0.22" stroke="#7f0000" stroke-dasharray="3 2"/><text x="{:.1}" y="{legend_y:.1}" fill="{INK}">fault window</text>"##,
        legend_y - 10.0,
        lx + 18.0
    );
    lx += 120.0;
    let _ = write!(
        s,
        r#"<line x1="{lx:.1}" y1="{:.1}" x2="{lx:.1}" y2="{:.1}" stroke="{MEASURED}" stroke-width="2"/><text x="{:.1}" y="{legend_y:.1}" fill="{INK}">measured</text>"#,
        legend_y - 11.0,
        legend_y + 2.0,
        lx + 6.0
    );
    lx += 80.0;
    let _ = write!(
        s,
        r#"<line x1="{lx:.1}" y1="{:.1}" x2="{lx:.1}" y2="{:.1}" stroke="{BUDGET}" stroke-width="1.5" stroke-dasharray="4 3"/><text x="{:.1}" y="{legend_y:.1}" fill="{INK}">budget</text>"#,
        legend_y - 11.0,
        legend_y + 2.0,
        lx + 6.0
    );

    for (i, f) in findings.iter().enumerate() {
        let fy = legend_y + 24.0 + i as f64 * 16.0;
        let colour = if f.starts_with("NOTE") { INK } else { RED };
        let shown: String = if f.chars().count() > 170 {
            f.chars().take(167).chain("...".chars()).collect()
        } else {
            f.clone()
        };
        let _ = write!(
            s,
            r#"<text class="finding" x="16" y="{fy:.1}" fill="{colour}"><title>{}</title>{}</text>"#,
            esc(f),
            esc(&shown)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn kind_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Preflight { .. } => "preflight",
        EventKind::FaultApplied { .. } => "fault_applied",
        EventKind::FaultRestored { .. } => "fault_restored",
        EventKind::BreakerChanged { .. } => "breaker_changed",
        EventKind::HealthChanged { .. } => "health_changed",
        EventKind::AlertChanged { .. } => "alert_changed",
        EventKind::Postcheck { .. } => "postcheck",
        EventKind::Note => "note",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::fault::{FaultKind, FaultSpec, Service};
    use crate::finding::{Defect, Finding};
    use crate::journal::{Event, Measurement, Outcome};

    fn at(t_ms: u64, text: &str, kind: EventKind) -> Event {
        Event {
            t_ms,
            text: text.to_string(),
            kind,
        }
    }

    fn breaker(t_ms: u64, from: Option<BreakerState>, to: BreakerState) -> Event {
        at(
            t_ms,
            "breaker",
            EventKind::BreakerChanged {
                instance: "USA".into(),
                breaker: Breaker::Opa,
                from,
                to,
            },
        )
    }

    /// 4.1-opa as a reference run journals it: OPA stopped at 1.2 s, the breaker opens 0.6 s
    /// later against a 3 s budget, the alert fires, OPA comes back and everything closes.
    fn opa_journal() -> Journal {
        let opa = FaultSpec {
            instance: "USA".into(),
            service: Service::Opa,
            kind: FaultKind::Stop,
        };
        let mut j = Journal::new("4.1-opa", "OPA stopped -> opa breaker OPEN", "reference (intended)");
        j.events = vec![
            at(
                100,
                "USA status healthy",
                EventKind::HealthChanged {
                    instance: "USA".into(),
                    from: None,
                    to: Overall::Healthy,
                },
            ),
            breaker(100, None, BreakerState::Closed),
            at(150, "preflight", EventKind::Preflight { instance: "USA".into() }),
            at(1_200, "fault applied", EventKind::FaultApplied { fault: opa.clone() }),
            breaker(1_800, Some(BreakerState::Closed), BreakerState::Open),
            at(
                2_500,
                "alert",
                EventKind::AlertChanged {
                    alert: "CircuitBreakerOpen{service=opa}".into(),
                    from: None,
                    to: AlertState::Firing,
                },
            ),
            at(
                4_000,
                "restored",
                EventKind::FaultRestored {
                    fault: opa,
                    restore_ms: 300,
                },
            ),
            breaker(5_000, Some(BreakerState::Open), BreakerState::HalfOpen),
            breaker(5_400, Some(BreakerState::HalfOpen), BreakerState::Closed),
            at(
                5_500,
                "postcheck",
                EventKind::Postcheck {
                    instance: "USA".into(),
                    settled: true,
                },
            ),
        ];
        j.measurements = vec![Measurement {
            what: "USA opa breaker OPEN".into(),
            measured_ms: 600,
            at_ms: 1_800,
            budget_label: Some("4.1-opa".into()),
            budget_ms: Some(3_000),
            within_budget: true,
        }];
        j.findings = vec![Finding::note("health API at /api/health <moved> & renamed").defect(Defect::D9)];
        j.verdict = Outcome::Pass;
        j
    }

    fn attr<'a>(n: &roxmltree::Node<'a, '_>, name: &str) -> &'a str {
        n.attribute(name).unwrap_or_default()
    }

    fn ms_attr(n: &roxmltree::Node, name: &str) -> u64 {
        attr(n, name)
            .parse()
            .unwrap_or_else(|_| panic!("{name} is a number of ms"))
    }

    #[test]
    fn a_rendered_timeline_carries_the_scenarios_events_and_budgets() {
        let j = opa_journal();
        let started = Instant::now();
        let svg = render(&j);
        let took = started.elapsed();
        assert!(took < Duration::from_millis(50), "rendering took {took:?}");
        let doc = roxmltree::Document::parse(&svg).expect("the timeline is well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(attr(&root, "data-requirement"), "4.1-opa");
        assert_eq!(attr(&root, "data-verdict"), "pass");

        let class_is = |n: &roxmltree::Node, c: &str| attr(n, "class").split(' ').any(|x| x == c);
        let lane = |label: &str| {
            doc.descendants()
                .find(|n| class_is(n, "lane") && attr(n, "data-lane") == label)
                .unwrap_or_else(|| panic!("a lane `{label}`"))
        };
        let bands = |label: &str| -> Vec<(String, u64, u64)> {
            lane(label)
                .children()
                .filter(|n| class_is(n, "band"))
                .map(|n| {
                    (
                        attr(&n, "data-state").to_string(),
                        ms_attr(&n, "data-from-ms"),
                        ms_attr(&n, "data-to-ms"),
                    )
                })
                .collect()
        };
        let end = ms_attr(&root, "data-end-ms");
        assert_eq!(
            bands("USA opa breaker"),
            [
                ("CLOSED".to_string(), 100, 1_800),
                ("OPEN".to_string(), 1_800, 5_000),
                ("HALF_OPEN".to_string(), 5_000, 5_400),
                ("CLOSED".to_string(), 5_400, end),
            ]
        );
        assert_eq!(bands("USA health"), [("healthy".to_string(), 100, end)]);
        assert_eq!(
            bands("alert CircuitBreakerOpen{service=opa}"),
            [("firing".to_string(), 2_500, end)]
        );
        // Every breaker gets a lane, even one that was never seen to change.
        assert!(bands("USA kas breaker").is_empty());

        let fault = doc
            .descendants()
            .find(|n| class_is(n, "fault"))
            .expect("a fault window");
        assert_eq!(attr(&fault, "data-fault"), "stop opa on USA");
        assert_eq!(
            (ms_attr(&fault, "data-from-ms"), ms_attr(&fault, "data-to-ms")),
            (1_200, 4_000)
        );

        let m = doc
            .descendants()
            .find(|n| class_is(n, "measurement"))
            .expect("a measurement marker");
        assert_eq!(ms_attr(&m, "data-measured-ms"), 600);
        assert_eq!(ms_attr(&m, "data-budget-ms"), 3_000);
        assert!(m.children().any(|n| class_is(&n, "measured")));
        assert!(m.children().any(|n| class_is(&n, "budget")));
        let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
        assert!(
            texts.contains(&"USA opa breaker OPEN 600 ms / budget 3.0 s"),
            "the measurement label: {texts:?}"
        );

        let steps: Vec<(&str, u64)> = doc
            .descendants()
            .filter(|n| class_is(n, "step"))
            .map(|n| (attr(&n, "data-kind"), ms_attr(&n, "data-t-ms")))
            .collect();
        assert_eq!(
            steps,
            [
                ("preflight", 150),
                ("fault_applied", 1_200),
                ("fault_restored", 4_000),
                ("postcheck", 5_500)
            ]
        );
        // Text from the journal is escaped, not injected as markup.
        assert!(
            texts
                .iter()
                .any(|t| t.contains("health API at /api/health <moved> & renamed")),
            "{texts:?}"
        );
        assert!(
            end >= 5_500 && texts.contains(&"5.0 s"),
            "axis in seconds up to the last event: {texts:?}"
        );
    }

    #[test]
    fn a_fault_never_restored_shades_to_the_end() {
        let mut j = opa_journal();
        j.events.retain(|e| !matches!(e.kind, EventKind::FaultRestored { .. }));
        j.verdict = Outcome::Fail;
        let svg = render(&j);
        let doc = roxmltree::Document::parse(&svg).expect("well-formed");
        let root = doc.root_element();
        assert_eq!(attr(&root, "data-verdict"), "FAIL");
        let fault = doc
            .descendants()
            .find(|n| n.attribute("class") == Some("fault"))
            .expect("a fault window");
        assert_eq!(ms_attr(&fault, "data-to-ms"), ms_attr(&root, "data-end-ms"));
    }

    #[test]
    fn ticks_stay_about_a_dozen() {
        assert_eq!(tick_step_ms(5_700), 500);
        assert_eq!(tick_step_ms(90_000), 10_000);
        assert_eq!(tick_step_ms(1_500_000), 120_000);
    }
}
