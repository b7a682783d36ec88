//! Reading a provider's retry and rate-limit hints: `Retry-After` (seconds or
//! HTTP date), `retry-after-ms`, the `x-ratelimit-*` reset headers, and the
//! reset time some providers only put in the error text.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use llmpool_crds::duration::parse_duration;

/// How long the provider asks us to wait after a 429, if it says.
pub fn retry_after(headers: &HeaderMap, body: &[u8], now: SystemTime) -> Option<Duration> {
    if let Some(ms) = header(headers, "retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    if let Some(v) = header(headers, "retry-after") {
        let v = v.trim();
        if let Ok(secs) = v.parse::<f64>() {
            return Duration::try_from_secs_f64(secs).ok();
        }
        if let Ok(at) = httpdate::parse_http_date(v) {
            return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
    if let Some(reset) = exhausted_for(headers) {
        return Some(reset);
    }
    reset_in_text(body)
}

/// When a success response says the account has nothing left (a
/// `x-ratelimit-remaining-*` of 0), how long until the matching reset.
pub fn exhausted_for(headers: &HeaderMap) -> Option<Duration> {
    let mut longest: Option<Duration> = None;
    for kind in ["requests", "tokens"] {
        let remaining = header(headers, &format!("x-ratelimit-remaining-{kind}"));
        if remaining.and_then(|r| r.trim().parse::<u64>().ok()) != Some(0) {
            continue;
        }
        let reset = header(headers, &format!("x-ratelimit-reset-{kind}"))
            .and_then(|r| parse_duration(r.trim()).ok())
            .unwrap_or(Duration::from_secs(1));
        longest = Some(longest.map_or(reset, |l| l.max(reset)));
    }
    longest
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// "Please try again in 1.5s." (OpenAI) or `"retryDelay": "27s"` (Gemini).
fn reset_in_text(body: &[u8]) -> Option<Duration> {
    let text = std::str::from_utf8(body).ok()?;
    for marker in ["try again in ", "\"retryDelay\": \"", "\"retryDelay\":\""] {
        if let Some(at) = text.find(marker) {
            let rest = &text[at + marker.len()..];
            let token: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
                .collect();
            if let Ok(d) = parse_duration(token.trim_end_matches('.')) {
                return Some(d);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn retry_after_in_every_form() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let h = |p: &[(&'static str, &str)]| retry_after(&headers(p), b"", now);
        assert_eq!(h(&[("retry-after", "7")]), Some(Duration::from_secs(7)));
        assert_eq!(
            h(&[("retry-after-ms", "1500")]),
            Some(Duration::from_millis(1500))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(h(&[("retry-after", &date)]), Some(Duration::from_secs(90)));
        assert_eq!(
            h(&[
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", "6m0s")
            ]),
            Some(Duration::from_secs(360))
        );
        assert_eq!(h(&[]), None);
    }

    #[test]
    fn reset_times_in_error_text() {
        let openai =
            br#"{"error":{"message":"Rate limit reached. Please try again in 1.5s. Visit ..."}}"#;
        assert_eq!(reset_in_text(openai), Some(Duration::from_millis(1500)));
        let gemini = br#"{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay": "27s"}]}}"#;
        assert_eq!(reset_in_text(gemini), Some(Duration::from_secs(27)));
    }

    #[test]
    fn exhausted_only_when_a_remaining_header_is_zero() {
        assert_eq!(
            exhausted_for(&headers(&[("x-ratelimit-remaining-requests", "3")])),
            None
        );
        assert_eq!(
            exhausted_for(&headers(&[
                ("x-ratelimit-remaining-tokens", "0"),
                ("x-ratelimit-reset-tokens", "20ms"),
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", "2s"),
            ])),
            Some(Duration::from_secs(2))
        );
    }
}
