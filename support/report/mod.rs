//! The report layer: what happens when a scenario finishes (journal and timeline written into the
//! run folder) and when the test binary ends (the summary table). libtest has no end-of-run hook,
//! so the first finished scenario registers a `libc::atexit` handler that prints this process's
//! rows to stderr and regenerates `summary.md` from every journal in the run folder; under
//! nextest each test is a process of its own, and the Markdown then accumulates the whole run.

pub mod files;
pub mod timeline;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use crate::vocab::finding::Severity;
use crate::vocab::journal::{Journal, Measurement, Outcome};
use crate::vocab::load::millis;
use crate::vocab::units::secs;
use files::{read_journal, write_journal};

/// One line of the summary: a measurement of a scenario, or the scenario alone when it measured
/// nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub requirement: String,
    pub target: String,
    pub measured: String,
    pub budget: String,
    pub verdict: Outcome,
    pub finding: String,
}

/// The summary rows of one journal. The findings that failed the scenario go on its first row.
pub fn rows(j: &Journal) -> Vec<Row> {
    let failing: Vec<String> = j
        .findings
        .iter()
        .filter(|f| f.severity != Severity::Note)
        .map(|f| f.to_string())
        .collect();
    let row = |measured: String, budget: String, finding: String| Row {
        requirement: j.requirement.clone(),
        target: j.target.clone(),
        measured,
        budget,
        verdict: j.verdict,
        finding,
    };
    let ms = |v: u64| secs(Duration::from_millis(v));
    let mut out: Vec<Row> = Vec::new();
    for group in per_instance(&j.measurements) {
        let over = if group.iter().all(|m| m.within_budget) {
            ""
        } else {
            " OVER"
        };
        let budget = group[0].budget_ms.map_or("-".to_string(), ms);
        let measured = match group.as_slice() {
            [m] => format!("{} {}{over}", m.what, ms(m.measured_ms)),
            many => {
                // One row for the same measurement on many instances: how many, the median and
                // the slowest, by name.
                let mut sorted: Vec<&Measurement> = many.to_vec();
                sorted.sort_by_key(|m| m.measured_ms);
                let (median, slowest) = (sorted[sorted.len() / 2], sorted[sorted.len() - 1]);
                let rest = slowest.what.split_once(' ').map_or("", |(_, rest)| rest);
                format!(
                    "{} instances: {rest}: median {}, slowest {} {}{over}",
                    many.len(),
                    ms(median.measured_ms),
                    instance_of(&slowest.what).unwrap_or("?"),
                    ms(slowest.measured_ms)
                )
            }
        };
        out.push(row(measured, budget, String::new()));
    }
    if out.is_empty() {
        out.push(row("-".to_string(), "-".to_string(), String::new()));
    }
    out[0].finding = failing.join("; ");
    out
}

/// Above this many instances, the same measurement on each is summarised in one row.
const GROUP_ABOVE: usize = 4;

/// The instance code a measurement starts with (`FRA rejects the revoked token`), if any.
fn instance_of(what: &str) -> Option<&str> {
    let first = what.split(' ').next()?;
    (first.len() == 3 && first.chars().all(|c| c.is_ascii_uppercase())).then_some(first)
}

/// The measurements in their order, those that say the same of more than [`GROUP_ABOVE`]
/// instances (the same words after the instance code, the same budget) gathered into one group
/// where the first of them stood.
fn per_instance(measurements: &[Measurement]) -> Vec<Vec<&Measurement>> {
    let key = |m: &Measurement| instance_of(&m.what).map(|code| (m.what[code.len()..].to_string(), m.budget_ms));
    let count = |k: &(String, Option<u64>)| measurements.iter().filter(|m| key(m).as_ref() == Some(k)).count();
    let mut groups: Vec<Vec<&Measurement>> = Vec::new();
    let mut gathered: Vec<(String, Option<u64>)> = Vec::new();
    for m in measurements {
        match key(m).filter(|k| count(k) > GROUP_ABOVE) {
            Some(k) if gathered.contains(&k) => {}
            Some(k) => {
                groups.push(measurements.iter().filter(|o| key(o).as_ref() == Some(&k)).collect());
                gathered.push(k);
            }
            None => groups.push(vec![m]),
        }
    }
    groups
}

const HEADER: [&str; 6] = ["requirement", "target", "measured", "budget", "verdict", "finding"];

