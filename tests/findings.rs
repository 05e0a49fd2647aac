//! The table of findings on DIVE as shipped is the output of `scripts/findings`: that
//! command runs every scenario against `dive-v15a` and `dive-head`, keeps their journals in
//! `docs/findings/`, and renders the table from them here. The check below fails when docs/requirements.md
//! and the rendering differ, so the table cannot be edited by hand or fall behind its journals.

use std::path::{Path, PathBuf};

use dive_resilience::report::findings_table;

const BEGIN: &str = "<!-- findings-table:begin (scripts/findings writes this table) -->\n";
const END: &str = "<!-- findings-table:end -->";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rendered() -> String {
    let runs: Vec<(&str, PathBuf)> = ["dive-v15a", "dive-head"]
        .iter()
        .map(|p| (*p, root().join("docs/findings").join(p)))
        .collect();
    findings_table(&runs).unwrap_or_else(|e| panic!("{e}"))
}

/// docs/requirements.md split around its findings table.
fn readme_parts() -> (String, String, String) {
    let readme = std::fs::read_to_string(root().join("docs/requirements.md")).expect("docs/requirements.md");
    let (head, rest) = readme
        .split_once(BEGIN)
        .expect("docs/requirements.md has the findings-table markers");
    let (table, tail) = rest.split_once(END).expect("the findings-table end marker");
    (head.to_string(), table.to_string(), tail.to_string())
}

#[test]
fn readme_findings_table_is_the_findings_command_output() {
    let (_, table, _) = readme_parts();
    assert!(
        table == rendered(),
        "the findings table of docs/requirements.md differs from what docs/findings renders: run scripts/findings"
    );
}

#[test]
#[ignore = "run by scripts/findings after the suite has run against dive-v15a and dive-head"]
fn render_findings_into_readme() {
    let (head, _, tail) = readme_parts();
    let readme = format!("{head}{BEGIN}{}{END}{tail}", rendered());
    std::fs::write(root().join("docs/requirements.md"), readme).expect("docs/requirements.md written");
}
