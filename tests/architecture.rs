//! The harness's layers, kept by a test: every file of `support/` imports only from its own layer
//! and the layers below it, and no files import each other in a circle. The imports are read from
//! the source (`use` trees and `crate::`/`super::` paths), so this needs no tool beyond the crate.
//! `docs/architecture.md` explains the layers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first, and which layers each may import (its own included).
const MAY_IMPORT: &[(&str, &[&str])] = &[
    ("vocab", &["vocab"]),
    ("infra", &["vocab", "infra"]),
    ("fault", &["vocab", "infra", "fault"]),
    ("deployment", &["vocab", "infra", "fault", "deployment"]),
    ("report", &["vocab", "infra", "report"]),
    ("reference", &["vocab", "infra", "fault", "deployment", "reference"]),
    (
        "scenario",
        &[
            "vocab",
            "infra",
            "fault",
            "deployment",
            "report",
            "reference",
            "scenario",
        ],
    ),
];

/// The one file above both the deployment layer and the reference deployment: it picks the target.
const REFERENCE_CHOOSER: &str = "scenario/start.rs";

fn support() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("support")
}

/// Every `.rs` file under `support/`, by its path relative to it.
fn files(dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            let rel = path.strip_prefix(support()).expect("under support/");
            out.push(rel.display().to_string());
        }
    }
}

/// The module path of a file: `scenario/mod.rs` -> [scenario], `vocab/slo.rs` -> [vocab, slo].
fn module_of(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file.trim_end_matches(".rs").split('/').map(String::from).collect();
    if matches!(parts.last().map(String::as_str), Some("mod") | Some("lib")) {
        parts.pop();
    }
    parts
}

/// The file that holds module `path`, or the deepest module of it that is a file.
fn file_of(path: &[String], known: &BTreeSet<String>) -> Option<String> {
    (1..=path.len()).rev().find_map(|n| {
        let stem = path[..n].join("/");
        [format!("{stem}.rs"), format!("{stem}/mod.rs")]
            .into_iter()
            .find(|f| known.contains(f))
    })
}

/// Expands a `use` tree (`a::{b, c::{d, self}}`) into its paths.
fn expand(tree: &str) -> Vec<Vec<String>> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree);
        return vec![
            path.split("::")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        ];
    };
    let prefix: Vec<String> = tree[..open]
        .split("::")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let close = tree.rfind('}').filter(|c| *c > open).unwrap_or(tree.len());
    let inner = &tree[open + 1..close];
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    let mut out = Vec::new();
    for item in items.iter().filter(|i| !i.trim().is_empty()) {
        for rest in expand(item) {
            let rest: Vec<String> = rest.into_iter().filter(|s| s != "self").collect();
            out.push(prefix.iter().cloned().chain(rest).collect());
        }
    }
    out
}

