//! Anthropic Messages ↔ the internal form: requests and whole responses.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::protocol::ir::{
    self, Finish, Media, Part, Reasoning, Request, Role, Source, Text, Thinking, Tool, ToolCall,
    ToolChoice, ToolResult, Usage,
};
use crate::protocol::{Protocol, TranslateError, signature};

/// `max_tokens` sent when a client of another protocol gave no limit
/// (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;
/// Smallest thinking budget Anthropic accepts.
const MIN_THINKING_BUDGET: u64 = 1024;

#[derive(Deserialize)]
struct WireRequest {
    model: String,
    max_tokens: Option<u64>,
    messages: Vec<WireMessage>,
    #[serde(default)]
    system: Option<Value>,
    #[serde(default)]
    tools: Vec<Value>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    top_k: Option<u64>,
    #[serde(default)]
    stop_sequences: Vec<String>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    thinking: Option<Value>,
    #[serde(default)]
    stream: Option<bool>,
}

#[derive(Deserialize)]
struct WireMessage {
    role: String,
    content: Value,
}

/// Decodes a Messages request from a client.
pub fn decode_request(body: &[u8]) -> Result<Request, TranslateError> {
    let w: WireRequest = serde_json::from_slice(body).map_err(TranslateError::Invalid)?;
    let mut req = Request {
        model: w.model,
        max_tokens: w.max_tokens,
        temperature: w.temperature,
        top_p: w.top_p,
        top_k: w.top_k,
        stop: w.stop_sequences,
        stream: w.stream.unwrap_or(false),
        user: w
            .metadata
            .as_ref()
            .and_then(|m| m.get("user_id"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        ..Request::default()
    };
    match w.system {
        Some(Value::String(s)) if !s.is_empty() => req.system.push(Text::plain(s)),
        Some(Value::Array(blocks)) => {
            for b in blocks {
                if let Some(t) = b.get("text").and_then(Value::as_str) {
                    req.system.push(Text {
                        text: t.to_owned(),
                        cache: b.get("cache_control").cloned(),
                    });
                }
            }
        }
        _ => {}
    }
    for t in w.tools {
        let kind = t.get("type").and_then(Value::as_str).unwrap_or("custom");
        if kind != "custom" {
            return Err(TranslateError::Bad(format!(
                "server tool `{kind}` runs only on Anthropic and cannot be translated"
            )));
        }
        req.tools.push(Tool {
            name: t
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            description: t
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            parameters: t
                .get("input_schema")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"})),
            strict: None,
            cache: t.get("cache_control").cloned(),
        });
    }
    if let Some(choice) = &w.tool_choice {
        req.tool_choice = match choice.get("type").and_then(Value::as_str) {
            Some("any") => Some(ToolChoice::Required),
            Some("none") => Some(ToolChoice::None),
            Some("tool") => choice
                .get("name")
                .and_then(Value::as_str)
                .map(|n| ToolChoice::Named(n.to_owned())),
            _ => Some(ToolChoice::Auto),
        };
        if choice
            .get("disable_parallel_tool_use")
            .and_then(Value::as_bool)
            == Some(true)
        {
            req.parallel_tool_calls = Some(false);
        }
    }
    if let Some(t) = &w.thinking {
        match t.get("type").and_then(Value::as_str) {
            Some("enabled") => {
                req.reasoning = Some(Reasoning {
                    budget: t.get("budget_tokens").and_then(Value::as_u64),
                    include_thoughts: true,
                    ..Reasoning::default()
                });
            }
            Some("disabled") => {
                req.reasoning = Some(Reasoning {
                    disabled: true,
                    ..Reasoning::default()
                });
            }
            _ => {}
        }
    }
    for m in w.messages {
        let role = match m.role.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(TranslateError::Bad(format!(
                    "messages: role must be user or assistant, not `{other}`"
                )));
            }
        };
        let parts = decode_content(&m.content)?;
        req.push(role, parts);
    }
    Ok(req)
}

fn decode_content(content: &Value) -> Result<Vec<Part>, TranslateError> {
    match content {
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![Part::Text(Text::plain(s.clone()))]),
        Value::Array(blocks) => blocks
            .iter()
            .map(decode_block)
            .filter_map(Result::transpose)
            .collect(),
        _ => Err(TranslateError::Bad(
            "message content must be a string or an array of blocks".into(),
        )),
    }
}

