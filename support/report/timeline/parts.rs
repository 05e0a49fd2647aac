//! The parts of a timeline picture, each drawn into the SVG text in turn.

use std::fmt::Write as _;

use super::lanes::{FaultWindow, Lane};
use super::{
    AMBER, BUDGET, GREEN, GREY, INK, LABEL_ROW_H, LANE_GAP, LANE_H, LEFT, Layout, MEASURED, PALE_GREEN, PURPLE, RED,
    RIGHT, WIDTH, dur, esc,
};
use crate::vocab::journal::{EventKind, Journal, Outcome};

/// The title row: requirement, its text, the verdict and the target.
pub(super) fn title(s: &mut String, j: &Journal) {
    let verdict_colour = match j.verdict {
        Outcome::Pass => GREEN,
        Outcome::Running => GREY,
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
}

/// Grid and axis first, so that bands and markers draw over them.
pub(super) fn grid(s: &mut String, l: &Layout) {
    let Layout {
        end_ms,
        plot_w,
        lanes_top,
        axis_y,
        ..
    } = *l;
    let x = |t: u64| l.x(t);
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
}

/// One lane per watched thing, bands coloured by state.
pub(super) fn lane_bands(s: &mut String, l: &Layout, lanes: &[Lane]) {
    let Layout {
        end_ms,
        plot_w,
        lanes_top,
        ..
    } = *l;
    let x = |t: u64| l.x(t);
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
}

/// Fault windows, over the lanes: translucent, so the states stay readable inside them.
pub(super) fn fault_windows(s: &mut String, l: &Layout, windows: &[FaultWindow]) {
    let Layout {
        lanes_top,
        lanes_bottom,
        ..
    } = *l;
    let x = |t: u64| l.x(t);
    for (spec, from, to, restore_ms) in windows {
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
}

/// The scenario's steps (preflight, fault, restore, postcheck) as ticks with labels.
pub(super) fn steps(s: &mut String, l: &Layout, j: &Journal) {
    let x = |t: u64| l.x(t);
    let ev_y = l.steps_y;
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
}

/// Measurements: a solid line where the wait ended, a dashed line where its budget ends, each
/// labelled in its own row above the lanes.
pub(super) fn measurements(s: &mut String, l: &Layout, j: &Journal) {
    let Layout {
        title_h, lanes_bottom, ..
    } = *l;
    let x = |t: u64| l.x(t);
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
}

/// The legend of colours and lines.
pub(super) fn legend(s: &mut String, l: &Layout) {
    let Layout { legend_y, .. } = *l;
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
}

/// The findings, one line each, long ones cut (the whole text is in the tooltip).
pub(super) fn findings(s: &mut String, l: &Layout, findings: &[String]) {
    let Layout { legend_y, .. } = *l;
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
}

/// A tick step that gives at most about a dozen ticks.
pub(super) fn tick_step_ms(end_ms: u64) -> u64 {
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
