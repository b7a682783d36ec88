//! Gemini streams ↔ internal stream events. Each Gemini chunk is a whole
//! response holding a delta of parts; function calls arrive whole.

use serde_json::{Value, json};

use super::generate::{decode_chunk, encode_finish, encode_part_for_client, encode_usage};
use crate::protocol::ir::{Block, Event, Finish, Part, ToolCall, Usage};
use crate::protocol::stream::StreamError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
}

/// Turns Gemini stream chunks into events.
#[derive(Debug, Default)]
pub struct Decoder {
    started: bool,
    open: Option<(usize, Open)>,
    next: usize,
    calls: usize,
    saw_call: bool,
}

impl Decoder {
    /// Decodes one chunk.
    pub fn feed(&mut self, data: &str, out: &mut Vec<Event>) -> Result<(), StreamError> {
        let v: Value = serde_json::from_str(data).map_err(|_| StreamError::Malformed)?;
        if let Some(err) = v.get("error") {
            return Err(StreamError::Upstream(
                err.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("upstream stream error")
                    .to_owned(),
            ));
        }
        let (chunk, has_finish) = decode_chunk(&v, &mut self.calls);
        if !self.started {
            self.started = true;
            out.push(Event::Start {
                id: chunk.id.clone(),
                model: chunk.model.clone(),
            });
        }
        for part in chunk.content {
            match part {
                Part::Text(t) => {
                    let index = self.ensure(Open::Text, Block::Text, out);
                    out.push(Event::Text {
                        index,
                        text: t.text,
                    });
                }
                Part::Thinking(t) => {
                    let index = self.ensure(Open::Thinking, Block::Thinking, out);
                    if !t.text.is_empty() {
                        out.push(Event::Thinking {
                            index,
                            text: t.text,
                        });
                    }
                    if let Some(signature) = t.signature {
                        out.push(Event::Signature { index, signature });
                    }
                }
                Part::ToolCall(c) => self.call(c, out),
                _ => {}
            }
        }
        if field_present(&v, "usageMetadata") {
            out.push(Event::Usage(chunk.usage));
        }
        if has_finish {
            self.close(out);
            let finish = match chunk.finish {
                Finish::Stop if self.saw_call => Finish::ToolUse,
                other => other,
            };
            out.push(Event::Finish(finish));
        }
        Ok(())
    }

    fn call(&mut self, c: ToolCall, out: &mut Vec<Event>) {
        self.close(out);
        self.saw_call = true;
        let index = self.next;
        self.next += 1;
        out.push(Event::BlockStart {
            index,
            block: Block::ToolCall {
                id: c.id,
                name: c.name,
                signature: c.signature,
            },
        });
        out.push(Event::ToolArgs {
            index,
            json: c.arguments,
        });
        out.push(Event::BlockStop { index });
    }

    fn ensure(&mut self, kind: Open, block: Block, out: &mut Vec<Event>) -> usize {
        if let Some((index, open)) = self.open
            && open == kind
        {
            return index;
        }
        self.close(out);
        let index = self.next;
        self.next += 1;
        self.open = Some((index, kind));
        out.push(Event::BlockStart { index, block });
        index
    }

    fn close(&mut self, out: &mut Vec<Event>) {
        if let Some((index, _)) = self.open.take() {
            out.push(Event::BlockStop { index });
        }
    }

    /// The upstream stream ended.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        self.close(out);
    }
}

fn field_present(v: &Value, camel: &str) -> bool {
    v.get(camel).is_some() || v.get("usage_metadata").is_some()
}

/// Writes events as Gemini chunks. Function calls are sent whole, at the
/// end of their block, as Gemini does.
#[derive(Debug, Default)]
pub struct Encoder {
    id: String,
    model: String,
    call: Option<ToolCall>,
    usage: Usage,
    finish: Option<Finish>,
}

impl Encoder {
    fn chunk(&self, parts: Vec<Value>, out: &mut Vec<Value>) {
        out.push(json!({
            "candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}],
            "modelVersion": self.model,
            "responseId": self.id
        }));
    }

    /// Encodes one event into zero or more chunks.
    pub fn event(&mut self, event: &Event, out: &mut Vec<Value>) {
        match event {
            Event::Start { id, model } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
            }
            Event::BlockStart {
                block:
                    Block::ToolCall {
                        id,
                        name,
                        signature,
                    },
                ..
            } => {
                self.call = Some(ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    arguments: String::new(),
                    signature: signature.clone(),
                });
            }
            Event::ToolArgs { json, .. } => {
                if let Some(c) = &mut self.call {
                    c.arguments.push_str(json);
                }
            }
            Event::BlockStop { .. } => {
                if let Some(c) = self.call.take()
                    && let Some(p) = encode_part_for_client(&Part::ToolCall(c))
                {
                    self.chunk(vec![p], out);
                }
            }
            Event::Text { text, .. } => self.chunk(vec![json!({"text": text})], out),
            Event::Thinking { text, .. } => {
                self.chunk(vec![json!({"text": text, "thought": true})], out);
            }
            Event::Signature { signature, .. } => {
                let part = encode_part_for_client(&Part::Thinking(crate::protocol::ir::Thinking {
                    text: String::new(),
                    signature: Some(signature.clone()),
                    redacted: false,
                }));
                if let Some(p) = part {
                    self.chunk(vec![p], out);
                }
            }
            Event::Usage(u) => self.usage = *u,
            Event::Finish(f) => self.finish = Some(f.clone()),
            Event::BlockStart { .. } => {}
        }
    }

    /// Ends the stream with a chunk carrying the finish reason and usage.
    pub fn end(&mut self, out: &mut Vec<Value>) {
        let finish = self.finish.clone().unwrap_or(Finish::Stop);
        out.push(json!({
            "candidates": [{
                "content": {"role": "model", "parts": [{"text": ""}]},
                "finishReason": encode_finish(&finish),
                "index": 0
            }],
            "usageMetadata": encode_usage(&self.usage),
            "modelVersion": self.model,
            "responseId": self.id
        }));
    }
}
