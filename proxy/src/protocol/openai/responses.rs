//! The OpenAI Responses API ↔ the internal form: requests from clients,
//! whole responses and streams for clients, and what the pass-through path
//! reads of an upstream's Responses stream.

use serde_json::{Value, json};

use super::chat::now_secs;
use crate::protocol::ir::{
    self, Block, Effort, Event, Finish, Media, Part, Reasoning, Request, ResponseFormat, Role,
    Source, Text, Thinking, Tool, ToolCall, ToolChoice, ToolResult, Usage,
};
use crate::protocol::sse;
use crate::protocol::stream::ChunkKind;
use crate::protocol::{Protocol, TranslateError, signature};

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// Decodes a Responses request from a client.
pub fn decode_request(body: &[u8]) -> Result<Request, TranslateError> {
    let v: Value = serde_json::from_slice(body).map_err(TranslateError::Invalid)?;
    let mut req = Request {
        model: s(&v, "model").to_owned(),
        max_tokens: v.get("max_output_tokens").and_then(Value::as_u64),
        temperature: v.get("temperature").and_then(Value::as_f64),
        top_p: v.get("top_p").and_then(Value::as_f64),
        parallel_tool_calls: v.get("parallel_tool_calls").and_then(Value::as_bool),
        user: v
            .get("user")
            .or_else(|| v.get("safety_identifier"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        stream: v.get("stream").and_then(Value::as_bool).unwrap_or(false),
        ..Request::default()
    };
    if let Some(i) = v
        .get("instructions")
        .and_then(Value::as_str)
        .filter(|i| !i.is_empty())
    {
        req.system.push(Text::plain(i));
    }
    match v.get("input") {
        Some(Value::String(text)) => {
            req.push(Role::User, vec![Part::Text(Text::plain(text.clone()))])
        }
        Some(Value::Array(items)) => {
            for item in items {
                decode_item(item, &mut req)?;
            }
        }
        _ => {}
    }
    for t in v
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if s(t, "type") != "function" {
            return Err(TranslateError::Bad(format!(
                "built-in tool `{}` runs only on OpenAI and cannot be translated",
                s(t, "type")
            )));
        }
        req.tools.push(Tool {
            name: s(t, "name").to_owned(),
            description: t
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            parameters: t
                .get("parameters")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            strict: t.get("strict").and_then(Value::as_bool),
            cache: None,
        });
    }
    req.tool_choice = match v.get("tool_choice") {
        Some(Value::String(c)) => Some(match c.as_str() {
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            _ => ToolChoice::Auto,
        }),
        Some(c @ Value::Object(_)) => Some(ToolChoice::Named(s(c, "name").to_owned())),
        _ => None,
    };
    if let Some(r) = v.get("reasoning").filter(|r| r.is_object()) {
        let effort = r.get("effort").and_then(Value::as_str);
        req.reasoning = Some(Reasoning {
            effort: effort.and_then(Effort::parse),
            include_thoughts: r.get("summary").is_some_and(|s| !s.is_null()),
            disabled: effort == Some("none"),
            ..Reasoning::default()
        });
    }
    if let Some(f) = v.pointer("/text/format") {
        req.response_format = match s(f, "type") {
            "json_object" => Some(ResponseFormat::JsonObject),
            "json_schema" => Some(ResponseFormat::JsonSchema {
                name: s(f, "name").to_owned(),
                schema: f
                    .get("schema")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object"})),
            }),
            _ => None,
        };
    }
    Ok(req)
}

fn decode_item(item: &Value, req: &mut Request) -> Result<(), TranslateError> {
    let kind = item
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    match kind {
        "message" => {
            let parts = decode_content(item.get("content"))?;
            match s(item, "role") {
                "system" | "developer" => {
                    for p in parts {
                        if let Part::Text(t) = p {
                            req.system.push(t);
                        }
                    }
                }
                "assistant" => req.push(Role::Assistant, parts),
                _ => req.push(Role::User, parts),
            }
        }
        "function_call" => {
            let (id, sig) = signature::split_id(s(item, "call_id"));
            req.push(
                Role::Assistant,
                vec![Part::ToolCall(ToolCall {
                    id,
                    name: s(item, "name").to_owned(),
                    arguments: s(item, "arguments").to_owned(),
                    signature: sig,
                })],
            );
        }
        "function_call_output" => {
            let (id, _) = signature::split_id(s(item, "call_id"));
            let content = match item.get("output") {
                Some(Value::String(t)) => vec![Part::Text(Text::plain(t.clone()))],
                other => decode_content(other)?,
            };
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
        "reasoning" => {
            let text: String = item
                .get("summary")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| s(p, "text"))
                .collect::<Vec<_>>()
                .join("\n");
            let signature = item
                .get("encrypted_content")
                .and_then(Value::as_str)
                .filter(|e| !e.is_empty())
                .map(|e| signature::from_client(e, Protocol::OpenAi));
            req.push(
                Role::Assistant,
                vec![Part::Thinking(Thinking {
                    text,
                    signature,
                    redacted: false,
                })],
            );
        }
        other => {
            return Err(TranslateError::Bad(format!(
                "input item type `{other}` cannot be translated"
            )));
        }
    }
    Ok(())
}

fn decode_content(content: Option<&Value>) -> Result<Vec<Part>, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(t)) => Ok(vec![Part::Text(Text::plain(t.clone()))]),
        Some(Value::Array(parts)) => {
            let mut out = Vec::new();
            for p in parts {
                match s(p, "type") {
                    "input_text" | "output_text" | "text" => {
                        out.push(Part::Text(Text::plain(s(p, "text"))))
                    }
                    "refusal" => out.push(Part::Text(Text::plain(s(p, "refusal")))),
                    "input_image" => {
                        let url = p.get("image_url").and_then(Value::as_str).ok_or_else(|| {
                            TranslateError::Bad(
                                "only input_image parts with an image_url can be translated".into(),
                            )
                        })?;
                        out.push(Part::Image(Media {
                            source: Source::from_url(url)?,
                            cache: None,
                        }));
                    }
                    "input_file" => {
                        let data = p.get("file_data").and_then(Value::as_str).ok_or_else(|| {
                            TranslateError::Bad(
                                "only input_file parts with file_data can be translated".into(),
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
            "content must be a string or a list of parts".into(),
        )),
    }
}

/// A Responses `usage` object.
pub fn encode_usage(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input,
        "input_tokens_details": {"cached_tokens": u.cached_input},
        "output_tokens": u.output,
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": u.total()
    })
}

/// Reads a Responses `usage` object.
pub fn decode_usage(u: &Value) -> Usage {
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input: n("/input_tokens"),
        cached_input: n("/input_tokens_details/cached_tokens"),
        cache_write: 0,
        output: n("/output_tokens"),
        reasoning: n("/output_tokens_details/reasoning_tokens"),
    }
}

