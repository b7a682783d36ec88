//! An upstream's whole answer, as the gateway reads it: decoded from the
//! account's protocol and encoded for every client API; usage, error codes
//! and `Retry-After` hints read from it; and its text redacted before it
//! may reach a client or a log.
//!
//! The first byte picks the upstream protocol; the rest is the body (and,
//! for the hints, a `retry-after` header value). Besides "no panic": the
//! redacted text never holds the account's key.

#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use llmpool_proxy::protocol::{anthropic, count, embeddings, gemini, openai};
use llmpool_proxy::upstream::{hints, redact::Redactor};

const KEY: &str = "sk-fuzz-account-key-0123";

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let decoded = match which % 3 {
        0 => {
            let _ = (openai::usage_of(body), openai::responses::usage_of(body));
            let _ = (openai::error_codes(body), openai::error_text(body));
            let _ = embeddings::decode_openai_response(body);
            openai::chat::decode_response(body)
        }
        1 => anthropic::messages::decode_response(body),
        _ => gemini::generate::decode_response(body),
    };
    let _ = count::read_count(body);
    if let Ok(r) = decoded {
        for v in [
            openai::chat::encode_response(&r),
            openai::responses::encode_response(&r),
            anthropic::messages::encode_response(&r),
            gemini::generate::encode_response(&r),
        ] {
            assert!(serde_json::to_vec(&v).is_ok());
        }
    }

    let text = String::from_utf8_lossy(body);
    let redacted = Redactor::new(Some(KEY)).text(&text);
    assert!(
        !redacted.contains(KEY),
        "the account key survived redaction"
    );

    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(body.get(..body.len().min(64)).unwrap_or_default()) {
        let name = if which & 0x80 != 0 {
            "retry-after-ms"
        } else {
            "retry-after"
        };
        headers.insert(name, v.clone());
        headers.insert(
            "x-ratelimit-remaining-requests",
            HeaderValue::from_static("0"),
        );
        headers.insert("x-ratelimit-reset-requests", v);
    }
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let _ = hints::retry_after(&headers, body, now);
});
