//! OpenAI Chat Completions ↔ the internal form: requests and whole responses.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::protocol::ir::{
    self, Effort, Finish, Media, Part, Reasoning, Request, ResponseFormat, Role, Source, Text,
    Thinking, Tool, ToolCall, ToolChoice, ToolResult, Usage,
};
use crate::protocol::{Protocol, TranslateError, signature};

#[derive(Deserialize)]
struct WireRequest {
    model: String,
    messages: Vec<WireMessage>,
    #[serde(default)]
    tools: Vec<WireTool>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    stop: Option<Value>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    presence_penalty: Option<f64>,
    #[serde(default)]
    frequency_penalty: Option<f64>,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    reasoning_effort: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    stream: Option<bool>,
}

#[derive(Deserialize)]
struct WireMessage {
    role: String,
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    tool_calls: Vec<WireToolCall>,
    #[serde(default)]
    tool_call_id: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
}

#[derive(Deserialize)]
struct WireToolCall {
    id: String,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize)]
struct WireTool {
    function: WireToolDef,
}

#[derive(Deserialize)]
struct WireToolDef {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    strict: Option<bool>,
}

/// Decodes a chat request from a client.
pub fn decode_request(body: &[u8]) -> Result<Request, TranslateError> {
    let w: WireRequest = serde_json::from_slice(body).map_err(TranslateError::Invalid)?;
    let mut req = Request {
        model: w.model,
        parallel_tool_calls: w.parallel_tool_calls,
        max_tokens: w.max_completion_tokens.or(w.max_tokens),
        temperature: w.temperature,
        top_p: w.top_p,
        seed: w.seed,
        presence_penalty: w.presence_penalty,
        frequency_penalty: w.frequency_penalty,
        user: w.user,
        n: w.n,
        stream: w.stream.unwrap_or(false),
        ..Request::default()
    };
    req.stop = match w.stop {
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(a)) => a
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    req.tools = w
        .tools
        .into_iter()
        .map(|t| Tool {
            name: t.function.name,
            description: t.function.description,
            parameters: t
                .function
                .parameters
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            strict: t.function.strict,
            cache: None,
        })
        .collect();
    req.tool_choice = w.tool_choice.as_ref().and_then(decode_tool_choice);
    req.response_format = w.response_format.as_ref().and_then(decode_response_format);
    if let Some(effort) = w.reasoning_effort.as_deref() {
        req.reasoning = Some(Reasoning {
            effort: Effort::parse(effort),
            disabled: effort == "none",
            ..Reasoning::default()
        });
    }
    for m in w.messages {
        match m.role.as_str() {
            "system" | "developer" => {
                for p in content_parts(m.content.as_ref())? {
                    if let Part::Text(t) = p {
                        req.system.push(t);
                    }
                }
            }
            "user" => {
                let parts = content_parts(m.content.as_ref())?;
                req.push(Role::User, parts);
            }
            "assistant" => {
                let mut parts = Vec::new();
                if let Some(r) = m.reasoning_content.filter(|r| !r.is_empty()) {
                    parts.push(Part::Thinking(Thinking {
                        text: r,
                        signature: None,
                        redacted: false,
                    }));
                }
                parts.extend(content_parts(m.content.as_ref())?);
                for c in m.tool_calls {
                    let (id, sig) = signature::split_id(&c.id);
                    parts.push(Part::ToolCall(ToolCall {
                        id,
                        name: c.function.name,
                        arguments: c.function.arguments,
                        signature: sig,
                    }));
                }
                req.push(Role::Assistant, parts);
            }
            "tool" | "function" => {
                let id = m.tool_call_id.ok_or_else(|| {
                    TranslateError::Bad("a tool message has no tool_call_id".into())
                })?;
                let (id, _) = signature::split_id(&id);
                let content = content_parts(m.content.as_ref())?;
                req.push(
                    Role::User,
                    vec![Part::ToolResult(ToolResult {
                        id,
                        name: None,
                        content,
                        is_error: false,
                        cache: None,
                    })],
                );
            }
            other => {
                return Err(TranslateError::Bad(format!(
                    "messages: unknown role `{other}`"
                )));
            }
        }
    }
    Ok(req)
}