const LOAD_HEADER: [&str; 10] = [
    "requirement",
    "stream",
    "phase",
    "requests",
    "p50",
    "p90",
    "p99",
    "p99.9",
    "max",
    "outcomes",
];

/// The HDR summary of every phase of every stream of load in a journal (phase 4.5), one row each.
pub fn load_rows(j: &Journal) -> Vec<[String; 10]> {
    let mut out = Vec::new();
    for report in &j.load {
        for phase in &report.phases {
            let l = &phase.latency;
            out.push([
                j.requirement.clone(),
                format!("{} {}", report.stream, report.route),
                phase.phase.clone(),
                phase.requests.to_string(),
                millis(l.p50),
                millis(l.p90),
                millis(l.p99),
                millis(l.p999),
                millis(l.max),
                phase.outcomes.to_string(),
            ]);
        }
    }
    out
}

/// The load rows as a table: aligned for a terminal, or Markdown.
pub fn load_table(rows: &[[String; 10]], markdown: bool) -> String {
    if markdown {
        let md = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let mut out = format!(
            "| {} |\n|{}\n",
            LOAD_HEADER.join(" | "),
            "---|".repeat(LOAD_HEADER.len())
        );
        for r in rows {
            let cells: Vec<String> = r.iter().map(|c| md(c)).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        return out;
    }
    let table: Vec<[String; 10]> = std::iter::once(LOAD_HEADER.map(str::to_string))
        .chain(rows.iter().cloned())
        .collect();
    let mut widths = [0usize; 10];
    for r in &table {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &table {
        let line: Vec<String> = r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn cells(r: &Row) -> [String; 6] {
    [
        r.requirement.clone(),
        r.target.clone(),
        r.measured.clone(),
        r.budget.clone(),
        r.verdict.to_string(),
        r.finding.clone(),
    ]
}

/// The table for a terminal: aligned columns, long cells cut so a row stays on one line.
pub fn text_table(rows: &[Row]) -> String {
    const MAX: [usize; 6] = [14, 54, 48, 9, 12, 90];
    let cut = |s: &str, max: usize| -> String {
        if s.chars().count() > max {
            s.chars().take(max - 3).chain("...".chars()).collect()
        } else {
            s.to_string()
        }
    };
    let table: Vec<[String; 6]> = std::iter::once(HEADER.map(str::to_string))
        .chain(rows.iter().map(cells))
        .map(|r| {
            let mut i = 0;
            r.map(|c| {
                let c = cut(&c, MAX[i]);
                i += 1;
                c
            })
        })
        .collect();
    let mut widths = [0usize; 6];
    for r in &table {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (n, r) in table.iter().enumerate() {
        let line: Vec<String> = r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if n == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&rule.join("  "));
            out.push('\n');
        }
    }
    out
}

/// The same table as Markdown, cells in full.
pub fn markdown_table(rows: &[Row]) -> String {
    let md = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = format!("| {} |\n|{}\n", HEADER.join(" | "), "---|".repeat(HEADER.len()));
    for r in rows {
        let line: Vec<String> = cells(r).iter().map(|c| md(c)).collect();
        out.push_str(&format!("| {} |\n", line.join(" | ")));
    }
    out
}

/// The findings table of the README: for each run of DIVE as shipped, one row per scenario
/// journal: requirement, profile, verdict, the defects its findings name, the first failing
/// finding, and the measured values against their budgets.
pub fn findings_table(runs: &[(&str, PathBuf)]) -> Result<String, String> {
    let mut out =
        String::from("| requirement | profile | verdict | defects | finding | measured |\n|---|---|---|---|---|---|\n");
    let mut rows = Vec::new();
    for (profile, dir) in runs {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}; run scripts/findings", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        for path in paths {
            let j = read_journal(&path)?;
            let mut defects: Vec<String> = j
                .findings
                .iter()
                .filter_map(|f| f.defect)
                .map(|d| d.to_string())
                .collect();
            defects.sort();
            defects.dedup();
            let finding = j
                .findings
                .iter()
                .find(|f| f.severity != Severity::Note)
                .or(j.findings.first());
            let finding = finding.map_or(String::new(), |f| clip(&f.message, 160));
            let measured: Vec<String> = j
                .measurements
                .iter()
                .map(|m| {
                    let value = secs(Duration::from_millis(m.measured_ms));
                    match m.budget_ms {
                        Some(b) => format!("{} {value} (budget {})", m.what, secs(Duration::from_millis(b))),
                        None => format!("{} {value}", m.what),
                    }
                })
                .collect();
            rows.push([
                j.requirement.clone(),
                profile.to_string(),
                j.verdict.to_string(),
                defects.join(", "),
                finding,
                measured.join("; "),
            ]);
        }
    }
    rows.sort_by(|a, b| (&a[0], &a[1]).cmp(&(&b[0], &b[1])));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|").replace('\n', " ")).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    Ok(out)
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max - 3).collect();
    format!("{cut}...")
}