/// A response id for a response whose upstream gave another kind.
pub fn response_id(upstream: &str) -> String {
    let base: String = upstream
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("resp_{base}")
}

/// The id of output item `index` of response `rid`, of kind `prefix`
/// (the same in a stream and in its final response).
fn item_id(prefix: &str, rid: &str, index: usize) -> String {
    format!("{prefix}_{}_{index}", rid.trim_start_matches("resp_"))
}

/// The output items of a response, in order: reasoning, messages, calls.
fn output_items(r: &ir::Response, rid: &str) -> Vec<Value> {
    let mut items: Vec<Value> = Vec::new();
    for part in &r.content {
        let index = items.len();
        match part {
            Part::Thinking(t) => {
                items.push(reasoning_item(rid, index, &t.text, t.signature.as_ref()))
            }
            Part::Text(t) => {
                if let Some(last) = items.last_mut()
                    && last["type"] == "message"
                    && let Some(existing) = last["content"][0]["text"].as_str()
                {
                    let joined = format!("{existing}{}", t.text);
                    last["content"][0]["text"] = json!(joined);
                    continue;
                }
                items.push(message_item(rid, index, &t.text, "completed"));
            }
            Part::ToolCall(c) => items.push(call_item(rid, index, c, &c.arguments, "completed")),
            _ => {}
        }
    }
    items
}

fn reasoning_item(rid: &str, index: usize, text: &str, sig: Option<&ir::Signature>) -> Value {
    let mut item = json!({
        "id": item_id("rs", rid, index),
        "type": "reasoning",
        "summary": if text.is_empty() { json!([]) } else { json!([{"type": "summary_text", "text": text}]) }
    });
    if let Some(sig) = sig {
        item["encrypted_content"] = json!(signature::for_client(sig, Protocol::OpenAi));
    }
    item
}

fn message_item(rid: &str, index: usize, text: &str, status: &str) -> Value {
    json!({
        "id": item_id("msg", rid, index),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": if status == "in_progress" { json!([]) } else {
            json!([{"type": "output_text", "text": text, "annotations": []}])
        }
    })
}

fn call_item(rid: &str, index: usize, c: &ToolCall, arguments: &str, status: &str) -> Value {
    json!({
        "id": item_id("fc", rid, index),
        "type": "function_call",
        "status": status,
        "call_id": signature::id_with(&c.id, c.signature.as_ref()),
        "name": c.name,
        "arguments": arguments
    })
}