fn content_parts(content: Option<&Value>) -> Result<Vec<Part>, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![Part::Text(Text::plain(s.clone()))]),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for item in items {
                let kind = item.get("type").and_then(Value::as_str).unwrap_or("text");
                match kind {
                    "text" | "input_text" | "output_text" => {
                        if let Some(t) = item.get("text").and_then(Value::as_str) {
                            out.push(Part::Text(Text::plain(t)));
                        }
                    }
                    "image_url" => {
                        let url = item
                            .pointer("/image_url/url")
                            .or_else(|| item.get("image_url"))
                            .and_then(Value::as_str)
                            .ok_or_else(|| {
                                TranslateError::Bad("an image_url part has no url".into())
                            })?;
                        out.push(Part::Image(Media {
                            source: Source::from_url(url)?,
                            cache: None,
                        }));
                    }
                    "file" => {
                        let data = item
                            .pointer("/file/file_data")
                            .and_then(Value::as_str)
                            .ok_or_else(|| {
                                TranslateError::Bad(
                                    "only inline file parts (file.file_data) can be translated"
                                        .into(),
                                )
                            })?;
                        out.push(Part::Document(Media {
                            source: Source::from_url(data)?,
                            cache: None,
                        }));
                    }
                    other => {
                        return Err(TranslateError::Bad(format!(
                            "content part type `{other}` cannot be translated"
                        )));
                    }
                }
            }
            Ok(out)
        }
        Some(_) => Err(TranslateError::Bad(
            "message content must be a string or an array of parts".into(),
        )),
    }
}

fn decode_tool_choice(v: &Value) -> Option<ToolChoice> {
    match v {
        Value::String(s) => match s.as_str() {
            "none" => Some(ToolChoice::None),
            "required" => Some(ToolChoice::Required),
            _ => Some(ToolChoice::Auto),
        },
        Value::Object(_) => v
            .pointer("/function/name")
            .or_else(|| v.get("name"))
            .and_then(Value::as_str)
            .map(|n| ToolChoice::Named(n.to_owned())),
        _ => None,
    }
}

fn decode_response_format(v: &Value) -> Option<ResponseFormat> {
    match v.get("type").and_then(Value::as_str)? {
        "json_object" => Some(ResponseFormat::JsonObject),
        "json_schema" => Some(ResponseFormat::JsonSchema {
            name: v
                .pointer("/json_schema/name")
                .and_then(Value::as_str)
                .unwrap_or("response")
                .to_owned(),
            schema: v
                .pointer("/json_schema/schema")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"})),
        }),
        _ => None,
    }
}

/// How the target names its output limit: `max_completion_tokens` on
/// OpenAI itself, `max_tokens` on OpenAI-compatible servers (most do not
/// know the newer name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// api.openai.com.
    OpenAi,
    /// Any OpenAI-compatible server.
    Compatible,
}