/// The module paths a file's code refers to, absolute from the crate root.
fn references(file: &str, text: &str) -> Vec<Vec<String>> {
    let module = module_of(file);
    // In `x/mod.rs` (or lib.rs) `super` is x's parent; in `x/y.rs` it is x.
    let is_dir_root = file.ends_with("mod.rs") || file == "lib.rs";
    let parent: Vec<String> = if is_dir_root || module.is_empty() {
        module[..module.len().saturating_sub(1)].to_vec()
    } else {
        module[..module.len() - 1].to_vec()
    };
    let here: Vec<String> = if is_dir_root { module.clone() } else { parent.clone() };
    // Unit tests (`#[cfg(test)] mod tests`, at the end of a file) do not count: their `super` is
    // the file itself.
    let text = text.split("#[cfg(test)]").next().unwrap_or(text);
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let children: BTreeSet<String> = code
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            l.strip_prefix("mod ")?.strip_suffix(';').map(str::to_string)
        })
        .collect();
    let absolute = |path: Vec<String>| -> Option<Vec<String>> {
        let first = path.first()?.as_str();
        match first {
            "crate" => Some(path[1..].to_vec()),
            "super" => Some(parent.iter().cloned().chain(path[1..].iter().cloned()).collect()),
            "self" => Some(here.iter().cloned().chain(path[1..].iter().cloned()).collect()),
            child if children.contains(child) => Some(here.iter().cloned().chain(path).collect()),
            _ => None,
        }
    };
    let mut out = Vec::new();
    // `use` statements (each starts a line), expanded.
    let lines: Vec<&str> = code.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_start();
        let line = ["pub use ", "pub(crate) use ", "use "]
            .iter()
            .find_map(|p| line.strip_prefix(p));
        let Some(first) = line else {
            i += 1;
            continue;
        };
        let mut statement = first.to_string();
        while !statement.contains(';') && i + 1 < lines.len() {
            i += 1;
            statement.push_str(lines[i].trim());
        }
        let tree = statement.split(';').next().unwrap_or_default();
        out.extend(expand(tree).into_iter().filter_map(absolute));
        i += 1;
    }
    // Paths written inline: `crate::a::b::c`, `super::x::y`.
    for anchor in ["crate::", "super::"] {
        let mut rest = code.as_str();
        while let Some(at) = rest.find(anchor) {
            let tail = &rest[at..];
            let len = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            let path: Vec<String> = tail[..len]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            out.extend(absolute(path));
            rest = &rest[at + anchor.len()..];
        }
    }
    out
}

/// File -> the files it imports.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut all = Vec::new();
    files(&support(), &mut all);
    let known: BTreeSet<String> = all.iter().cloned().collect();
    let mut graph = BTreeMap::new();
    for file in &all {
        let text = std::fs::read_to_string(support().join(file)).expect("readable source");
        let imports: BTreeSet<String> = references(file, &text)
            .iter()
            .filter_map(|p| file_of(p, &known))
            .filter(|f| f != file)
            .collect();
        graph.insert(file.clone(), imports);
    }
    graph
}

fn layer(file: &str) -> &str {
    file.split('/').next().unwrap_or(file)
}

#[test]
fn every_file_imports_only_its_own_layer_and_those_below() {
    let mut wrong = Vec::new();
    for (file, imports) in graph() {
        let Some((_, allowed)) = MAY_IMPORT.iter().find(|(l, _)| *l == layer(&file)) else {
            continue;
        };
        for import in imports {
            let up = !allowed.contains(&layer(&import));
            let reference = layer(&import) == "reference" && layer(&file) == "scenario" && file != REFERENCE_CHOOSER;
            if up || reference {
                wrong.push(format!("{file} -> {import}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layers:\n{}", wrong.join("\n"));
}

#[test]
fn no_files_import_each_other_in_a_circle() {
    let graph = graph();
    // A file is in a circle when it can reach itself.
    let mut circles = BTreeSet::new();
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = graph[start].iter().collect();
        while let Some(next) = todo.pop() {
            if next == start {
                circles.insert(start.clone());
                break;
            }
            if seen.insert(next.clone()) {
                todo.extend(graph.get(next).into_iter().flatten());
            }
        }
    }
    assert!(circles.is_empty(), "files in an import circle: {circles:?}");
}

#[test]
fn the_reader_of_imports_sees_what_a_file_imports() {
    let text = "use crate::vocab::{fault::{FaultKind, Service}, slo};\nuse super::ports::Lease;\nfn f() { crate::infra::poll::secs(); }\n";
    let refs = references("reference/monitoring.rs", text);
    let has = |p: &[&str]| {
        refs.iter()
            .any(|r| r == &p.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    };
    assert!(
        has(&["vocab", "fault", "FaultKind"]) && has(&["vocab", "slo"]),
        "{refs:?}"
    );
    assert!(has(&["reference", "ports", "Lease"]), "{refs:?}");
    assert!(has(&["infra", "poll", "secs"]), "{refs:?}");
}

#[test]
#[ignore = "prints the import graph, for reading"]
fn print_the_import_graph() {
    for (file, imports) in graph() {
        println!("{file} -> {}", imports.into_iter().collect::<Vec<_>>().join(", "));
    }
}
