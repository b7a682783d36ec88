//! The OpenAI Chat Completions API: what the gateway reads of a request,
//! error bodies, stream-chunk classification for the pass-through path, and
//! the codecs to and from the internal form.

pub mod chat;
pub mod chat_stream;
pub mod responses;

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::ir::Usage;
pub use super::stream::ChunkKind;

/// What the gateway needs from a chat request; the body itself is forwarded.
#[derive(Debug, Deserialize)]
pub struct ChatRequestView<'a> {
    /// Requested model.
    #[serde(borrow)]
    pub model: Cow<'a, str>,
    /// Streaming response wanted.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Conversation so far.
    #[serde(borrow)]
    pub messages: Vec<&'a RawValue>,
    /// Output limit (current name).
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    /// Output limit (legacy name).
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// End-user id; a session key when nothing better is given.
    #[serde(default, borrow)]
    pub user: Option<Cow<'a, str>>,
    /// Explicit prompt-cache key; the preferred session key.
    #[serde(default, borrow)]
    pub prompt_cache_key: Option<Cow<'a, str>>,
    /// Stream options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
}

/// `stream_options`.
#[derive(Debug, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the usage.
    #[serde(default)]
    pub include_usage: bool,
}

/// A message's role and content, for the session hash.
#[derive(Debug, Deserialize)]
struct MessageView<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
}

impl ChatRequestView<'_> {
    /// Whether the client asked for a usage chunk at the end of a stream.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }

    /// Output tokens the request may use, for rate-window reservations.
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// The session key from the body: prompt_cache_key, then user, then a
    /// hash of the first system prompt and the first user turn.
    pub fn session_key(&self) -> Option<String> {
        if let Some(k) = self.prompt_cache_key.as_deref().filter(|k| !k.is_empty()) {
            return Some(format!("pck:{k}"));
        }
        if let Some(u) = self.user.as_deref().filter(|u| !u.is_empty()) {
            return Some(format!("user:{u}"));
        }
        let mut system = None;
        let mut first_user = None;
        for m in &self.messages {
            let Ok(view) = serde_json::from_str::<MessageView<'_>>(m.get()) else {
                continue;
            };
            let content = view.content.map(RawValue::get).unwrap_or_default();
            match view.role.as_ref() {
                "system" | "developer" if system.is_none() => system = Some(content),
                "user" if first_user.is_none() => first_user = Some(content),
                _ => {}
            }
            if first_user.is_some() {
                break;
            }
        }
        let first_user = first_user?;
        Some(format!(
            "hash:{}",
            short_hash(&[system.unwrap_or_default(), first_user])
        ))
    }
}

pub fn short_hash(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.len().to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Deserialize)]
struct WithUsage<'a> {
    #[serde(default, borrow)]
    usage: Option<&'a RawValue>,
}

/// Reads `usage` from a response body or a stream chunk, if present.
pub fn usage_of(json: &[u8]) -> Option<Usage> {
    let u = serde_json::from_slice::<WithUsage<'_>>(json).ok()?.usage?;
    chat::decode_usage_raw(u)
}

#[derive(Deserialize)]
struct ChunkView<'a> {
    #[serde(default)]
    choices: Vec<ChoiceView<'a>>,
    #[serde(default, borrow)]
    usage: Option<&'a RawValue>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ChoiceView<'a> {
    #[serde(default, borrow)]
    delta: Option<DeltaView<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct DeltaView<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    refusal: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Option<&'a RawValue>,
}

/// Classifies one `data:` payload of a chat stream.
pub fn classify_chunk(data: &str) -> ChunkKind {
    if data.trim() == "[DONE]" {
        return ChunkKind::Done;
    }
    let Ok(chunk) = serde_json::from_str::<ChunkView<'_>>(data) else {
        return ChunkKind::Error("upstream sent a stream chunk that is not JSON".to_owned());
    };
    if let Some(err) = chunk.error {
        return ChunkKind::Error(error_message(err.get().as_bytes()));
    }
    let content = chunk.usage.is_some_and(|u| u.get() != "null")
        || chunk.choices.iter().any(|c| {
            c.finish_reason.is_some()
                || c.delta.as_ref().is_some_and(|d| {
                    d.content.as_deref().is_some_and(|s| !s.is_empty())
                        || d.refusal.as_deref().is_some_and(|s| !s.is_empty())
                        || d.tool_calls.is_some()
                })
        });
    if content {
        ChunkKind::Content
    } else {
        ChunkKind::Preamble
    }
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<serde_json::Value>,
}