/// Encodes a whole response for a client.
pub fn encode_response(r: &ir::Response) -> Value {
    let rid = response_id(&r.id);
    let (status, incomplete) = match r.finish {
        Finish::Length => ("incomplete", json!({"reason": "max_output_tokens"})),
        Finish::Filtered => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    };
    json!({
        "id": rid,
        "object": "response",
        "created_at": now_secs(),
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "model": r.model,
        "output": output_items(r, &rid),
        "parallel_tool_calls": true,
        "tool_choice": "auto",
        "tools": [],
        "usage": encode_usage(&r.usage),
        "metadata": {}
    })
}

/// Writes internal events as a Responses stream: `event:` lines equal to
/// the type, a `sequence_number` on every event, and `response.completed`
/// carrying the whole response at the end.
#[derive(Debug, Default)]
pub struct Encoder {
    seq: u64,
    rid: String,
    model: String,
    collector: ir::Collector,
    /// (output index, kind, id-less call) of the open item.
    open: Option<(usize, Open)>,
    items: usize,
    text: String,
    started: bool,
}

#[derive(Debug)]
enum Open {
    Message,
    Reasoning,
    Call(ToolCall),
}

impl Encoder {
    fn emit(&mut self, kind: &str, mut data: Value, out: &mut Vec<u8>) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        let _ = serde_json::to_writer(&mut *out, &data);
        out.extend_from_slice(b"\n\n");
    }

    fn skeleton(&self, status: &str) -> Value {
        json!({"id": self.rid, "object": "response", "created_at": now_secs(), "status": status,
            "model": self.model, "output": [], "usage": null, "error": null,
            "parallel_tool_calls": true, "tool_choice": "auto", "tools": [], "metadata": {}})
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let r = self.skeleton("in_progress");
        self.emit("response.created", json!({"response": r}), out);
        self.emit("response.in_progress", json!({"response": r}), out);
    }

    /// Encodes one event.
    pub fn event(&mut self, event: &Event, out: &mut Vec<u8>) {
        self.collector.push(event);
        match event {
            Event::Start { id, model } => {
                self.rid = response_id(id);
                self.model.clone_from(model);
                self.start(out);
            }
            Event::BlockStart { block, .. } => {
                self.start(out);
                self.stop_item(out);
                let index = self.items;
                self.items += 1;
                let (open, item) = match block {
                    Block::Text => (
                        Open::Message,
                        message_item(&self.rid, index, "", "in_progress"),
                    ),
                    Block::Thinking | Block::RedactedThinking(_) => {
                        (Open::Reasoning, reasoning_item(&self.rid, index, "", None))
                    }
                    Block::ToolCall {
                        id,
                        name,
                        signature: sig,
                    } => {
                        let call = ToolCall {
                            id: id.clone(),
                            name: name.clone(),
                            arguments: String::new(),
                            signature: sig.clone(),
                        };
                        let item = call_item(&self.rid, index, &call, "", "in_progress");
                        (Open::Call(call), item)
                    }
                };
                self.emit(
                    "response.output_item.added",
                    json!({"output_index": index, "item": item}),
                    out,
                );
                match open {
                    Open::Message => self.emit(
                        "response.content_part.added",
                        json!({"item_id": item_id("msg", &self.rid, index), "output_index": index,
                            "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
                        out,
                    ),
                    Open::Reasoning => self.emit(
                        "response.reasoning_summary_part.added",
                        json!({"item_id": item_id("rs", &self.rid, index), "output_index": index,
                            "summary_index": 0, "part": {"type": "summary_text", "text": ""}}),
                        out,
                    ),
                    Open::Call(_) => {}
                }
                self.text.clear();
                self.open = Some((index, open));
            }
            Event::Text { text, .. } => {
                if let Some((index, Open::Message)) = &self.open {
                    let index = *index;
                    self.text.push_str(text);
                    self.emit(
                        "response.output_text.delta",
                        json!({"item_id": item_id("msg", &self.rid, index), "output_index": index,
                            "content_index": 0, "delta": text}),
                        out,
                    );
                }
            }
            Event::Thinking { text, .. } => {
                if let Some((index, Open::Reasoning)) = &self.open {
                    let index = *index;
                    self.text.push_str(text);
                    self.emit(
                        "response.reasoning_summary_text.delta",
                        json!({"item_id": item_id("rs", &self.rid, index), "output_index": index,
                            "summary_index": 0, "delta": text}),
                        out,
                    );
                }
            }
            Event::ToolArgs { json: args, .. } => {
                if let Some((index, Open::Call(call))) = &mut self.open {
                    let index = *index;
                    call.arguments.push_str(args);
                    self.emit(
                        "response.function_call_arguments.delta",
                        json!({"item_id": item_id("fc", &self.rid, index), "output_index": index, "delta": args}),
                        out,
                    );
                }
            }
            Event::BlockStop { .. } => self.stop_item(out),
            Event::Signature { .. } | Event::Usage(_) | Event::Finish(_) => {}
        }
    }

    fn stop_item(&mut self, out: &mut Vec<u8>) {
        let Some((index, open)) = self.open.take() else {
            return;
        };
        let text = std::mem::take(&mut self.text);
        let item = match open {
            Open::Message => {
                let id = item_id("msg", &self.rid, index);
                self.emit(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "text": text}),
                    out,
                );
                self.emit(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0,
                        "part": {"type": "output_text", "text": text, "annotations": []}}),
                    out,
                );
                message_item(&self.rid, index, &text, "completed")
            }
            Open::Reasoning => {
                let id = item_id("rs", &self.rid, index);
                self.emit(
                    "response.reasoning_summary_text.done",
                    json!({"item_id": id, "output_index": index, "summary_index": 0, "text": text}),
                    out,
                );
                self.emit(
                    "response.reasoning_summary_part.done",
                    json!({"item_id": id, "output_index": index, "summary_index": 0,
                        "part": {"type": "summary_text", "text": text}}),
                    out,
                );
                let sig = match self.collector.snapshot().content.last() {
                    Some(Part::Thinking(t)) => t.signature.clone(),
                    _ => None,
                };
                reasoning_item(&self.rid, index, &text, sig.as_ref())
            }
            Open::Call(call) => {
                self.emit(
                    "response.function_call_arguments.done",
                    json!({"item_id": item_id("fc", &self.rid, index), "output_index": index,
                        "arguments": call.arguments}),
                    out,
                );
                call_item(&self.rid, index, &call, &call.arguments, "completed")
            }
        };
        self.emit(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
            out,
        );
    }

    /// Ends the stream with `response.completed` (or `.incomplete`).
    pub fn end(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        self.stop_item(out);
        let mut r = std::mem::take(&mut self.collector).finish();
        r.id = self.rid.trim_start_matches("resp_").to_owned();
        let whole = encode_response(&r);
        let kind = if whole["status"] == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.emit(kind, json!({"response": whole}), out);
    }

    /// An `error` event to end a stream that already started.
    pub fn error(&mut self, message: &str, out: &mut Vec<u8>) {
        self.emit(
            "error",
            json!({"code": "upstream_stream_error", "message": message, "param": null}),
            out,
        );
    }
}

