//! The runbook's shape: `## ` sections, each with numbered remediation steps. The 4.3-runbook
//! scenario holds the suite's runbook to the alert catalogue and the requirement table.

/// The `## ` sections of a runbook: heading, and how many remediation steps (numbered lines) it has.
pub fn runbook_sections(text: &str) -> Vec<(String, usize)> {
    let mut sections: Vec<(String, usize)> = Vec::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            sections.push((heading.trim().to_string(), 0));
        } else if let Some(last) = sections.last_mut() {
            let step = line
                .split_once(". ")
                .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
            if step {
                last.1 += 1;
            }
        }
    }
    sections
}

/// Where a rule's `runbook_url` leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunbookLink {
    /// A file of the DIVE checkout (a relative path, or a GitHub link into DIVE's repository),
    /// without its `#anchor`.
    InRepository(String),
    /// Somewhere else on the web: it cannot be checked from here.
    External(String),
}

/// Classifies a `runbook_url`.
pub fn runbook_link(url: &str) -> RunbookLink {
    let url = url.trim();
    let without_anchor = url.split('#').next().unwrap_or(url);
    let Some((_, rest)) = without_anchor.split_once("://") else {
        return RunbookLink::InRepository(without_anchor.trim_start_matches("./").to_string());
    };
    // https://github.com/<owner>/DIVE-V3/blob/<ref>/<path>
    let parts: Vec<&str> = rest.splitn(6, '/').collect();
    match parts.as_slice() {
        ["github.com", _, repo, "blob", _, path] if repo.eq_ignore_ascii_case("DIVE-V3") => {
            RunbookLink::InRepository(path.to_string())
        }
        _ => RunbookLink::External(url.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runbook_url_leads_into_the_repository_or_elsewhere() {
        assert_eq!(
            runbook_link("fixtures/runbook.md#circuitbreakeropen"),
            RunbookLink::InRepository("fixtures/runbook.md".to_string())
        );
        assert_eq!(
            runbook_link("https://github.com/albeach/DIVE-V3/blob/main/docs/runbooks/cb.md#x"),
            RunbookLink::InRepository("docs/runbooks/cb.md".to_string())
        );
        assert!(matches!(
            runbook_link("https://docs.dive-v3.io/runbooks/circuit-breaker-open"),
            RunbookLink::External(_)
        ));
    }

    #[test]
    fn sections_count_their_numbered_steps() {
        let text = "# Runbook\n## CircuitBreakerOpen\n1. Look.\n2. Fix.\n## Empty\ntext only\n";
        assert_eq!(
            runbook_sections(text),
            [("CircuitBreakerOpen".to_string(), 2), ("Empty".to_string(), 0)]
        );
    }
}
