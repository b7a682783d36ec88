//! OpenAI chat streams ↔ internal stream events.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
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

/// A chunk, borrowed from the event's text (no tree is built).
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    choices: Vec<Choice<'a>>,
    #[serde(default, borrow)]
    usage: Option<&'a RawValue>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Vec<CallDelta<'a>>,
}

#[derive(Deserialize)]
struct CallDelta<'a> {
    #[serde(default)]
    index: u64,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    arguments: Option<Cow<'a, str>>,
}

impl Decoder {
    /// Decodes one `data:` payload.
    pub fn feed(&mut self, data: &str, out: &mut Vec<Event>) -> Result<(), StreamError> {
        if data.trim() == "[DONE]" {
            self.close(out);
            return Ok(());
        }
        let chunk: Chunk<'_> = serde_json::from_str(data).map_err(|_| StreamError::Malformed)?;
        if let Some(err) = chunk.error {
            let message = serde_json::from_str::<Value>(err.get())
                .ok()
                .and_then(|e| e.get("message").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| "upstream stream error".to_owned());
            return Err(StreamError::Upstream(message));
        }
        if !self.started {
            self.started = true;
            out.push(Event::Start {
                id: chunk.id.as_deref().unwrap_or_default().to_owned(),
                model: chunk.model.as_deref().unwrap_or_default().to_owned(),
            });
        }
        if let Some(choice) = chunk.choices.into_iter().next() {
            if let Some(delta) = choice.delta {
                self.delta(delta, out)?;
            }
            if let Some(reason) = choice.finish_reason {
                self.close(out);
                out.push(Event::Finish(decode_finish(Some(&reason))));
            }
        }
        if let Some(u) = chunk.usage.filter(|u| u.get() != "null")
            && let Ok(u) = serde_json::from_str::<Value>(u.get())
        {
            out.push(Event::Usage(decode_usage(&u)));
        }
        Ok(())
    }

    fn delta(&mut self, delta: Delta<'_>, out: &mut Vec<Event>) -> Result<(), StreamError> {
        if let Some(t) = delta
            .reasoning_content
            .or(delta.reasoning)
            .filter(|t| !t.is_empty())
        {
            let index = self.ensure(Open::Thinking, out, || Block::Thinking);
            out.push(Event::Thinking {
                index,
                text: t.into_owned(),
            });
        }
        if let Some(t) = delta.content.filter(|t| !t.is_empty()) {
            let index = self.ensure(Open::Text, out, || Block::Text);
            out.push(Event::Text {
                index,
                text: t.into_owned(),
            });
        }
        for call in delta.tool_calls {
            let tool_index = call.index;
            let is_open = matches!(self.open, Some((_, Open::Tool(t))) if t == tool_index);
            let (name, arguments) = match call.function {
                Some(f) => (f.name, f.arguments),
                None => (None, None),
            };
            if !is_open {
                if self.closed_tools.contains(&tool_index) {
                    return Err(StreamError::Upstream(
                        "upstream interleaved the fragments of parallel tool calls".into(),
                    ));
                }
                let (id, sig) = signature::split_id(call.id.as_deref().unwrap_or_default());
                let name = name.unwrap_or_default().into_owned();
                self.ensure(Open::Tool(tool_index), out, || Block::ToolCall {
                    id,
                    name,
                    signature: sig,
                });
            }
            if let Some(args) = arguments.filter(|a| !a.is_empty())
                && let Some((index, _)) = self.open
            {
                out.push(Event::ToolArgs {
                    index,
                    json: args.into_owned(),
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

    /// A chunk whose delta is one string field, written without building a
    /// tree (text and reasoning deltas are most of a stream).
    fn string_chunk(&self, field: &str, value: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: {\"id\":");
        let _ = serde_json::to_writer(&mut *out, &self.id);
        out.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        out.extend_from_slice(self.created.to_string().as_bytes());
        out.extend_from_slice(b",\"model\":");
        let _ = serde_json::to_writer(&mut *out, &self.model);
        out.extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":{\"");
        out.extend_from_slice(field.as_bytes());
        out.extend_from_slice(b"\":");
        let _ = serde_json::to_writer(&mut *out, value);
        out.extend_from_slice(b"},\"finish_reason\":null}]}\n\n");
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
            Event::Text { text, .. } => self.string_chunk("content", text, out),
            Event::Thinking { text, .. } => self.string_chunk("reasoning_content", text, out),
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
