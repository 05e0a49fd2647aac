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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_count_their_numbered_steps() {
        let text = "# Runbook\n## CircuitBreakerOpen\n1. Look.\n2. Fix.\n## Empty\ntext only\n";
        assert_eq!(
            runbook_sections(text),
            [("CircuitBreakerOpen".to_string(), 2), ("Empty".to_string(), 0)]
        );
    }
}
