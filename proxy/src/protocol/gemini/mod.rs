//! The Gemini generateContent API: paths, what the gateway reads of a
//! request, error bodies, stream-event classification for the
//! pass-through path, and the codecs to and from the internal form.

pub mod generate;
pub mod stream;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::ir::Usage;
use super::sse::Event;
use super::stream::ChunkKind;
use super::{Protocol, signature};

/// What a Gemini model path asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `:generateContent`.
    Generate,
    /// `:streamGenerateContent`.
    Stream,
    /// `:countTokens`.
    CountTokens,
    /// `:embedContent`.
    Embed,
    /// `:batchEmbedContents`.
    BatchEmbed,
}

/// Splits `gemini-2.5-flash:generateContent` into model and action.
pub fn parse_action(segment: &str) -> Option<(&str, Action)> {
    let (model, action) = segment.rsplit_once(':')?;
    let action = match action {
        "generateContent" => Action::Generate,
        "streamGenerateContent" => Action::Stream,
        "countTokens" => Action::CountTokens,
        "embedContent" => Action::Embed,
        "batchEmbedContents" => Action::BatchEmbed,
        _ => return None,
    };
    Some((model.strip_prefix("models/").unwrap_or(model), action))
}

/// Whether a model name is safe to put in a Gemini URL path.
pub fn valid_model(model: &str) -> bool {
    !model.is_empty()
        && model.len() <= 256
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && !model.contains("..")
}

/// What the gateway needs from a generateContent request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestView<'a> {
    /// The conversation.
    #[serde(default, borrow, alias = "contents")]
    pub contents: Vec<&'a RawValue>,
    /// System prompt.
    #[serde(default, borrow, alias = "system_instruction")]
    pub system_instruction: Option<&'a RawValue>,
    /// Generation settings.
    #[serde(default, alias = "generation_config")]
    pub generation_config: Option<GenerationView>,
}

/// The part of `generationConfig` the gateway reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationView {
    /// Output limit.
    #[serde(default, alias = "max_output_tokens")]
    pub max_output_tokens: Option<u64>,
}

impl RequestView<'_> {
    /// Output tokens the request may use.
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.generation_config.as_ref()?.max_output_tokens
    }

    /// A hash of the system instruction and the first user turn.
    pub fn session_key(&self) -> Option<String> {
        let first = self.contents.first()?;
        let system = self
            .system_instruction
            .map(RawValue::get)
            .unwrap_or_default();
        Some(format!(
            "hash:{}",
            super::openai::short_hash(&[system, first.get()])
        ))
    }
}

/// The Google RPC status name for an HTTP status.
pub fn status_name(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        413 => "INVALID_ARGUMENT",
        429 => "RESOURCE_EXHAUSTED",
        501 => "UNIMPLEMENTED",
        503 | 529 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ if status >= 500 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    }
}

/// Builds a Gemini error body.
pub fn error_body(message: &str, status: u16) -> Vec<u8> {
    json!({"error": {"code": status, "message": message, "status": status_name(status)}})
        .to_string()
        .into_bytes()
}

/// A chunk carrying an error, to end a stream that already started.
pub fn stream_error_chunk(message: &str) -> Vec<u8> {
    error_body(message, 500)
}

/// `error.status` and `error.message` of a Gemini error body.
pub fn error_parts(body: &[u8]) -> Option<(String, String)> {
    super::error_fields(body, "status")
}

/// Whether a 429 body names a per-day quota (`QuotaFailure` violations).
pub fn daily_quota(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    v.pointer("/error/details")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|d| {
            d.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with("QuotaFailure"))
        })
        .flat_map(|d| {
            d.get("violations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .any(|v| {
            v.get("quotaId")
                .and_then(Value::as_str)
                .is_some_and(|q| q.contains("PerDay"))
        })
}

/// Classifies one chunk of a Gemini stream for the retry decision.
pub fn classify(event: &Event) -> ChunkKind {
    let data = event.data.as_str();
    if data.starts_with("{\"error\"")
        || data.contains("\"error\":{") && !data.contains("\"candidates\"")
    {
        return ChunkKind::Error(
            error_parts(data.as_bytes())
                .map(|(_, m)| m)
                .unwrap_or_else(|| "upstream stream error".to_owned()),
        );
    }
    if data.contains("\"text\"")
        || data.contains("\"functionCall\"")
        || data.contains("\"finishReason\"")
    {
        ChunkKind::Content
    } else {
        ChunkKind::Preamble
    }
}

/// Usage carried by a Gemini chunk (the last one wins).
pub fn read_usage(event: &Event, usage: &mut Option<Usage>) {
    if !event.data.contains("sageMetadata") {
        return;
    }
    if let Ok(v) = serde_json::from_str::<Value>(&event.data)
        && let Some(u) = v.get("usageMetadata").or_else(|| v.get("usage_metadata"))
    {
        *usage = Some(generate::decode_usage(u));
    }
}

/// Whether a Gemini chunk ends the answer (it carries a finish reason).
pub fn is_last(event: &Event) -> bool {
    event.data.contains("\"finishReason\"")
}

/// Readies a same-protocol body that holds tagged signatures for Gemini:
/// parts with thinking signed by other providers are dropped, and other
/// providers' signatures on function calls are replaced by Gemini's skip
/// value. Returns None when nothing changed.
pub fn clean_foreign_signatures(body: &[u8]) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let mut changed = false;
    for content in v.get_mut("contents")?.as_array_mut()? {
        let Some(parts) = content.get_mut("parts").and_then(Value::as_array_mut) else {
            continue;
        };
        parts.retain_mut(|p| {
            let Some(sig) = p.get("thoughtSignature").and_then(Value::as_str) else {
                return true;
            };
            if signature::from_client(sig, Protocol::Gemini).origin == Protocol::Gemini {
                return true;
            }
            changed = true;
            if p.get("functionCall").is_some() {
                p["thoughtSignature"] = json!(generate::SKIP_SIGNATURE);
                true
            } else {
                false
            }
        });
    }
    if changed {
        serde_json::to_vec(&v).ok()
    } else {
        None
    }
}
