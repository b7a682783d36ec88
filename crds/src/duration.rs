//! Durations as written in the resources: `500ms`, `30s`, `1m30s`, `1.5h`.

use std::time::Duration;

/// Parses a duration made of `<number><unit>` pieces, unit ms, s, m or h.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::of(text));
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| DurationError::of(text))?;
        if num_len == 0 {
            return Err(DurationError::of(text));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| DurationError::of(text))?;
        rest = &rest[num_len..];
        let (unit_secs, unit_len) = if rest.starts_with("ms") {
            (0.001, 2)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else {
            return Err(DurationError::of(text));
        };
        total += value * unit_secs;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| DurationError::of(text))
}

/// A duration that does not parse, with the start of the text it was
/// given (at most 40 characters: the text may be anything a resource or a
/// flag held, and the error goes to statuses, events and logs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a duration; write e.g. 500ms, 30s, 1m30s or 1h")]
pub struct DurationError(pub String);

impl DurationError {
    fn of(text: &str) -> Self {
        const SHOWN: usize = 40;
        match text.char_indices().nth(SHOWN) {
            Some((at, _)) => Self(format!("{}…", &text[..at])),
            None => Self(text.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("6m0s"), Ok(Duration::from_secs(360)));
    }

    #[test]
    fn a_long_bad_duration_is_quoted_only_in_part() {
        let long = format!("1h{}", "é".repeat(1_000_000));
        let message = parse_duration(&long).unwrap_err().to_string();
        assert!(message.len() < 200, "{} bytes", message.len());
        assert!(message.starts_with("`1hééé"), "{message}");
        assert_eq!(
            parse_duration("1d").unwrap_err().to_string(),
            "`1d` is not a duration; write e.g. 500ms, 30s, 1m30s or 1h"
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "30", "s", "1d", "1 h", "-1s", "1.2.3s"] {
            assert!(parse_duration(bad).is_err(), "{bad} parsed");
        }
    }
}
