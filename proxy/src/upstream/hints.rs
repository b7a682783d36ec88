//! Reading a provider's retry and rate-limit hints: `Retry-After` (seconds or
//! HTTP date), `retry-after-ms`, the `x-ratelimit-*` reset headers, and the
//! reset time some providers only put in the error text.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use llmpool_crds::duration::parse_duration;

use super::error::AttemptError;
use crate::protocol::{Protocol, anthropic, gemini, openai};

/// Reads a failed upstream answer of `protocol` into an attempt error: the
/// cooldown hint, and whether the account itself is unusable (exhausted
/// quota or billing, a key the provider rejects) whatever its status says.
pub fn status_error(
    protocol: Protocol,
    status: StatusCode,
    headers: &HeaderMap,
    body: Bytes,
    now: SystemTime,
) -> AttemptError {
    let mut hint = retry_after(headers, &body, now);
    let mut status = status;
    let quota_exhausted = match protocol {
        Protocol::OpenAi => openai::error_codes(&body).contains("insufficient_quota"),
        Protocol::Anthropic => {
            status == StatusCode::PAYMENT_REQUIRED
                || anthropic::error_parts(&body).is_some_and(|(kind, _)| kind == "billing_error")
        }
        Protocol::Gemini => {
            if status == StatusCode::TOO_MANY_REQUESTS && gemini::daily_quota(&body) {
                // a per-day quota: the model rests for the rest of Google's
                // day (midnight Pacific), capped later by cooldown.max
                hint = Some(until_pacific_midnight(now));
            }
            // Gemini answers a bad key with 400 API_KEY_INVALID
            if status == StatusCode::BAD_REQUEST
                && std::str::from_utf8(&body).is_ok_and(|t| t.contains("API_KEY_INVALID"))
            {
                status = StatusCode::UNAUTHORIZED;
            }
            false
        }
    };
    AttemptError::Status {
        status,
        hint,
        quota_exhausted,
        body,
    }
}

/// Time until the next midnight in US Pacific time (daylight saving from
/// the second Sunday of March to the first Sunday of November, at 2 am).
pub fn until_pacific_midnight(now: SystemTime) -> Duration {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    let dst = {
        let march_start = second_sunday(year, 3);
        let nov_end = first_sunday(year, 11);
        let doy = (month, day);
        doy > (3, march_start) && doy < (11, nov_end)
            || doy == (3, march_start) && secs % 86_400 >= 10 * 3600
            || doy == (11, nov_end) && secs % 86_400 < 9 * 3600
    };
    let offset = if dst { 7 * 3600 } else { 8 * 3600 };
    let local = secs.saturating_sub(offset);
    Duration::from_secs(86_400 - local % 86_400)
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn weekday_of(year: i64, month: u32, day: u32) -> u32 {
    // Sakamoto's method: 0 = Sunday
    let t = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
    let y = if month < 3 { year - 1 } else { year };
    ((y + y / 4 - y / 100 + y / 400 + t[(month - 1) as usize] + i64::from(day)) % 7) as u32
}

fn first_sunday(year: i64, month: u32) -> u32 {
    (1..=7)
        .find(|d| weekday_of(year, month, *d) == 0)
        .unwrap_or(1)
}

fn second_sunday(year: i64, month: u32) -> u32 {
    first_sunday(year, month) + 7
}

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
    if let Some(reset) = exhausted_for(headers, now) {
        return Some(reset);
    }
    reset_in_text(body)
}

/// When a response says the account has nothing left (an OpenAI
/// `x-ratelimit-remaining-*` or Anthropic `anthropic-ratelimit-*-remaining`
/// of 0), how long until the matching reset (a duration for OpenAI, an
/// RFC 3339 time for Anthropic).
pub fn exhausted_for(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    // (remaining, reset) header names; read on every answer, so spelled out
    const OPENAI: [(&str, &str); 2] = [
        (
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ),
        ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
    ];
    const ANTHROPIC: [(&str, &str); 4] = [
        (
            "anthropic-ratelimit-requests-remaining",
            "anthropic-ratelimit-requests-reset",
        ),
        (
            "anthropic-ratelimit-tokens-remaining",
            "anthropic-ratelimit-tokens-reset",
        ),
        (
            "anthropic-ratelimit-input-tokens-remaining",
            "anthropic-ratelimit-input-tokens-reset",
        ),
        (
            "anthropic-ratelimit-output-tokens-remaining",
            "anthropic-ratelimit-output-tokens-reset",
        ),
    ];
    let exhausted = |remaining: &str| {
        header(headers, remaining).and_then(|r| r.trim().parse::<u64>().ok()) == Some(0)
    };
    let mut longest: Option<Duration> = None;
    let mut note = |reset: Duration| longest = Some(longest.map_or(reset, |l| l.max(reset)));
    for (remaining, reset) in OPENAI {
        if exhausted(remaining) {
            note(
                header(headers, reset)
                    .and_then(|r| parse_duration(r.trim()).ok())
                    .unwrap_or(Duration::from_secs(1)),
            );
        }
    }
    for (remaining, reset) in ANTHROPIC {
        if exhausted(remaining) {
            note(
                header(headers, reset)
                    .and_then(|r| parse_rfc3339(r.trim()))
                    .and_then(|at| at.duration_since(now).ok())
                    .unwrap_or(Duration::from_secs(1)),
            );
        }
    }
    longest
}

