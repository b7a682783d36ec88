//! Anthropic message streams ↔ internal stream events.

use serde_json::{Value, json};

use super::messages::{decode_finish, decode_usage, encode_finish, encode_usage, message_id};
use crate::protocol::Protocol;
use crate::protocol::ir::{Block, Event, Finish, Usage};
use crate::protocol::signature;
use crate::protocol::stream::StreamError;

/// A `content_block_delta`, borrowed from the event's text: the bulk of a
/// stream, decoded without building a tree.
#[derive(serde::Deserialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    index: usize,
    #[serde(borrow)]
    delta: DeltaFields<'a>,
}

#[derive(serde::Deserialize)]
struct DeltaFields<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    thinking: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    partial_json: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    signature: Option<std::borrow::Cow<'a, str>>,
}

/// Turns Anthropic SSE payloads into events (Anthropic's block indexes are
/// already sequential, so they are kept).
#[derive(Debug, Default)]
pub struct Decoder {
    usage: Usage,
}

impl Decoder {
    /// Decodes one event's `data:`.
    pub fn feed(&mut self, data: &str, out: &mut Vec<Event>) -> Result<(), StreamError> {
        if let Ok(d) = serde_json::from_str::<BlockDelta<'_>>(data)
            && d.kind == "content_block_delta"
        {
            let (index, f) = (d.index, d.delta);
            match (&*f.kind, f.text, f.thinking, f.partial_json, f.signature) {
                ("text_delta", Some(text), ..) => out.push(Event::Text {
                    index,
                    text: text.into_owned(),
                }),
                ("thinking_delta", _, Some(text), ..) => out.push(Event::Thinking {
                    index,
                    text: text.into_owned(),
                }),
                ("input_json_delta", _, _, Some(json), _) if !json.is_empty() => {
                    out.push(Event::ToolArgs {
                        index,
                        json: json.into_owned(),
                    });
                }
                ("signature_delta", .., Some(sig)) => out.push(Event::Signature {
                    index,
                    signature: signature::from_client(&sig, Protocol::Anthropic),
                }),
                _ => {}
            }
            return Ok(());
        }
        let v: Value = serde_json::from_str(data).map_err(|_| StreamError::Malformed)?;
        let index = || v.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "message_start" => {
                let m = &v["message"];
                out.push(Event::Start {
                    id: m["id"].as_str().unwrap_or_default().to_owned(),
                    model: m["model"].as_str().unwrap_or_default().to_owned(),
                });
                self.usage = decode_usage(&m["usage"]);
                out.push(Event::Usage(self.usage));
            }
            "content_block_start" => {
                let b = &v["content_block"];
                let s = |k: &str| b[k].as_str().unwrap_or_default().to_owned();
                let block = match b["type"].as_str().unwrap_or("") {
                    "text" => Block::Text,
                    "thinking" => Block::Thinking,
                    "redacted_thinking" => Block::RedactedThinking(signature::from_client(
                        &s("data"),
                        Protocol::Anthropic,
                    )),
                    "tool_use" | "server_tool_use" => {
                        let (id, sig) = signature::split_id(&s("id"));
                        Block::ToolCall {
                            id,
                            name: s("name"),
                            signature: sig,
                        }
                    }
                    _ => Block::Text,
                };
                out.push(Event::BlockStart {
                    index: index(),
                    block,
                });
                if let Some(t) = b
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    out.push(Event::Text {
                        index: index(),
                        text: t.to_owned(),
                    });
                }
            }
            "content_block_delta" => {
                let d = &v["delta"];
                let s = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
                match d["type"].as_str().unwrap_or("") {
                    "text_delta" => out.push(Event::Text {
                        index: index(),
                        text: s("text"),
                    }),
                    "thinking_delta" => out.push(Event::Thinking {
                        index: index(),
                        text: s("thinking"),
                    }),
                    "signature_delta" => out.push(Event::Signature {
                        index: index(),
                        signature: signature::from_client(&s("signature"), Protocol::Anthropic),
                    }),
                    "input_json_delta" => {
                        let json = s("partial_json");
                        if !json.is_empty() {
                            out.push(Event::ToolArgs {
                                index: index(),
                                json,
                            });
                        }
                    }
                    _ => {}
                }
            }
            "content_block_stop" => out.push(Event::BlockStop { index: index() }),
            "message_delta" => {
                let u = &v["usage"];
                if let Some(o) = u.get("output_tokens").and_then(Value::as_u64) {
                    self.usage.output = o;
                }
                if u.get("input_tokens").is_some() {
                    let more = decode_usage(u);
                    self.usage.input = more.input;
                    self.usage.cached_input = more.cached_input;
                    self.usage.cache_write = more.cache_write;
                }
                out.push(Event::Usage(self.usage));
                if let Some(reason) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    out.push(Event::Finish(decode_finish(
                        Some(reason),
                        v.pointer("/delta/stop_sequence").and_then(Value::as_str),
                    )));
                }
            }
            "error" => {
                return Err(StreamError::Upstream(
                    v.pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("upstream stream error")
                        .to_owned(),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// The upstream stream ended.
    pub fn finish(&mut self, _out: &mut Vec<Event>) {}
}

/// Writes events as Anthropic SSE (`event:` lines equal to `data.type`).
#[derive(Debug, Default)]
pub struct Encoder {
    id: String,
    model: String,
    next: usize,
    open: Option<usize>,
    usage: Usage,
    finish: Option<Finish>,
    started: bool,
}

fn write(kind: &str, v: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    let _ = serde_json::to_writer(&mut *out, v);
    out.extend_from_slice(b"\n\n");
}

impl Encoder {
    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        write(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": message_id(&self.id), "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": encode_usage(&self.usage)
            }}),
            out,
        );
    }

    fn delta(&self, delta: Value, out: &mut Vec<u8>) {
        if let Some(index) = self.open {
            write(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
                out,
            );
        }
    }

    /// A delta carrying one string field, written without building a tree
    /// (text, thinking and argument deltas are most of a stream).
    fn string_delta(&self, kind: &str, field: &str, value: &str, out: &mut Vec<u8>) {
        let Some(index) = self.open else { return };
        out.extend_from_slice(
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":",
        );
        out.extend_from_slice(index.to_string().as_bytes());
        out.extend_from_slice(b",\"delta\":{\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"");
        out.extend_from_slice(field.as_bytes());
        out.extend_from_slice(b"\":");
        // serialising a str into a Vec cannot fail
        let _ = serde_json::to_writer(&mut *out, value);
        out.extend_from_slice(b"}}\n\n");
    }

    /// Encodes one event.
    pub fn event(&mut self, event: &Event, out: &mut Vec<u8>) {
        match event {
            Event::Start { id, model } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
            }
            Event::Usage(u) => {
                self.usage = *u;
            }
            Event::BlockStart { block, .. } => {
                self.start(out);
                self.stop_block(out);
                let index = self.next;
                self.next += 1;
                self.open = Some(index);
                let cb = match block {
                    Block::Text => json!({"type": "text", "text": ""}),
                    Block::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
                    Block::RedactedThinking(sig) => json!({
                        "type": "redacted_thinking",
                        "data": signature::for_client(sig, Protocol::Anthropic)
                    }),
                    Block::ToolCall {
                        id,
                        name,
                        signature: sig,
                    } => json!({
                        "type": "tool_use",
                        "id": signature::id_with(id, sig.as_ref()),
                        "name": name,
                        "input": {}
                    }),
                };
                write(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": index, "content_block": cb}),
                    out,
                );
            }
            Event::Text { text, .. } => self.string_delta("text_delta", "text", text, out),
            Event::Thinking { text, .. } => {
                self.string_delta("thinking_delta", "thinking", text, out);
            }
            Event::Signature { signature: sig, .. } => self.delta(
                json!({"type": "signature_delta", "signature": signature::for_client(sig, Protocol::Anthropic)}),
                out,
            ),
            Event::ToolArgs { json: j, .. } => {
                self.string_delta("input_json_delta", "partial_json", j, out);
            }
            Event::BlockStop { .. } => self.stop_block(out),
            Event::Finish(f) => self.finish = Some(f.clone()),
        }
    }

    fn stop_block(&mut self, out: &mut Vec<u8>) {
        if let Some(index) = self.open.take() {
            write(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
                out,
            );
        }
    }

    /// Ends the stream: `message_delta` with the stop reason and the final
    /// usage, then `message_stop`.
    pub fn end(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        self.stop_block(out);
        let (reason, sequence) = encode_finish(self.finish.as_ref().unwrap_or(&Finish::Stop));
        write(
            "message_delta",
            &json!({"type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": sequence},
                "usage": encode_usage(&self.usage)}),
            out,
        );
        write("message_stop", &json!({"type": "message_stop"}), out);
    }
}
