//! What the mock does for a request, chosen by the API key it carries.
//!
//! A key is `label` or `label?param=value&param=value`. The label names the
//! account in replies ("mock reply from label"); the parameters script it:
//!
//! | param | meaning |
//! |---|---|
//! | `status=429` | answer with this HTTP status and an OpenAI error body (a 3xx also sends `Location: /v1/chat/completions`, itself) |
//! | `retry_after=2` | `Retry-After` value sent with an error status |
//! | `code=insufficient_quota` | `error.code` / `error.type` of the error body |
//! | `fault=cut` | stream: stop after `after` content chunks, then drop the connection |
//! | `fault=stall` | stream: stop after `after` content chunks and go silent, connection open |
//! | `fault=endless` | stream: after `after` content chunks, one event that never ends (1 KiB `data:` lines without the blank line), as fast as it is read |
//! | `fault=reset` | close the connection without answering |
//! | `fault=hang` | never answer |
//! | `fault=empty` | stream: 200, then end without any event |
//! | `fault=error_event` | stream: 200, then an error event first |
//! | `after=2` | content chunks sent before a `cut` or `stall` |
//! | `times=N` | status/fault apply to the first N requests only, then normal |
//! | `fail_pct=50` | that share of requests (spread evenly, the same every run) get the `status` (500 if none), the rest answer normally |
//! | `latency_ms=50` | wait before answering (before the status line) |
//! | `first_byte_ms=50` | stream: send headers at once, the first event after this |
//! | `chunk_ms=20` | wait between stream chunks |
//! | `chunks=3` | number of content chunks in a stream |
//! | `remaining=0&reset=2s` | send `x-ratelimit-remaining-requests`/`-reset-requests` |
//! | `think=1` | think before answering (Anthropic thinking, Gemini thoughts, OpenAI `reasoning_content`) |
//! | `parallel=1` | call the first two tools at once |
//! | `cached=N` | Anthropic: report N `cache_read_input_tokens` |
//! | `code=daily` | Gemini 429: a per-day `QuotaFailure` |
//! | `echo_key=1` | error bodies and error events quote the API key (as some providers do) |

use std::time::Duration;

/// A scripted fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Stop a stream after some content and drop the connection.
    Cut,
    /// Stop a stream after some content and go silent, connection open.
    Stall,
    /// After some content, one event that never ends.
    Endless,
    /// Close the connection without an answer.
    Reset,
    /// Never answer.
    Hang,
    /// A 200 stream with no events.
    Empty,
    /// A 200 stream whose first event is an error.
    ErrorEvent,
}

/// The script for one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behaviour {
    /// Label used in replies.
    pub label: String,
    /// HTTP status (200 = normal).
    pub status: u16,
    /// Retry-After header with error statuses.
    pub retry_after: Option<String>,
    /// Error code in error bodies.
    pub code: Option<String>,
    /// Scripted fault.
    pub fault: Option<Fault>,
    /// Content chunks before a cut.
    pub after: usize,
    /// Status/fault apply to this many requests, then normal answers.
    pub times: Option<u64>,
    /// Only this percentage of requests get the status; the rest are normal.
    pub fail_pct: Option<u64>,
    /// Delay before answering.
    pub latency: Duration,
    /// Stream: delay between the headers and the first event.
    pub first_byte: Duration,
    /// Delay between stream chunks.
    pub chunk_delay: Duration,
    /// Content chunks per stream.
    pub chunks: usize,
    /// x-ratelimit-remaining-requests value.
    pub remaining: Option<u64>,
    /// x-ratelimit-reset-requests value.
    pub reset: Option<String>,
    /// Think before answering.
    pub think: bool,
    /// Call two tools at once.
    pub parallel: bool,
    /// Cached input tokens reported (Anthropic).
    pub cached: u64,
    /// Quote the API key in error messages.
    pub echo_key: bool,
}