/// Parses `2026-11-28T04:05:06Z` (fractional seconds and offsets allowed).
fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let (date, time) = text.split_once(['T', 't'])?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (clock, offset) = match time.find(['Z', 'z', '+', '-']) {
        Some(at) => time.split_at(at),
        None => (time, "Z"),
    };
    let mut c = clock.split(':');
    let h: i64 = c.next()?.parse().ok()?;
    let min: i64 = c.next()?.parse().ok()?;
    let sec: f64 = c.next().unwrap_or("0").parse().ok()?;
    let offset_secs = match offset.as_bytes().first() {
        Some(b'+' | b'-') => {
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            let (oh, om) = offset[1..].split_once(':')?;
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
        _ => 0,
    };
    let days = days_from_civil(y, m, day);
    let total = days * 86_400 + h * 3600 + min * 60 - offset_secs;
    let total = u64::try_from(total).ok()?;
    Some(
        SystemTime::UNIX_EPOCH
            + Duration::from_secs(total)
            + Duration::try_from_secs_f64(sec).ok()?,
    )
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
        let now = SystemTime::UNIX_EPOCH;
        assert_eq!(
            exhausted_for(&headers(&[("x-ratelimit-remaining-requests", "3")]), now),
            None
        );
        assert_eq!(
            exhausted_for(
                &headers(&[
                    ("x-ratelimit-remaining-tokens", "0"),
                    ("x-ratelimit-reset-tokens", "20ms"),
                    ("x-ratelimit-remaining-requests", "0"),
                    ("x-ratelimit-reset-requests", "2s"),
                ]),
                now
            ),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn anthropic_reset_times_are_rfc3339() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_302_400); // 2025-11-28T04:00:00Z
        let h = headers(&[
            ("anthropic-ratelimit-tokens-remaining", "0"),
            ("anthropic-ratelimit-tokens-reset", "2025-11-28T04:00:30Z"),
            ("anthropic-ratelimit-requests-remaining", "10"),
        ]);
        assert_eq!(exhausted_for(&h, now), Some(Duration::from_secs(30)));
        let offset = headers(&[
            ("anthropic-ratelimit-requests-remaining", "0"),
            (
                "anthropic-ratelimit-requests-reset",
                "2025-11-28T05:01:00+01:00",
            ),
        ]);
        assert_eq!(exhausted_for(&offset, now), Some(Duration::from_secs(60)));
    }

    #[test]
    fn gemini_daily_quota_lasts_until_pacific_midnight() {
        // 2025-11-28T04:00:00Z is 20:00 the day before in PST: 4 h left
        let winter = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_302_400);
        assert_eq!(
            until_pacific_midnight(winter),
            Duration::from_secs(4 * 3600)
        );
        // 2025-07-01T06:00:00Z is 23:00 PDT: 1 h left
        let summer = SystemTime::UNIX_EPOCH + Duration::from_secs(1_751_349_600);
        assert_eq!(until_pacific_midnight(summer), Duration::from_secs(3600));
        let body = br#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}}"#;
        let err = status_error(
            Protocol::Gemini,
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            Bytes::from_static(body),
            winter,
        );
        assert!(
            matches!(err, AttemptError::Status { hint: Some(h), .. } if h == Duration::from_secs(4 * 3600))
        );
        let bad_key = br#"{"error":{"code":400,"status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}"#;
        let err = status_error(
            Protocol::Gemini,
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            Bytes::from_static(bad_key),
            winter,
        );
        assert_eq!(err.class(), Some(llmpool_crds::route::FailureClass::Auth));
    }
}
