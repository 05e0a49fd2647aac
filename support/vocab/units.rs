//! How the suite writes durations: in reports (`1.8 s`, `240 ms`), in journals (milliseconds) and
//! in Prometheus and AlertManager configuration (Go durations such as `1m30s`).

use std::time::Duration;

/// Formats a duration the way every report of the suite does: seconds with one decimal below a
/// minute, milliseconds below a second.
pub fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Milliseconds, saturating, for journals.
pub fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A Go duration in milliseconds, the form both Prometheus and AlertManager parse.
pub fn go_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

/// Parses a Prometheus duration made of `h`, `m`, `s` and `ms` parts (`1m`, `5m`, `1m30s`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else {
            let unit = match rest.chars().next()? {
                'h' => Duration::from_secs(3600),
                'm' => Duration::from_secs(60),
                's' => Duration::from_secs(1),
                _ => return None,
            };
            (unit, 1)
        };
        total += unit.checked_mul(u32::try_from(n).ok()?)?;
        rest = &rest[len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_reports() {
        assert_eq!(secs(Duration::from_millis(1840)), "1.8 s");
        assert_eq!(secs(Duration::from_millis(240)), "240 ms");
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(go_duration(Duration::from_secs(90)), "90000ms");
    }
}