/// `summary.md` of a run folder, from every journal in it (oldest first). Journals that do not
/// parse are listed as such rather than dropped.
pub fn summary_markdown(dir: &Path) -> String {
    let (journals, unreadable) = run_journals(dir);
    let rows: Vec<Row> = journals.iter().flat_map(|(_, j)| rows(j)).collect();
    let run = dir
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let mut out = format!("# DIVE resilience run {run}\n\n{}", markdown_table(&rows));
    let load: Vec<[String; 10]> = journals.iter().flat_map(|(_, j)| load_rows(j)).collect();
    if !load.is_empty() {
        out.push_str("\n## Load under failure: latency per phase (HDR histograms)\n\n");
        out.push_str(&load_table(&load, true));
    }
    out.push_str("\n## Journals and timelines\n\n");
    for (p, j) in &journals {
        let name = p
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let svg = p.with_extension("svg");
        let svg_name = svg
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        out.push_str(&format!(
            "- {} ({}): [journal]({name}), [timeline]({svg_name})\n",
            j.requirement, j.verdict
        ));
    }
    for e in unreadable {
        out.push_str(&format!("- unreadable journal: {e}\n"));
    }
    out
}

/// Writes `content` to `path` through a temporary file, so that concurrent test processes never
/// leave a half-written file.
fn write_atomically(path: &Path, content: &str) -> Result<(), String> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, content).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

struct Registry {
    dir: Option<PathBuf>,
    rows: Vec<Row>,
    load: Vec<[String; 10]>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    dir: None,
    rows: Vec::new(),
    load: Vec::new(),
});
static AT_EXIT: Once = Once::new();

/// Writes the journal and its timeline into `dir` and keeps the scenario's rows for the summary
/// printed when the test binary ends.
pub fn scenario_finished(j: &Journal, dir: &Path) {
    match write_journal(j, dir) {
        Ok(path) => {
            let started = Instant::now();
            let svg = path.with_extension("svg");
            match std::fs::write(&svg, timeline::render(j)) {
                Ok(()) => eprintln!(
                    "journal: {}\ntimeline: {} (rendered in {})",
                    path.display(),
                    svg.display(),
                    secs(started.elapsed())
                ),
                Err(e) => eprintln!(
                    "journal: {}\ntimeline not written: {}: {e}",
                    path.display(),
                    svg.display()
                ),
            }
        }
        Err(e) => eprintln!("journal not written: {e}"),
    }
    let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    registry.dir = Some(dir.to_path_buf());
    registry.rows.extend(rows(j));
    registry.load.extend(load_rows(j));
    drop(registry);
    AT_EXIT.call_once(|| {
        // SAFETY: `at_exit` is a plain `extern "C" fn` with no arguments, as atexit requires.
        let registered = unsafe { libc::atexit(at_exit) };
        if registered != 0 {
            eprintln!("summary: could not register the end-of-run hook; no summary table for this process");
        }
    });
}

extern "C" fn at_exit() {
    // A panic must not unwind out of an `extern "C"` function.
    let _ = std::panic::catch_unwind(print_summary);
}

/// Every journal of a run folder, oldest first, and a line for each that does not parse.
fn run_journals(dir: &Path) -> (Vec<(PathBuf, Journal)>, Vec<String>) {
    let mut journals = Vec::new();
    let mut unreadable = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.retain(|p| p.extension().is_some_and(|x| x == "json"));
    paths.sort();
    for p in paths {
        match read_journal(&p) {
            Ok(j) => journals.push((p, j)),
            Err(e) => unreadable.push(e),
        }
    }
    journals.sort_by_key(|(_, j)| j.started_unix_ms);
    (journals, unreadable)
}

