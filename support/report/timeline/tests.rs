//! The timeline, drawn and read back: every event, band, window, measurement and finding is in
//! the picture where the journal says.

use super::parts::tick_step_ms;
use super::*;
use crate::vocab::fault::{FaultKind, FaultSpec, Service};
use crate::vocab::finding::{Defect, Finding};
use crate::vocab::health::Breaker;
use crate::vocab::journal::{Event, EventKind, Measurement, Outcome};

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
    let svg = render(&j);
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

/// 4.5-opa as a run journals it: the opa journal, with a stream of load from 0.5 s whose
/// second window is slow and half fallback.
fn load_journal() -> Journal {
    use crate::vocab::load::{Class, Counts, Lag, Latency, LoadReport, PhaseMark, Route, Summary, Window};
    use std::time::Duration;
    let latency = |p50, p99, max| Latency {
        count: 10,
        p50: Duration::from_millis(p50),
        p90: Duration::from_millis(p99),
        p99: Duration::from_millis(p99),
        p999: Duration::from_millis(max),
        max: Duration::from_millis(max),
    };
    let counts = |decided: u64, fallback: u64| {
        let mut c = Counts::default();
        (0..decided).for_each(|_| c.add(Class::Decided));
        (0..fallback).for_each(|_| c.add(Class::Fallback));
        c
    };
    let window = |s: u64, l: Latency, o: Counts| Window {
        start: Duration::from_secs(s),
        requests: o.total(),
        latency: l,
        outcomes: o,
    };
    let summary = Summary {
        phase: "baseline".into(),
        requests: 10,
        latency: latency(4, 9, 9),
        ok: latency(4, 9, 9),
        outcomes: counts(10, 0),
    };
    let mut j = opa_journal();
    j.load = vec![LoadReport {
        stream: "affected".into(),
        route: Route::Resource,
        rate: 10.0,
        start_ms: 500,
        marks: vec![
            PhaseMark {
                phase: "baseline".into(),
                at_ms: 500,
            },
            PhaseMark {
                phase: "fault".into(),
                at_ms: 1_200,
            },
        ],
        phases: vec![summary.clone()],
        overall: summary,
        windows: vec![
            window(0, latency(4, 9, 9), counts(10, 0)),
            window(1, latency(900, 1_000, 1_020), counts(5, 5)),
            window(2, latency(3, 8, 8), counts(0, 10)),
        ],
        lag: Lag {
            steps: 30,
            p50: Duration::from_micros(60),
            p99: Duration::from_micros(300),
            max: Duration::from_micros(900),
            late: 0,
            first_late: None,
        },
    }];
    j
}

#[test]
fn load_lanes_show_latency_and_outcomes_inside_the_fault_window() {
    let svg = render(&load_journal());
    let doc = roxmltree::Document::parse(&svg).expect("well-formed");
    let class_is = |n: &roxmltree::Node, c: &str| attr(n, "class").split(' ').any(|x| x == c);
    let lane = |label: &str| {
        doc.descendants()
            .find(|n| class_is(n, "lane") && attr(n, "data-lane") == label)
            .unwrap_or_else(|| panic!("a lane `{label}`"))
    };
    let latency = lane("affected latency");
    assert_eq!(attr(&latency, "data-route"), "GET /api/resources/:id");
    assert_eq!(
        ms_attr(&latency, "data-ceiling-ms"),
        10_000,
        "a power of ten over the slowest"
    );
    let windows: Vec<(u64, u64)> = latency
        .children()
        .filter(|n| class_is(n, "window"))
        .map(|n| (ms_attr(&n, "data-t-ms"), ms_attr(&n, "data-p99-us")))
        .collect();
    assert_eq!(windows, [(500, 9_000), (1_500, 1_000_000), (2_500, 8_000)]);
    for line in ["p50", "p99", "max"] {
        assert!(latency.children().any(|n| class_is(&n, line)), "a {line} line");
    }
    let phases: Vec<(&str, u64)> = latency
        .descendants()
        .filter(|n| class_is(n, "phase"))
        .map(|n| (attr(&n, "data-phase"), ms_attr(&n, "data-t-ms")))
        .collect();
    assert_eq!(phases, [("baseline", 500), ("fault", 1_200)]);
    let outcomes: Vec<(u64, &str, u64)> = lane("affected outcomes")
        .children()
        .filter(|n| class_is(n, "outcome"))
        .map(|n| {
            (
                ms_attr(&n, "data-t-ms"),
                attr(&n, "data-class"),
                ms_attr(&n, "data-count"),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (500, "decided", 10),
            (1_500, "decided", 5),
            (1_500, "fallback", 5),
            (2_500, "fallback", 10)
        ]
    );
    // The fault's shade covers the load lanes; the steps row sits under them.
    let fault = doc
        .descendants()
        .find(|n| class_is(n, "fault"))
        .expect("a fault window");
    let shade = fault.children().find(|n| n.has_tag_name("rect")).expect("its shade");
    let bottom = attr(&shade, "y").parse::<f64>().unwrap_or_default()
        + attr(&shade, "height").parse::<f64>().unwrap_or_default();
    let outcome_lane_bottom = lane("affected outcomes")
        .children()
        .find(|n| n.has_tag_name("rect"))
        .map(|r| attr(&r, "y").parse::<f64>().unwrap_or_default() + LANE_H)
        .expect("the lane's frame");
    assert!(bottom > outcome_lane_bottom, "{bottom} over {outcome_lane_bottom}");
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    assert!(
        texts.contains(&"timed out") && texts.contains(&"p99"),
        "the load legend"
    );
}

#[test]
fn many_instances_that_never_changed_share_one_lane() {
    let mut j = Journal::new("5.1-isolate", "one spoke down", "reference (intended)");
    let codes = ["USA", "ALB", "BEL", "BGR", "CAN", "HRV"];
    for code in codes {
        j.events.push(at(
            100,
            "status",
            EventKind::HealthChanged {
                instance: code.into(),
                from: None,
                to: Overall::Healthy,
            },
        ));
        for b in Breaker::ALL {
            j.events.push(at(
                100,
                "breaker",
                EventKind::BreakerChanged {
                    instance: code.into(),
                    breaker: b,
                    from: None,
                    to: BreakerState::Closed,
                },
            ));
        }
    }
    // ALB's OPA breaker opens: ALB keeps its own lanes.
    j.events.push(at(
        900,
        "breaker",
        EventKind::BreakerChanged {
            instance: "ALB".into(),
            breaker: Breaker::Opa,
            from: Some(BreakerState::Closed),
            to: BreakerState::Open,
        },
    ));
    let labels: Vec<String> = lanes::lanes(&j).into_iter().map(|l| l.label).collect();
    assert_eq!(labels[0], "5 instances");
    assert_eq!(labels.len(), 1 + 1 + Breaker::ALL.len());
    assert!(labels[1..].iter().all(|l| l.starts_with("ALB ")), "{labels:?}");
    let svg = render(&j);
    assert!(svg.contains("unchanged: healthy, every breaker CLOSED (USA BEL BGR CAN HRV)"));

    // Four instances or fewer are drawn in full.
    j.events.retain(|e| match &e.kind {
        EventKind::HealthChanged { instance, .. } | EventKind::BreakerChanged { instance, .. } => {
            ["USA", "ALB", "BEL", "BGR"].contains(&instance.as_str())
        }
        _ => true,
    });
    assert_eq!(lanes::lanes(&j).len(), 4 * (1 + Breaker::ALL.len()));
}
