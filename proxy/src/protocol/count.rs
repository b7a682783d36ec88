//! Token counting: Anthropic `/v1/messages/count_tokens` and Gemini
//! `:countTokens`. Each is answered by the upstream's own counter where the
//! account's provider has one (translated between the two), and for
//! OpenAI accounts, which have none, estimated locally with OpenAI's
//! o200k_base tokenizer over the request's text (an estimate: message
//! framing and images are not counted exactly).

use serde_json::{Value, json};

use super::ir::{Part, Request};
use super::{TranslateError, anthropic, gemini};

/// Counts the tokens of a request's text with o200k_base.
pub fn estimate(req: &Request) -> u64 {
    let bpe = tiktoken_rs::o200k_base_singleton();
    let count = |text: &str| bpe.encode_ordinary(text).len();
    let mut n = 0usize;
    for t in &req.system {
        n += count(&t.text);
    }
    for m in &req.messages {
        // a few tokens of framing per message, as chat formats add
        n += 4;
        for p in &m.parts {
            n += match p {
                Part::Text(t) => count(&t.text),
                Part::Thinking(t) => count(&t.text),
                Part::ToolCall(c) => count(&c.name) + count(&c.arguments),
                Part::ToolResult(r) => count(&r.text()),
                // a flat allowance per image or document
                Part::Image(_) | Part::Document(_) => 85,
            };
        }
    }
    for t in &req.tools {
        n += count(&t.name) + count(&t.parameters.to_string());
        if let Some(d) = &t.description {
            n += count(d);
        }
    }
    n as u64
}

/// A Gemini `:countTokens` request carries the request alone or wrapped in
/// `generateContentRequest`; returns the body to decode as generateContent.
pub fn unwrap_gemini(body: &[u8]) -> Result<Vec<u8>, TranslateError> {
    let v: Value = serde_json::from_slice(body).map_err(TranslateError::Invalid)?;
    let inner = v
        .get("generateContentRequest")
        .or_else(|| v.get("generate_content_request"))
        .cloned()
        .unwrap_or(v);
    serde_json::to_vec(&inner).map_err(TranslateError::Invalid)
}

/// An Anthropic count_tokens request for `model`.
pub fn encode_anthropic(req: &Request, model: &str) -> Result<Value, TranslateError> {
    let mut r = req.clone();
    r.model = model.to_owned();
    r.stream = false;
    let mut v = anthropic::messages::encode_request(&r)?;
    if let Some(o) = v.as_object_mut() {
        o.remove("max_tokens");
        o.remove("stream");
        o.remove("temperature");
        o.remove("top_p");
        o.remove("top_k");
        o.remove("stop_sequences");
        o.remove("metadata");
    }
    Ok(v)
}

/// A Gemini countTokens request for `model`.
pub fn encode_gemini(req: &Request, model: &str) -> Result<Value, TranslateError> {
    let mut inner = gemini::generate::encode_request(req)?;
    inner["model"] = json!(format!("models/{model}"));
    Ok(json!({"generateContentRequest": inner}))
}

/// The count in a count_tokens (`input_tokens`) or countTokens
/// (`totalTokens`) answer.
pub fn read_count(body: &[u8]) -> Option<u64> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("input_tokens")
        .or_else(|| v.get("totalTokens"))
        .or_else(|| v.get("total_tokens"))
        .and_then(Value::as_u64)
}

/// Anthropic's answer.
pub fn anthropic_answer(n: u64) -> Value {
    json!({"input_tokens": n})
}

/// Gemini's answer.
pub fn gemini_answer(n: u64) -> Value {
    json!({"totalTokens": n})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ir::{Message, Role, Text};

    #[test]
    fn the_estimate_counts_real_tokens() {
        let req = Request {
            system: vec![Text::plain("You are brief.")],
            messages: vec![Message {
                role: Role::User,
                parts: vec![Part::Text(Text::plain("Hello world, hello world!"))],
            }],
            ..Request::default()
        };
        let n = estimate(&req);
        // 4 tokens of system text, 7 of user text, 4 of framing
        assert!((12..=18).contains(&n), "{n}");
        let longer = Request {
            messages: vec![Message {
                role: Role::User,
                parts: vec![Part::Text(Text::plain("word ".repeat(100)))],
            }],
            ..Request::default()
        };
        assert!(estimate(&longer) >= 100);
    }

    #[test]
    fn gemini_count_requests_unwrap_and_wrap() {
        let inner = unwrap_gemini(br#"{"generateContentRequest":{"model":"models/x","contents":[{"parts":[{"text":"a"}]}]}}"#).unwrap();
        let v: Value = serde_json::from_slice(&inner).unwrap();
        assert_eq!(v["contents"][0]["parts"][0]["text"], "a");
        assert_eq!(read_count(br#"{"totalTokens": 7}"#), Some(7));
        assert_eq!(read_count(br#"{"input_tokens": 9}"#), Some(9));
    }
}