fn decode_block(b: &Value) -> Result<Option<Part>, TranslateError> {
    let s = |k: &str| {
        b.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let cache = b.get("cache_control").cloned();
    Ok(Some(
        match b.get("type").and_then(Value::as_str).unwrap_or("") {
            "text" => Part::Text(Text {
                text: s("text"),
                cache,
            }),
            "image" => Part::Image(Media {
                source: decode_source(b.get("source"))?,
                cache,
            }),
            "document" => Part::Document(Media {
                source: decode_source(b.get("source"))?,
                cache,
            }),
            "tool_use" => {
                let (id, sig) = signature::split_id(&s("id"));
                Part::ToolCall(ToolCall {
                    id,
                    name: s("name"),
                    arguments: b
                        .get("input")
                        .map(Value::to_string)
                        .unwrap_or_else(|| "{}".into()),
                    signature: sig,
                })
            }
            "tool_result" => {
                let (id, _) = signature::split_id(&s("tool_use_id"));
                let content = match b.get("content") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(c) => decode_content(c)?,
                };
                Part::ToolResult(ToolResult {
                    id,
                    name: None,
                    content,
                    is_error: b.get("is_error").and_then(Value::as_bool).unwrap_or(false),
                    cache,
                })
            }
            "thinking" => Part::Thinking(Thinking {
                text: s("thinking"),
                signature: b
                    .get("signature")
                    .and_then(Value::as_str)
                    .filter(|v| !v.is_empty())
                    .map(|v| signature::from_client(v, Protocol::Anthropic)),
                redacted: false,
            }),
            "redacted_thinking" => Part::Thinking(Thinking {
                text: String::new(),
                signature: Some(signature::from_client(&s("data"), Protocol::Anthropic)),
                redacted: true,
            }),
            other => {
                return Err(TranslateError::Bad(format!(
                    "content block type `{other}` cannot be translated"
                )));
            }
        },
    ))
}

fn decode_source(source: Option<&Value>) -> Result<Source, TranslateError> {
    let source =
        source.ok_or_else(|| TranslateError::Bad("an image block has no source".into()))?;
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let data = source
                .get("data")
                .and_then(Value::as_str)
                .unwrap_or_default();
            ir::check_base64(data)?;
            Ok(Source::Base64 {
                media_type: source
                    .get("media_type")
                    .and_then(Value::as_str)
                    .unwrap_or("application/octet-stream")
                    .to_owned(),
                data: data.to_owned(),
            })
        }
        Some("url") => Ok(Source::Url(
            source
                .get("url")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        )),
        other => Err(TranslateError::Bad(format!(
            "media source type `{}` cannot be translated",
            other.unwrap_or("missing")
        ))),
    }
}

/// Encodes a request for an Anthropic account.
pub fn encode_request(req: &Request) -> Result<Value, TranslateError> {
    req.check_single_choice(Protocol::Anthropic)?;
    if req.response_format.is_some() {
        return Err(TranslateError::unsupported(
            "response_format (JSON mode and response schemas)",
            Protocol::Anthropic,
        ));
    }
    let mut messages: Vec<Value> = Vec::new();
    for m in &req.messages {
        let role = match m.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        let blocks = encode_blocks(m.role, &m.parts)?;
        if blocks.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(a) = last["content"].as_array_mut() {
                    a.extend(blocks);
                }
            }
            _ => messages.push(json!({"role": role, "content": blocks})),
        }
    }
    for m in &mut messages {
        // tool results first in a user turn, as Anthropic requires
        if m["role"] == "user"
            && let Some(blocks) = m["content"].as_array_mut()
        {
            blocks.sort_by_key(|b| b["type"] != "tool_result");
        }
    }
    if messages.first().is_some_and(|m| m["role"] != "user") {
        messages.insert(
            0,
            json!({"role": "user", "content": [{"type": "text", "text": "."}]}),
        );
    }

    let mut out = Map::new();
    out.insert("model".into(), json!(req.model));
    let mut max_tokens = req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    let thinking = thinking_budget(req, &messages, max_tokens);
    if !req.system.is_empty() {
        let system: Vec<Value> = req
            .system
            .iter()
            .map(|t| {
                let mut b = json!({"type": "text", "text": t.text});
                if let Some(c) = &t.cache {
                    b["cache_control"] = c.clone();
                }
                b
            })
            .collect();
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("messages".into(), Value::Array(messages));
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut v = json!({"name": t.name, "input_schema": t.parameters});
                if let Some(d) = &t.description {
                    v["description"] = json!(d);
                }
                if let Some(c) = &t.cache {
                    v["cache_control"] = c.clone();
                }
                v
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
    }
    let mut choice = match &req.tool_choice {
        None => None,
        Some(ToolChoice::Auto) => Some(json!({"type": "auto"})),
        Some(ToolChoice::None) => Some(json!({"type": "none"})),
        Some(ToolChoice::Required) => Some(json!({"type": "any"})),
        Some(ToolChoice::Named(n)) => Some(json!({"type": "tool", "name": n})),
    };
    if req.parallel_tool_calls == Some(false) && !req.tools.is_empty() {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        c["disable_parallel_tool_use"] = json!(true);
    }
    if let Some(c) = choice {
        out.insert("tool_choice".into(), c);
    }
    match thinking {
        Some(budget) => {
            max_tokens = max_tokens.max(budget + 1);
            out.insert(
                "thinking".into(),
                json!({"type": "enabled", "budget_tokens": budget}),
            );
            // thinking allows no temperature change and top_p only in [0.95, 1]
            if let Some(p) = req.top_p.filter(|p| (0.95..=1.0).contains(p)) {
                out.insert("top_p".into(), json!(p));
            }
        }
        None => {
            if let Some(t) = req.temperature {
                out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
            }
            if let Some(p) = req.top_p {
                out.insert("top_p".into(), json!(p));
            }
            if let Some(k) = req.top_k {
                out.insert("top_k".into(), json!(k));
            }
        }
    }
    out.insert("max_tokens".into(), json!(max_tokens));
    if !req.stop.is_empty() {
        out.insert("stop_sequences".into(), json!(req.stop));
    }
    if let Some(u) = &req.user {
        out.insert("metadata".into(), json!({"user_id": u}));
    }
    if req.stream {
        out.insert("stream".into(), json!(true));
    }
    Ok(Value::Object(out))
}