/// Encodes a request for an OpenAI-protocol account.
pub fn encode_request(req: &Request, dialect: Dialect) -> Result<Value, TranslateError> {
    req.check_single_choice(Protocol::OpenAi)?;
    let mut messages = Vec::new();
    if !req.system.is_empty() {
        messages.push(json!({"role": "system", "content": text_content(&req.system)}));
    }
    for m in &req.messages {
        match m.role {
            Role::User => encode_user(&m.parts, &mut messages)?,
            Role::Assistant => messages.push(encode_assistant(&m.parts)),
        }
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(req.model));
    out.insert("messages".into(), Value::Array(messages));
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut f = json!({"name": t.name, "parameters": t.parameters});
                if let Some(d) = &t.description {
                    f["description"] = json!(d);
                }
                if let Some(s) = t.strict {
                    f["strict"] = json!(s);
                }
                json!({"type": "function", "function": f})
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
        if let Some(p) = req.parallel_tool_calls {
            out.insert("parallel_tool_calls".into(), json!(p));
        }
    }
    if let Some(choice) = &req.tool_choice {
        out.insert(
            "tool_choice".into(),
            match choice {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Named(n) => json!({"type": "function", "function": {"name": n}}),
            },
        );
    }
    if let Some(max) = req.max_tokens {
        let key = match dialect {
            Dialect::OpenAi => "max_completion_tokens",
            Dialect::Compatible => "max_tokens",
        };
        out.insert(key.into(), json!(max));
    }
    insert_opt(&mut out, "temperature", req.temperature);
    insert_opt(&mut out, "top_p", req.top_p);
    insert_opt(&mut out, "seed", req.seed);
    insert_opt(&mut out, "presence_penalty", req.presence_penalty);
    insert_opt(&mut out, "frequency_penalty", req.frequency_penalty);
    if !req.stop.is_empty() {
        let capped: Vec<&String> = req.stop.iter().take(4).collect();
        out.insert("stop".into(), json!(capped));
    }
    if let Some(format) = &req.response_format {
        out.insert(
            "response_format".into(),
            match format {
                ResponseFormat::JsonObject => json!({"type": "json_object"}),
                ResponseFormat::JsonSchema { name, schema } => {
                    json!({"type": "json_schema", "json_schema": {"name": name, "schema": schema}})
                }
            },
        );
    }
    if let Some(r) = req.reasoning.as_ref().filter(|r| !r.disabled)
        && let Some(effort) = r.effort_level()
    {
        out.insert("reasoning_effort".into(), json!(effort.as_str()));
    }
    if let Some(u) = &req.user {
        out.insert("user".into(), json!(u));
    }
    if req.stream {
        out.insert("stream".into(), json!(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(Value::Object(out))
}

fn insert_opt<T: serde::Serialize>(out: &mut Map<String, Value>, key: &str, v: Option<T>) {
    if let Some(v) = v {
        out.insert(key.into(), json!(v));
    }
}

fn text_content(texts: &[Text]) -> Value {
    match texts {
        [one] => json!(one.text),
        many => Value::Array(
            many.iter()
                .map(|t| json!({"type": "text", "text": t.text}))
                .collect(),
        ),
    }
}

fn media_part(media: &Media, document: bool) -> Result<Value, TranslateError> {
    let url = media.source.to_url().ok_or_else(|| {
        TranslateError::unsupported("file references (Gemini fileData)", Protocol::OpenAi)
    })?;
    if document {
        return Ok(json!({"type": "file", "file": {"file_data": url}}));
    }
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

fn encode_user(parts: &[Part], messages: &mut Vec<Value>) -> Result<(), TranslateError> {
    let mut rest = Vec::new();
    for p in parts {
        match p {
            Part::ToolResult(r) => {
                let mut texts = Vec::new();
                for c in &r.content {
                    match c {
                        Part::Text(t) => texts.push(json!({"type": "text", "text": t.text})),
                        // tool messages carry only text: images go to the
                        // user message that follows
                        Part::Image(m) => rest.push(media_part(m, false)?),
                        _ => {}
                    }
                }
                let content = match texts.as_slice() {
                    [] => json!(""),
                    [one] => one["text"].clone(),
                    _ => Value::Array(texts),
                };
                messages.push(json!({"role": "tool", "tool_call_id": r.id, "content": content}));
            }
            Part::Text(t) => rest.push(json!({"type": "text", "text": t.text})),
            Part::Image(m) => rest.push(media_part(m, false)?),
            Part::Document(m) => rest.push(media_part(m, true)?),
            Part::ToolCall(_) | Part::Thinking(_) => {}
        }
    }
    if !rest.is_empty() {
        let content = match rest.as_slice() {
            [one] if one["type"] == "text" => one["text"].clone(),
            _ => Value::Array(rest),
        };
        messages.push(json!({"role": "user", "content": content}));
    }
    Ok(())
}

fn encode_assistant(parts: &[Part]) -> Value {
    let mut text = String::new();
    let mut calls = Vec::new();
    for p in parts {
        match p {
            Part::Text(t) => text.push_str(&t.text),
            Part::ToolCall(c) => calls.push(json!({
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments}
            })),
            _ => {}
        }
    }
    let mut m = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
    if !calls.is_empty() {
        m["tool_calls"] = Value::Array(calls);
    }
    m
}

/// Decodes a whole chat completion from an upstream.
pub fn decode_response(body: &[u8]) -> Result<ir::Response, serde_json::Error> {
    let v: Value = serde_json::from_slice(body)?;
    let message = v
        .pointer("/choices/0/message")
        .cloned()
        .unwrap_or(Value::Null);
    let mut content = Vec::new();
    for key in ["reasoning_content", "reasoning"] {
        if let Some(r) = message
            .get(key)
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
        {
            content.push(Part::Thinking(Thinking {
                text: r.to_owned(),
                signature: None,
                redacted: false,
            }));
            break;
        }
    }
    for key in ["content", "refusal"] {
        if let Some(t) = message
            .get(key)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            content.push(Part::Text(Text::plain(t)));
        }
    }
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (id, sig) = signature::split_id(call.get("id").and_then(Value::as_str).unwrap_or(""));
        content.push(Part::ToolCall(ToolCall {
            id,
            name: str_at(call, "/function/name"),
            arguments: str_at(call, "/function/arguments"),
            signature: sig,
        }));
    }
    Ok(ir::Response {
        id: str_at(&v, "/id"),
        model: str_at(&v, "/model"),
        content,
        finish: decode_finish(
            v.pointer("/choices/0/finish_reason")
                .and_then(Value::as_str),
        ),
        usage: v.get("usage").map(decode_usage).unwrap_or_default(),
    })
}