/// `index.html` of a run folder: the one file a person opens. Each scenario with its verdict and
/// findings, its timeline drawn in place, and links to its journal and to `summary.md`.
pub fn index_html(dir: &Path) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let (journals, unreadable) = run_journals(dir);
    let run = dir
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let mut out = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>DIVE resilience run {run}</title></head>\n<body style=\"font-family: sans-serif\">\n<h1>DIVE resilience run {run}</h1>\n<p><a href=\"summary.md\">summary.md</a>: every measurement against its budget.</p>\n",
        run = esc(&run)
    );
    for (p, j) in &journals {
        let file = |ext: &str| {
            p.with_extension(ext)
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned())
        };
        out.push_str(&format!(
            "<h2>{} on {}: {}</h2>\n<ul>\n",
            esc(&j.requirement),
            esc(&j.target),
            j.verdict
        ));
        for f in &j.findings {
            out.push_str(&format!("<li>{}</li>\n", esc(&f.to_string())));
        }
        out.push_str(&format!(
            "</ul>\n<p><a href=\"{json}\">journal</a></p>\n<img src=\"{svg}\" alt=\"timeline of {req}\" style=\"max-width: 100%\">\n",
            json = file("json"),
            svg = file("svg"),
            req = esc(&j.requirement)
        ));
    }
    for e in unreadable {
        out.push_str(&format!("<p>unreadable journal: {}</p>\n", esc(&e)));
    }
    out.push_str("</body></html>\n");
    out
}