/// The thinking budget to send, or None when thinking must be off for this
/// request: not asked for, a forced tool choice, a budget that does not fit
/// under `max_tokens`, or a tool loop whose last assistant turn does not
/// start with Anthropic's own signed thinking (which Anthropic requires).
fn thinking_budget(req: &Request, messages: &[Value], max_tokens: u64) -> Option<u64> {
    let r = req.reasoning.as_ref().filter(|r| !r.disabled)?;
    let budget = r.budget_tokens()?.max(MIN_THINKING_BUDGET);
    if matches!(
        req.tool_choice,
        Some(ToolChoice::Required | ToolChoice::Named(_))
    ) {
        tracing::debug!("thinking turned off for Anthropic: a forced tool choice forbids it");
        return None;
    }
    let budget = if budget >= max_tokens {
        if max_tokens <= MIN_THINKING_BUDGET {
            tracing::debug!("thinking turned off for Anthropic: max_tokens leaves no room");
            return None;
        }
        max_tokens - 1
    } else {
        budget
    };
    let in_tool_loop = messages
        .last()
        .is_some_and(|m| m["role"] == "user" && m["content"][0]["type"] == "tool_result");
    if in_tool_loop
        && let Some(last_assistant) = messages.iter().rev().find(|m| m["role"] == "assistant")
    {
        let first = last_assistant["content"][0]["type"].as_str();
        if !matches!(first, Some("thinking" | "redacted_thinking")) {
            tracing::debug!(
                "thinking turned off for Anthropic: the tool loop's last assistant turn has no Anthropic thinking"
            );
            return None;
        }
    }
    Some(budget)
}

fn encode_blocks(role: Role, parts: &[Part]) -> Result<Vec<Value>, TranslateError> {
    let mut out = Vec::new();
    for p in parts {
        let block = match p {
            Part::Text(t) if t.text.is_empty() => continue,
            Part::Text(t) => with_cache(json!({"type": "text", "text": t.text}), &t.cache),
            Part::Image(m) => with_cache(
                json!({"type": "image", "source": encode_source(&m.source)?}),
                &m.cache,
            ),
            Part::Document(m) => with_cache(
                json!({"type": "document", "source": encode_source(&m.source)?}),
                &m.cache,
            ),
            Part::ToolCall(c) if role == Role::Assistant => json!({
                "type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments_object()
            }),
            Part::ToolCall(_) => continue,
            Part::ToolResult(r) => {
                let mut content = Vec::new();
                for c in &r.content {
                    match c {
                        Part::Text(t) if !t.text.is_empty() => {
                            content.push(json!({"type": "text", "text": t.text}));
                        }
                        Part::Image(m) => {
                            content.push(
                                json!({"type": "image", "source": encode_source(&m.source)?}),
                            );
                        }
                        _ => {}
                    }
                }
                let mut b = json!({"type": "tool_result", "tool_use_id": r.id, "content": content});
                if r.is_error {
                    b["is_error"] = json!(true);
                }
                with_cache(b, &r.cache)
            }
            Part::Thinking(t) => match &t.signature {
                // only Anthropic's own, signed thinking goes back to Anthropic
                Some(sig) if sig.origin == Protocol::Anthropic && !sig.value.is_empty() => {
                    if t.redacted {
                        json!({"type": "redacted_thinking", "data": sig.value})
                    } else {
                        json!({"type": "thinking", "thinking": t.text, "signature": sig.value})
                    }
                }
                _ => continue,
            },
        };
        out.push(block);
    }
    // thinking blocks lead an assistant turn
    if role == Role::Assistant {
        out.sort_by_key(|b| !matches!(b["type"].as_str(), Some("thinking" | "redacted_thinking")));
    }
    Ok(out)
}

