//! Durations written as text: `500ms`, `30s`, `5m`, `1h`, `1m30s`.

use std::time::Duration;

/// Parses a duration; the error says what is wrong.
pub fn parse(text: &str) -> Result<Duration, String> {
    let mut total: u128 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("a duration cannot be empty".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("`{text}` must start each part with a number"));
        }
        let number: u128 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{text}` has a number that is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let millis_per = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" => return Err(format!("`{text}` needs a unit: ms, s, m or h")),
            other => {
                return Err(format!(
                    "`{other}` in `{text}` is not a unit; use ms, s, m or h"
                ));
            }
        };
        rest = &rest[unit_len..];
        total = total.saturating_add(number.saturating_mul(millis_per));
    }
    // A week is far beyond any sensible wait; larger values are mistakes.
    if total > 7 * 24 * 3_600_000 {
        return Err(format!("`{text}` is longer than a week"));
    }
    Ok(Duration::from_millis(total as u64))
}

/// Formats a duration the way a user would write it.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".into()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_bad_text() {
        for bad in [
            "",
            "30",
            "s",
            "3 0s",
            "10x",
            "-1s",
            "1.5s",
            "99999999999999999999999h",
            "8d",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn format_round_trips() {
        for text in ["0s", "500ms", "30s", "5m", "2h", "1500ms"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }
}