/// An `error` event for a pass-through Responses stream that failed.
pub fn stream_error_event(message: &str) -> Vec<u8> {
    let data = json!({"type": "error", "code": "upstream_stream_error", "message": message, "param": null, "sequence_number": 0});
    format!("event: error\ndata: {data}\n\n").into_bytes()
}

/// Classifies an upstream Responses event for the retry decision.
pub fn classify(event: &sse::Event) -> ChunkKind {
    let kind = event.event.as_deref().unwrap_or("");
    match kind {
        "response.output_text.delta"
        | "response.function_call_arguments.delta"
        | "response.reasoning_summary_text.delta"
        | "response.refusal.delta" => ChunkKind::Content,
        "response.output_item.added" if event.data.contains("\"function_call\"") => {
            ChunkKind::Content
        }
        "response.completed" | "response.incomplete" => ChunkKind::Done,
        "response.failed" | "error" => {
            let v: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
            let message = v
                .pointer("/response/error/message")
                .or_else(|| v.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("upstream response failed");
            ChunkKind::Error(message.to_owned())
        }
        _ => ChunkKind::Preamble,
    }
}

/// Usage in a `response.completed` event (or a whole response body).
pub fn usage_of(data: &[u8]) -> Option<Usage> {
    let v: Value = serde_json::from_slice(data).ok()?;
    let u = v.pointer("/response/usage").or_else(|| v.get("usage"))?;
    u.is_object().then(|| decode_usage(u))
}

/// The response id in a `response.created` event or a whole response.
pub fn id_of(data: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(data).ok()?;
    v.pointer("/response/id")
        .or_else(|| v.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// What the gateway reads of a Responses request.
pub fn previous_response_id(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct View {
        #[serde(default)]
        previous_response_id: Option<String>,
    }
    serde_json::from_slice::<View>(body)
        .ok()?
        .previous_response_id
}