/// The `error.type` and `error.code` of an OpenAI error body, lower-cased and
/// joined, for classification ("insufficient_quota", "rate_limit_exceeded").
pub fn error_codes(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(e) => {
            let code = match e.error.code {
                Some(serde_json::Value::String(s)) => s,
                Some(other) => other.to_string(),
                None => String::new(),
            };
            format!("{} {}", e.error.kind.unwrap_or_default(), code).to_ascii_lowercase()
        }
        Err(_) => String::new(),
    }
}

/// The message of an error object (the envelope or the bare object), or a
/// generic text. Only used for errors inside a 200 stream.
fn error_message(err: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Bare {
        #[serde(default)]
        message: Option<String>,
    }
    serde_json::from_slice::<Bare>(err)
        .ok()
        .and_then(|b| b.message)
        .unwrap_or_else(|| "upstream stream error".to_owned())
}

/// The text message of an OpenAI error body, if it has one.
pub fn error_text(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<ErrorEnvelope>(body)
        .ok()?
        .error
        .message
}

/// Builds an OpenAI error body.
pub fn error_body(message: &str, kind: &str, code: &str, param: Option<&str>) -> Vec<u8> {
    serde_json::json!({
        "error": {"message": message, "type": kind, "param": param, "code": code}
    })
    .to_string()
    .into_bytes()
}

/// A stream event carrying an error, to end a stream that already started.
pub fn stream_error_event(message: &str) -> Vec<u8> {
    let body = error_body(message, "server_error", "upstream_stream_error", None);
    let mut out = b"data: ".to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(b"\n\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_classified_for_the_retry_decision() {
        let role = r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#;
        let text = r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#;
        let tool = r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]}}]}"#;
        let fin = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
        let err = r#"{"error":{"message":"overloaded","type":"server_error"}}"#;
        assert_eq!(classify_chunk(role), ChunkKind::Preamble);
        assert_eq!(classify_chunk(text), ChunkKind::Content);
        assert_eq!(classify_chunk(tool), ChunkKind::Content);
        assert_eq!(classify_chunk(fin), ChunkKind::Content);
        assert_eq!(classify_chunk(err), ChunkKind::Error("overloaded".into()));
        assert_eq!(classify_chunk("[DONE]"), ChunkKind::Done);
    }

    #[test]
    fn session_key_prefers_cache_key_then_user_then_prompt_hash() {
        let parse = |s: &'static str| serde_json::from_str::<ChatRequestView<'_>>(s).unwrap();
        let a = parse(r#"{"model":"m","messages":[],"prompt_cache_key":"k","user":"u"}"#);
        assert_eq!(a.session_key().as_deref(), Some("pck:k"));
        let b = parse(r#"{"model":"m","messages":[],"user":"u"}"#);
        assert_eq!(b.session_key().as_deref(), Some("user:u"));
        let c1 = parse(
            r#"{"model":"m","messages":[{"role":"system","content":"S"},{"role":"user","content":"Q"}]}"#,
        );
        let c2 = parse(
            r#"{"model":"m","messages":[{"role":"system","content":"S"},{"role":"user","content":"Q"},{"role":"assistant","content":"A"}]}"#,
        );
        let c3 = parse(
            r#"{"model":"m","messages":[{"role":"system","content":"S"},{"role":"user","content":"R"}]}"#,
        );
        assert_eq!(c1.session_key(), c2.session_key());
        assert_ne!(c1.session_key(), c3.session_key());
    }

    #[test]
    fn usage_and_error_codes_are_read() {
        let body =
            br#"{"id":"x","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
        assert_eq!(usage_of(body).unwrap().total(), 7);
        assert_eq!(usage_of(br#"{"usage":null}"#), None);
        assert_eq!(usage_of(br#"{"usage":7}"#), None);
        assert_eq!(usage_of(br#"{"usage":[3,4]}"#), None);
        // the details, and what the quick reading cannot take (a count
        // written as a fraction) read as the full JSON reading always did
        let full = br#"{"usage":{"prompt_tokens":10,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":6},"completion_tokens_details":{"reasoning_tokens":2}}}"#;
        let u = usage_of(full).unwrap();
        assert_eq!(
            (u.input, u.cached_input, u.output, u.reasoning),
            (10, 6, 4, 2)
        );
        let odd = br#"{"usage":{"prompt_tokens":10.5,"completion_tokens":4,"prompt_tokens_details":null}}"#;
        let u = usage_of(odd).unwrap();
        assert_eq!((u.input, u.cached_input, u.output), (0, 0, 4));
        let quota =
            br#"{"error":{"message":"m","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        assert!(error_codes(quota).contains("insufficient_quota"));
    }
}