impl Behaviour {
    /// Parses a key; unknown parameters are ignored.
    pub fn from_key(key: &str) -> Self {
        let (label, params) = key.split_once('?').unwrap_or((key, ""));
        let mut b = Behaviour {
            label: label.to_owned(),
            status: 200,
            retry_after: None,
            code: None,
            fault: None,
            after: 1,
            times: None,
            fail_pct: None,
            latency: Duration::ZERO,
            first_byte: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            chunks: 3,
            remaining: None,
            reset: None,
            think: false,
            parallel: false,
            cached: 0,
            echo_key: false,
        };
        for pair in params.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let num = || v.parse::<u64>().ok();
            match k {
                "status" => b.status = v.parse().unwrap_or(200),
                "retry_after" => b.retry_after = Some(v.to_owned()),
                "code" => b.code = Some(v.to_owned()),
                "fault" => {
                    b.fault = match v {
                        "cut" => Some(Fault::Cut),
                        "stall" => Some(Fault::Stall),
                        "endless" => Some(Fault::Endless),
                        "reset" => Some(Fault::Reset),
                        "hang" => Some(Fault::Hang),
                        "empty" => Some(Fault::Empty),
                        "error_event" => Some(Fault::ErrorEvent),
                        _ => None,
                    }
                }
                "after" => b.after = num().unwrap_or(1) as usize,
                "times" => b.times = num(),
                "fail_pct" => b.fail_pct = num().map(|p| p.min(100)),
                "latency_ms" => b.latency = Duration::from_millis(num().unwrap_or(0)),
                "first_byte_ms" => b.first_byte = Duration::from_millis(num().unwrap_or(0)),
                "chunk_ms" => b.chunk_delay = Duration::from_millis(num().unwrap_or(0)),
                "chunks" => b.chunks = num().unwrap_or(3).max(1) as usize,
                "remaining" => b.remaining = num(),
                "reset" => b.reset = Some(v.to_owned()),
                "think" => b.think = v == "1",
                "parallel" => b.parallel = v == "1",
                "cached" => b.cached = num().unwrap_or(0),
                "echo_key" => b.echo_key = v == "1",
                _ => {}
            }
        }
        b
    }

    /// The behaviour for the n-th request (1-based) with this key.
    pub fn for_request(&self, n: u64) -> Behaviour {
        let normal = || Behaviour {
            status: 200,
            fault: None,
            ..self.clone()
        };
        if let Some(pct) = self.fail_pct {
            // a fixed scramble of the request number: `pct` of every 100 fail
            let fails = (n.wrapping_mul(37) % 100) < pct;
            return match (fails, self.status) {
                (false, _) => normal(),
                (true, 200) => Behaviour {
                    status: 500,
                    ..self.clone()
                },
                (true, _) => self.clone(),
            };
        }
        match self.times {
            Some(times) if n > times => normal(),
            _ => self.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_share_fails_exactly_that_share() {
        let b = Behaviour::from_key("f?fail_pct=50");
        let failed = (1..=100)
            .filter(|&n| b.for_request(n).status == 500)
            .count();
        assert_eq!(failed, 50);
        let b = Behaviour::from_key("f?fail_pct=30&status=429");
        let limited = (1..=100)
            .filter(|&n| b.for_request(n).status == 429)
            .count();
        assert_eq!(limited, 30);
    }

    #[test]
    fn keys_script_the_mock() {
        let b = Behaviour::from_key("acct-a?status=429&retry_after=2&times=1");
        assert_eq!(
            (b.label.as_str(), b.status, b.retry_after.as_deref()),
            ("acct-a", 429, Some("2"))
        );
        assert_eq!(b.for_request(1).status, 429);
        assert_eq!(b.for_request(2).status, 200);
        assert_eq!(
            Behaviour::from_key("x?fault=cut&after=2").fault,
            Some(Fault::Cut)
        );
        assert_eq!(
            Behaviour::from_key("plain"),
            Behaviour {
                label: "plain".into(),
                ..Behaviour::from_key("plain?")
            }
        );
    }
}