fn with_cache(mut block: Value, cache: &Option<Value>) -> Value {
    if let Some(c) = cache {
        block["cache_control"] = c.clone();
    }
    block
}

fn encode_source(s: &Source) -> Result<Value, TranslateError> {
    match s {
        Source::Base64 { media_type, data } => {
            Ok(json!({"type": "base64", "media_type": media_type, "data": data}))
        }
        Source::Url(url) => Ok(json!({"type": "url", "url": url})),
        Source::File { .. } => Err(TranslateError::unsupported(
            "file references (Gemini fileData)",
            Protocol::Anthropic,
        )),
    }
}

/// Decodes a whole Messages response from an upstream.
pub fn decode_response(body: &[u8]) -> Result<ir::Response, serde_json::Error> {
    let v: Value = serde_json::from_slice(body)?;
    let mut content = Vec::new();
    for b in v
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Ok(Some(p)) = decode_block(b) {
            content.push(p);
        }
    }
    Ok(ir::Response {
        id: v
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        model: v
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        content,
        finish: decode_finish(
            v.get("stop_reason").and_then(Value::as_str),
            v.get("stop_sequence").and_then(Value::as_str),
        ),
        usage: v.get("usage").map(decode_usage).unwrap_or_default(),
    })
}

/// Maps `stop_reason`.
pub fn decode_finish(reason: Option<&str>, sequence: Option<&str>) -> Finish {
    match reason {
        None | Some("end_turn") => Finish::Stop,
        Some("stop_sequence") => Finish::StopSequence(sequence.map(str::to_owned)),
        Some("max_tokens" | "model_context_window_exceeded") => Finish::Length,
        Some("tool_use") => Finish::ToolUse,
        Some("refusal") => Finish::Filtered,
        Some(other) => Finish::Other(other.to_owned()),
    }
}

/// `stop_reason` and `stop_sequence` for a finish.
pub fn encode_finish(f: &Finish) -> (&'static str, Option<&str>) {
    match f {
        Finish::Stop | Finish::Other(_) => ("end_turn", None),
        Finish::StopSequence(s) => ("stop_sequence", s.as_deref()),
        Finish::Length => ("max_tokens", None),
        Finish::ToolUse => ("tool_use", None),
        Finish::Filtered => ("refusal", None),
    }
}

/// Reads an Anthropic `usage` object (input there excludes cache reads and writes).
pub fn decode_usage(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("cache_read_input_tokens");
    let written = n("cache_creation_input_tokens");
    Usage {
        input: n("input_tokens") + cached + written,
        cached_input: cached,
        cache_write: written,
        output: n("output_tokens"),
        reasoning: 0,
    }
}

/// An Anthropic `usage` object.
pub fn encode_usage(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input.saturating_sub(u.cached_input).saturating_sub(u.cache_write),
        "output_tokens": u.output,
        "cache_creation_input_tokens": u.cache_write,
        "cache_read_input_tokens": u.cached_input
    })
}

/// The content block for a part, as an Anthropic client sees it.
pub fn encode_block_for_client(p: &Part) -> Option<Value> {
    Some(match p {
        Part::Text(t) => json!({"type": "text", "text": t.text}),
        Part::Thinking(t) if t.redacted => json!({
            "type": "redacted_thinking",
            "data": t.signature.as_ref().map(|s| signature::for_client(s, Protocol::Anthropic)).unwrap_or_default()
        }),
        Part::Thinking(t) => json!({
            "type": "thinking",
            "thinking": t.text,
            "signature": t.signature.as_ref().map(|s| signature::for_client(s, Protocol::Anthropic)).unwrap_or_default()
        }),
        Part::ToolCall(c) => json!({
            "type": "tool_use",
            "id": signature::id_with(&c.id, c.signature.as_ref()),
            "name": c.name,
            "input": c.arguments_object()
        }),
        _ => return None,
    })
}

/// Encodes a whole Messages response for a client.
pub fn encode_response(r: &ir::Response) -> Value {
    let content: Vec<Value> = r
        .content
        .iter()
        .filter_map(encode_block_for_client)
        .collect();
    let (reason, sequence) = encode_finish(&r.finish);
    json!({
        "id": message_id(&r.id),
        "type": "message",
        "role": "assistant",
        "model": r.model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": encode_usage(&r.usage)
    })
}

/// A message id for a response whose upstream gave another kind.
pub fn message_id(upstream: &str) -> String {
    if upstream.starts_with("msg_") {
        upstream.to_owned()
    } else {
        format!(
            "msg_{}",
            upstream.replace(|c: char| !c.is_ascii_alphanumeric(), "")
        )
    }
}
