//! OpenAI chat streams ↔ internal stream events.

use serde_json::{Value, json};

use super::chat::{
    decode_finish, decode_usage, encode_finish, encode_usage, now_secs, response_id,
};
use crate::protocol::ir::{Block, Event, Finish, Usage};
use crate::protocol::signature;
use crate::protocol::stream::StreamError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    /// A tool call by its OpenAI `tool_calls[].index`.
    Tool(u64),
}

/// Turns `chat.completion.chunk` payloads into events.
#[derive(Debug, Default)]
pub struct Decoder {
    started: bool,
    open: Option<(usize, Open)>,
    next: usize,
    closed_tools: Vec<u64>,
}

impl Decoder {
    /// Decodes one `data:` payload.
    pub fn feed(&mut self, data: &str, out: &mut Vec<Event>) -> Result<(), StreamError> {
        if data.trim() == "[DONE]" {
            self.close(out);
            return Ok(());
        }
        let v: Value = serde_json::from_str(data).map_err(|_| StreamError::Malformed)?;
        if let Some(err) = v.get("error") {
            return Err(StreamError::Upstream(
                err.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("upstream stream error")
                    .to_owned(),
            ));
        }
        if !self.started {
            self.started = true;
            out.push(Event::Start {
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
            });
        }
        if let Some(choice) = v.pointer("/choices/0") {
            if let Some(delta) = choice.get("delta") {
                self.delta(delta, out)?;
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.close(out);
                out.push(Event::Finish(decode_finish(Some(reason))));
            }
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            out.push(Event::Usage(decode_usage(u)));
        }
        Ok(())
    }

    fn delta(&mut self, delta: &Value, out: &mut Vec<Event>) -> Result<(), StreamError> {
        for key in ["reasoning_content", "reasoning"] {
            if let Some(t) = delta
                .get(key)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                let index = self.ensure(Open::Thinking, out, || Block::Thinking);
                out.push(Event::Thinking {
                    index,
                    text: t.to_owned(),
                });
                break;
            }
        }
        if let Some(t) = delta
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            let index = self.ensure(Open::Text, out, || Block::Text);
            out.push(Event::Text {
                index,
                text: t.to_owned(),
            });
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let tool_index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let is_open = matches!(self.open, Some((_, Open::Tool(t))) if t == tool_index);
            if !is_open {
                if self.closed_tools.contains(&tool_index) {
                    return Err(StreamError::Upstream(
                        "upstream interleaved the fragments of parallel tool calls".into(),
                    ));
                }
                let (id, sig) =
                    signature::split_id(call.get("id").and_then(Value::as_str).unwrap_or_default());
                let name = call
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                self.ensure(Open::Tool(tool_index), out, || Block::ToolCall {
                    id,
                    name,
                    signature: sig,
                });
            }
            if let Some(args) = call
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
                && let Some((index, _)) = self.open
            {
                out.push(Event::ToolArgs {
                    index,
                    json: args.to_owned(),
                });
            }
        }
        Ok(())
    }

    fn ensure(&mut self, kind: Open, out: &mut Vec<Event>, block: impl FnOnce() -> Block) -> usize {
        if let Some((index, open)) = self.open
            && open == kind
        {
            return index;
        }
        self.close(out);
        let index = self.next;
        self.next += 1;
        self.open = Some((index, kind));
        out.push(Event::BlockStart {
            index,
            block: block(),
        });
        index
    }

    fn close(&mut self, out: &mut Vec<Event>) {
        if let Some((index, kind)) = self.open.take() {
            if let Open::Tool(t) = kind {
                self.closed_tools.push(t);
            }
            out.push(Event::BlockStop { index });
        }
    }

    /// The upstream stream ended.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        self.close(out);
    }
}

/// Writes events as `chat.completion.chunk` payloads.
#[derive(Debug)]
pub struct Encoder {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    tools: u64,
    usage: Option<Usage>,
    finished: bool,
}

impl Encoder {
    /// An encoder; `include_usage` is the client's `stream_options.include_usage`.
    pub fn new(include_usage: bool) -> Self {
        Self {
            id: String::new(),
            model: String::new(),
            created: now_secs(),
            include_usage,
            tools: 0,
            usage: None,
            finished: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>, out: &mut Vec<u8>) {
        let v = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        });
        write_data(&v, out);
    }

    /// Encodes one event.
    pub fn event(&mut self, event: &Event, out: &mut Vec<u8>) {
        match event {
            Event::Start { id, model } => {
                self.id = response_id(id);
                self.model.clone_from(model);
                self.chunk(json!({"role": "assistant", "content": ""}), None, out);
            }
            Event::BlockStart {
                block:
                    Block::ToolCall {
                        id,
                        name,
                        signature: sig,
                    },
                ..
            } => {
                let index = self.tools;
                self.tools += 1;
                self.chunk(
                    json!({"tool_calls": [{
                        "index": index,
                        "id": signature::id_with(id, sig.as_ref()),
                        "type": "function",
                        "function": {"name": name, "arguments": ""}
                    }]}),
                    None,
                    out,
                );
            }
            Event::Text { text, .. } => self.chunk(json!({"content": text}), None, out),
            Event::Thinking { text, .. } => {
                self.chunk(json!({"reasoning_content": text}), None, out);
            }
            Event::ToolArgs { json: args, .. } => {
                let index = self.tools.saturating_sub(1);
                self.chunk(
                    json!({"tool_calls": [{"index": index, "function": {"arguments": args}}]}),
                    None,
                    out,
                );
            }
            Event::Finish(f) => {
                self.finished = true;
                self.chunk(json!({}), Some(encode_finish(f)), out);
            }
            Event::Usage(u) => self.usage = Some(*u),
            Event::BlockStart { .. } | Event::BlockStop { .. } | Event::Signature { .. } => {}
        }
    }

    /// Ends the stream: the finish (if the upstream gave none), the usage
    /// chunk when asked for, and `[DONE]`.
    pub fn end(&mut self, out: &mut Vec<u8>) {
        if !self.finished {
            self.event(&Event::Finish(Finish::Stop), out);
        }
        if self.include_usage {
            let v = json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": encode_usage(&self.usage.unwrap_or_default())
            });
            write_data(&v, out);
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
}

fn write_data(v: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: ");
    // serialising a Value into a Vec cannot fail
    let _ = serde_json::to_writer(&mut *out, v);
    out.extend_from_slice(b"\n\n");
}