/// Prints this process's rows and regenerates the run folder's `summary.md` and `index.html`.
fn print_summary() {
    let registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(dir) = registry.dir.clone() else {
        return;
    };
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "\nresilience summary ({} scenario rows)\n{}",
        registry.rows.len(),
        text_table(&registry.rows)
    );
    if !registry.load.is_empty() {
        let _ = writeln!(
            err,
            "load under failure: latency per phase (HDR histograms)\n{}",
            load_table(&registry.load, false)
        );
    }
    let summary = dir.join("summary.md");
    match write_atomically(&summary, &summary_markdown(&dir)) {
        Ok(()) => {
            let _ = writeln!(err, "summary: {}", summary.display());
        }
        Err(e) => {
            let _ = writeln!(err, "summary not written: {e}");
        }
    }
    let index = dir.join("index.html");
    match write_atomically(&index, &index_html(&dir)) {
        Ok(()) => {
            let _ = writeln!(err, "report: {}", index.display());
        }
        Err(e) => {
            let _ = writeln!(err, "report not written: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::finding::{Defect, Finding};

    fn journal(requirement: &str, verdict: Outcome) -> Journal {
        let mut j = Journal::new(requirement, "text", "reference (intended)");
        j.verdict = verdict;
        j
    }

    #[test]
    fn the_same_measurement_on_many_instances_is_one_row() {
        let mut j = journal("5.1-revoke", Outcome::Pass);
        let budget = Some(("5.1-revoke", Duration::from_millis(500)));
        j.measurement("USA rejects the revoked token", Duration::from_millis(5), budget);
        for (code, ms) in [("ALB", 9), ("BEL", 20), ("BGR", 7), ("CAN", 11), ("HRV", 8)] {
            j.measurement(
                &format!("{code} rejects the revoked token"),
                Duration::from_millis(ms),
                budget,
            );
        }
        j.measurement("hub lists ALB as unhealthy", Duration::from_millis(700), None);
        let measured: Vec<String> = rows(&j).into_iter().map(|r| r.measured).collect();
        assert_eq!(
            measured,
            [
                "6 instances: rejects the revoked token: median 9 ms, slowest BEL 20 ms",
                "hub lists ALB as unhealthy 700 ms",
            ]
        );
        // Four or fewer keep a row each.
        j.measurements.truncate(4);
        assert_eq!(rows(&j).len(), 4);
    }

    #[test]
    fn one_row_per_measurement_with_the_failing_findings_on_the_first() {
        let mut j = journal("4.1-kc", Outcome::Fail);
        j.measurement(
            "USA keycloak breaker OPEN",
            Duration::from_millis(2_400),
            Some(("4.1-kc", Duration::from_secs(2))),
        );
        j.measurement("USA status degraded", Duration::from_millis(300), None);
        j.findings = vec![
            Finding::note("an aside"),
            Finding::fail("status stayed healthy").defect(Defect::D6),
        ];
        let rows = rows(&j);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].measured, "USA keycloak breaker OPEN 2.4 s OVER");
        assert_eq!(rows[0].budget, "2.0 s");
        assert!(rows[0].finding.starts_with("FAIL [D6: "), "{}", rows[0].finding);
        assert_eq!((rows[1].budget.as_str(), rows[1].finding.as_str()), ("-", ""));
        let text = text_table(&rows);
        assert!(text.starts_with("requirement"), "{text}");
        assert!(text.lines().nth(2).is_some_and(|l| l.contains("FAIL")), "{text}");
    }

    #[test]
    fn summary_markdown_accumulates_every_journal_of_the_run() {
        let dir = std::env::temp_dir().join(format!("dive-report-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut a = journal("4.1-opa", Outcome::Pass);
        a.measurement(
            "opa | OPEN",
            Duration::from_millis(600),
            Some(("4.1-opa", Duration::from_secs(3))),
        );
        let b = journal("4.1-redis", Outcome::Precondition);
        write_journal(&a, &dir).expect("written");
        write_journal(&b, &dir).expect("written");
        std::fs::write(dir.join("broken.json"), "{").expect("written");
        let md = summary_markdown(&dir);
        let html = index_html(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(html.contains(r#"<img src="4.1-opa-1.svg""#), "{html}");
        assert!(html.contains(r#"<a href="summary.md">"#), "{html}");
        assert!(html.contains("unreadable journal"), "{html}");
        assert!(
            md.contains("| requirement | target | measured | budget | verdict | finding |"),
            "{md}"
        );
        assert!(
            md.contains("| 4.1-opa | reference (intended) | opa \\| OPEN 600 ms | 3.0 s | pass |"),
            "{md}"
        );
        assert!(
            md.contains("| 4.1-redis | reference (intended) | - | - | PRECONDITION |"),
            "{md}"
        );
        assert!(md.contains("[timeline](4.1-opa-1.svg)"), "{md}");
        assert!(md.contains("unreadable journal"), "{md}");
        assert!(!md.contains("Load under failure"), "no load, no load table: {md}");
    }

    #[test]
    fn the_hdr_summary_of_each_phase_of_load_is_a_row() {
        use crate::vocab::load::{Class, Counts, Lag, Latency, LoadReport, Route, Summary};
        let ms = Duration::from_millis;
        let latency = Latency {
            count: 120,
            p50: ms(4),
            p90: ms(7),
            p99: ms(12),
            p999: ms(15),
            max: ms(15),
        };
        let mut outcomes = Counts::default();
        (0..120).for_each(|_| outcomes.add(Class::Fallback));
        let phase = Summary {
            phase: "open".to_string(),
            requests: 120,
            latency,
            ok: latency,
            outcomes,
        };
        let mut j = journal("4.5-opa", Outcome::Pass);
        j.load.push(LoadReport {
            stream: "affected".to_string(),
            route: Route::Resource,
            rate: 12.0,
            start_ms: 0,
            marks: Vec::new(),
            phases: vec![phase.clone()],
            overall: phase,
            windows: Vec::new(),
            lag: Lag {
                steps: 120,
                p50: Duration::ZERO,
                p99: Duration::ZERO,
                max: Duration::ZERO,
                late: 0,
                first_late: None,
            },
        });
        let rows = load_rows(&j);
        assert_eq!(
            rows,
            [[
                "4.5-opa",
                "affected GET /api/resources/:id",
                "open",
                "120",
                "4 ms",
                "7 ms",
                "12 ms",
                "15 ms",
                "15 ms",
                "120 fallback"
            ]
            .map(str::to_string)]
        );
        assert!(load_table(&rows, true).contains("| 4.5-opa | affected GET /api/resources/:id | open | 120 |"));
        assert!(load_table(&rows, false).starts_with("requirement  stream"));
        let dir = std::env::temp_dir().join(format!("dive-report-load-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write_journal(&j, &dir).expect("written");
        let md = summary_markdown(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            md.contains("## Load under failure: latency per phase (HDR histograms)"),
            "{md}"
        );
        assert!(md.contains("| 12 ms | 15 ms | 15 ms | 120 fallback |"), "{md}");
    }
}
