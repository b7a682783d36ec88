//! The Anthropic Messages API: what the gateway reads of a request, error
//! bodies, stream-event classification for the pass-through path, and the
//! codecs to and from the internal form.

pub mod messages;
pub mod stream;

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::ir::Usage;
use super::sse::Event;
use super::stream::ChunkKind;
use super::{Protocol, signature};

/// What the gateway needs from a Messages request; the body itself is forwarded.
#[derive(Debug, Deserialize)]
pub struct RequestView<'a> {
    /// Requested model.
    #[serde(borrow)]
    pub model: Cow<'a, str>,
    /// Output limit (required by Anthropic).
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Streaming wanted.
    #[serde(default)]
    pub stream: Option<bool>,
    /// The conversation.
    #[serde(borrow)]
    pub messages: Vec<&'a RawValue>,
    /// Top-level system prompt.
    #[serde(default, borrow)]
    pub system: Option<&'a RawValue>,
    /// `metadata.user_id`, a session key.
    #[serde(default, borrow)]
    pub metadata: Option<Metadata<'a>>,
}

/// Request metadata.
#[derive(Debug, Deserialize)]
pub struct Metadata<'a> {
    /// End-user id.
    #[serde(default, borrow)]
    pub user_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MessageView<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(borrow)]
    content: &'a RawValue,
}

impl RequestView<'_> {
    /// The session key from the body: `metadata.user_id`, else a hash of the
    /// system prompt and the first user turn.
    pub fn session_key(&self) -> Option<String> {
        if let Some(u) = self
            .metadata
            .as_ref()
            .and_then(|m| m.user_id.as_deref())
            .filter(|u| !u.is_empty())
        {
            return Some(format!("user:{u}"));
        }
        let first_user = self.messages.iter().find_map(|m| {
            let view = serde_json::from_str::<MessageView<'_>>(m.get()).ok()?;
            (view.role == "user").then(|| view.content.get())
        })?;
        let system = self.system.map(RawValue::get).unwrap_or_default();
        Some(format!(
            "hash:{}",
            super::openai::short_hash(&[system, first_user])
        ))
    }
}

/// Builds an Anthropic error body.
pub fn error_body(message: &str, kind: &str) -> Vec<u8> {
    json!({"type": "error", "error": {"type": kind, "message": message}})
        .to_string()
        .into_bytes()
}

/// An `event: error` to end a stream that already started.
pub fn stream_error_event(message: &str) -> Vec<u8> {
    let mut out = b"event: error\ndata: ".to_vec();
    out.extend_from_slice(&error_body(message, "api_error"));
    out.extend_from_slice(b"\n\n");
    out
}

/// `error.type` and `error.message` of an Anthropic error body.
pub fn error_parts(body: &[u8]) -> Option<(String, String)> {
    super::error_fields(body, "type")
}

/// Classifies one event of an Anthropic stream for the retry decision.
pub fn classify(event: &Event) -> ChunkKind {
    let kind = event.event.as_deref().unwrap_or("");
    match kind {
        "content_block_delta" | "message_delta" => ChunkKind::Content,
        "content_block_start" if event.data.contains("\"tool_use\"") => ChunkKind::Content,
        "message_stop" => ChunkKind::Done,
        "error" => ChunkKind::Error(
            error_parts(event.data.as_bytes())
                .map(|(_, m)| m)
                .unwrap_or_else(|| "upstream stream error".to_owned()),
        ),
        _ => ChunkKind::Preamble,
    }
}

/// Usage carried by an Anthropic stream event, merged into `usage`.
pub fn merge_usage(event: &Event, usage: &mut Option<Usage>) {
    let kind = event.event.as_deref().unwrap_or("");
    if kind != "message_start" && kind != "message_delta" {
        return;
    }
    let Ok(v) = serde_json::from_str::<Value>(&event.data) else {
        return;
    };
    let u = if kind == "message_start" {
        &v["message"]["usage"]
    } else {
        &v["usage"]
    };
    let mut current = usage.unwrap_or_default();
    if u.get("input_tokens").is_some() {
        let read = messages::decode_usage(u);
        current.input = read.input;
        current.cached_input = read.cached_input;
        current.cache_write = read.cache_write;
    }
    if let Some(o) = u.get("output_tokens").and_then(Value::as_u64) {
        current.output = o;
    }
    *usage = Some(current);
}

/// Readies a same-protocol body that holds tagged signatures for Anthropic:
/// thinking signed by other providers is dropped (Anthropic would reject
/// it), and thinking is turned off when the tool loop's last assistant turn
/// is left without its own thinking. Returns None when nothing changed.
pub fn clean_foreign_signatures(body: &[u8]) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let mut changed = false;
    for m in v.get_mut("messages")?.as_array_mut()? {
        let Some(blocks) = m.get_mut("content").and_then(Value::as_array_mut) else {
            continue;
        };
        blocks.retain(|b| {
            let sig = match b.get("type").and_then(Value::as_str) {
                Some("thinking") => b.get("signature"),
                Some("redacted_thinking") => b.get("data"),
                _ => return true,
            };
            let own = sig
                .and_then(Value::as_str)
                .map(|s| {
                    signature::from_client(s, Protocol::Anthropic).origin == Protocol::Anthropic
                })
                .unwrap_or(false);
            changed |= !own;
            own
        });
    }
    if !changed {
        return None;
    }
    if let Some(req) = v.as_object_mut()
        && req.contains_key("thinking")
    {
        let messages = req.get("messages").and_then(Value::as_array);
        let last_is_tool_result = messages
            .and_then(|ms| ms.last())
            .is_some_and(|m| m["content"][0]["type"] == "tool_result");
        let assistant_thinks = messages
            .and_then(|ms| ms.iter().rev().find(|m| m["role"] == "assistant"))
            .is_some_and(|m| {
                matches!(
                    m["content"][0]["type"].as_str(),
                    Some("thinking" | "redacted_thinking")
                )
            });
        if last_is_tool_result && !assistant_thinks {
            tracing::debug!("thinking turned off: foreign thinking was dropped from the tool loop");
            req.remove("thinking");
        }
    }
    serde_json::to_vec(&v).ok()
}