fn str_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Maps `finish_reason`.
pub fn decode_finish(reason: Option<&str>) -> Finish {
    match reason {
        None | Some("stop") => Finish::Stop,
        Some("length") => Finish::Length,
        Some("tool_calls" | "function_call") => Finish::ToolUse,
        Some("content_filter") => Finish::Filtered,
        Some(other) => Finish::Other(other.to_owned()),
    }
}

/// The `finish_reason` for a finish.
pub fn encode_finish(finish: &Finish) -> &'static str {
    match finish {
        Finish::Stop | Finish::StopSequence(_) | Finish::Other(_) => "stop",
        Finish::Length => "length",
        Finish::ToolUse => "tool_calls",
        Finish::Filtered => "content_filter",
    }
}

/// Reads an OpenAI `usage` object.
/// `usage` read straight into counts, without a JSON tree: it is read on
/// every answer. Anything this typed reading refuses (a count that is not a
/// whole number, a duplicate key) is read by [`decode_usage`] instead, so
/// the result is the same either way.
#[derive(Deserialize)]
struct UsageView {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<CachedView>,
    #[serde(default)]
    completion_tokens_details: Option<ReasoningView>,
}

#[derive(Deserialize)]
struct CachedView {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ReasoningView {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

/// Reads a `usage` value; `None` unless it is an object.
pub fn decode_usage_raw(raw: &serde_json::value::RawValue) -> Option<Usage> {
    // serde would also read an array into the struct, field by field
    let object = raw.get().starts_with('{');
    if let Some(u) = object
        .then(|| serde_json::from_str::<UsageView>(raw.get()).ok())
        .flatten()
    {
        return Some(Usage {
            input: u.prompt_tokens.unwrap_or(0),
            cached_input: u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            cache_write: 0,
            output: u.completion_tokens.unwrap_or(0),
            reasoning: u
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        });
    }
    let v: Value = serde_json::from_str(raw.get()).ok()?;
    v.is_object().then(|| decode_usage(&v))
}

pub fn decode_usage(u: &Value) -> Usage {
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input: n("/prompt_tokens"),
        cached_input: n("/prompt_tokens_details/cached_tokens"),
        cache_write: 0,
        output: n("/completion_tokens"),
        reasoning: n("/completion_tokens_details/reasoning_tokens"),
    }
}

/// An OpenAI `usage` object.
pub fn encode_usage(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.input,
        "completion_tokens": u.output,
        "total_tokens": u.total(),
        "prompt_tokens_details": {"cached_tokens": u.cached_input},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning}
    })
}

/// Encodes a whole chat completion for a client.
pub fn encode_response(r: &ir::Response) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for p in &r.content {
        match p {
            Part::Text(t) => text.push_str(&t.text),
            Part::Thinking(t) => reasoning.push_str(&t.text),
            Part::ToolCall(c) => calls.push(json!({
                "id": signature::id_with(&c.id, c.signature.as_ref()),
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments}
            })),
            _ => {}
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) },
        "refusal": null
    });
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({
        "id": response_id(&r.id),
        "object": "chat.completion",
        "created": now_secs(),
        "model": r.model,
        "choices": [{"index": 0, "message": message, "finish_reason": encode_finish(&r.finish), "logprobs": null}],
        "usage": encode_usage(&r.usage)
    })
}

/// A chat completion id for a response whose upstream gave another kind.
pub fn response_id(upstream: &str) -> String {
    if upstream.starts_with("chatcmpl-") {
        upstream.to_owned()
    } else {
        format!("chatcmpl-{upstream}")
    }
}

/// Seconds since the epoch, for `created`.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
