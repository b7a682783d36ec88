//! Stream handling shared by every protocol: how an upstream event bears on
//! the retry decision, and the translator that decodes upstream events into
//! internal events and encodes them for the client, one event at a time
//! with bounded buffering.

use serde_json::Value;

use super::ir::{Event as IrEvent, Usage};
use super::sse::Event;
use super::{Protocol, Wire, anthropic, gemini, openai};

/// How a stream event bears on the retry decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkKind {
    /// Carries answer content, a tool call, a finish reason or usage.
    Content,
    /// Only preamble (a role with empty content, a message start, a ping).
    Preamble,
    /// An error in place of content.
    Error(String),
    /// The end of the answer (`[DONE]`, `message_stop`).
    Done,
}

/// A stream that cannot be read on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// An event that is not the JSON it should be.
    #[error("upstream sent a stream event that is not valid JSON")]
    Malformed,
    /// The upstream reported an error inside the stream.
    #[error("{0}")]
    Upstream(String),
}

/// Classifies an upstream event of `wire` for the retry decision.
pub fn classify(wire: Wire, event: &Event) -> ChunkKind {
    match wire {
        Wire::Chat => openai::classify_chunk(&event.data),
        Wire::Responses => openai::responses::classify(event),
        Wire::Messages => anthropic::classify(event),
        Wire::Generate => gemini::classify(event),
    }
}

/// Updates `usage` from an upstream event of `wire` (pass-through path).
pub fn read_usage(wire: Wire, event: &Event, usage: &mut Option<Usage>) {
    match wire {
        Wire::Chat => {
            if event.data.contains("\"usage\"")
                && let Some(u) = openai::usage_of(event.data.as_bytes())
            {
                *usage = Some(u);
            }
        }
        Wire::Responses => {
            if event
                .event
                .as_deref()
                .is_some_and(|e| e == "response.completed" || e == "response.incomplete")
                && let Some(u) = openai::responses::usage_of(event.data.as_bytes())
            {
                *usage = Some(u);
            }
        }
        Wire::Messages => anthropic::merge_usage(event, usage),
        Wire::Generate => gemini::read_usage(event, usage),
    }
}

/// Whether an upstream event of `wire` completes the answer.
pub fn is_done(wire: Wire, event: &Event) -> bool {
    match wire {
        Wire::Chat => event.data == "[DONE]",
        Wire::Responses => matches!(
            event.event.as_deref(),
            Some("response.completed" | "response.incomplete")
        ),
        Wire::Messages => event.event.as_deref() == Some("message_stop"),
        Wire::Generate => gemini::is_last(event),
    }
}

/// Decodes upstream events of one protocol.
#[derive(Debug)]
pub enum Decoder {
    /// OpenAI chat chunks.
    OpenAi(openai::chat_stream::Decoder),
    /// Anthropic message events.
    Anthropic(anthropic::stream::Decoder),
    /// Gemini chunks.
    Gemini(gemini::stream::Decoder),
}

impl Decoder {
    /// A decoder for an upstream speaking `protocol`.
    pub fn new(protocol: Protocol) -> Self {
        match protocol {
            Protocol::OpenAi => Decoder::OpenAi(Default::default()),
            Protocol::Anthropic => Decoder::Anthropic(Default::default()),
            Protocol::Gemini => Decoder::Gemini(Default::default()),
        }
    }

    /// Decodes one upstream event.
    pub fn feed(&mut self, event: &Event, out: &mut Vec<IrEvent>) -> Result<(), StreamError> {
        match self {
            Decoder::OpenAi(d) => d.feed(&event.data, out),
            Decoder::Anthropic(d) => {
                if event.event.as_deref() == Some("ping") || event.data.is_empty() {
                    return Ok(());
                }
                d.feed(&event.data, out)
            }
            Decoder::Gemini(d) => d.feed(&event.data, out),
        }
    }

    /// The upstream stream ended.
    pub fn finish(&mut self, out: &mut Vec<IrEvent>) {
        match self {
            Decoder::OpenAi(d) => d.finish(out),
            Decoder::Anthropic(d) => d.finish(out),
            Decoder::Gemini(d) => d.finish(out),
        }
    }
}

/// How a Gemini client wants its stream framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeminiFraming {
    /// `?alt=sse`: one `data:` event per chunk.
    Sse,
    /// No `alt=sse`: one JSON array, streamed element by element.
    Array,
}

/// Encodes internal events for the client.
#[derive(Debug)]
pub enum Encoder {
    /// OpenAI chat chunks.
    OpenAi(openai::chat_stream::Encoder),
    /// Anthropic message events.
    Anthropic(anthropic::stream::Encoder),
    /// Gemini chunks, framed as asked.
    Gemini(gemini::stream::Encoder, Framer),
    /// OpenAI Responses events.
    Responses(Box<openai::responses::Encoder>),
}

impl Encoder {
    /// Encodes one event.
    pub fn event(&mut self, event: &IrEvent, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi(e) => e.event(event, out),
            Encoder::Anthropic(e) => e.event(event, out),
            Encoder::Responses(e) => e.event(event, out),
            Encoder::Gemini(e, framer) => {
                let mut chunks = Vec::new();
                e.event(event, &mut chunks);
                for c in &chunks {
                    framer.write(c, out);
                }
            }
        }
    }

    /// Ends the stream with the protocol's closing events.
    pub fn end(&mut self, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi(e) => e.end(out),
            Encoder::Anthropic(e) => e.end(out),
            Encoder::Responses(e) => e.end(out),
            Encoder::Gemini(e, framer) => {
                let mut chunks = Vec::new();
                e.end(&mut chunks);
                for c in &chunks {
                    framer.write(c, out);
                }
                framer.close(out);
            }
        }
    }
}

/// Frames Gemini chunks as SSE events or as the elements of one JSON array.
#[derive(Debug)]
pub struct Framer {
    framing: GeminiFraming,
    written: bool,
}

impl Framer {
    /// A framer.
    pub fn new(framing: GeminiFraming) -> Self {
        Self {
            framing,
            written: false,
        }
    }

    /// Writes one chunk.
    pub fn write(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        self.write_raw(chunk.to_string().as_bytes(), out);
    }

    /// Writes one chunk given as JSON text.
    pub fn write_raw(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        match self.framing {
            GeminiFraming::Sse => {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n\r\n");
            }
            GeminiFraming::Array => {
                out.extend_from_slice(if self.written { b",\r\n" } else { b"[" });
                out.extend_from_slice(chunk);
            }
        }
        self.written = true;
    }

    /// Closes the array (nothing to do for SSE).
    pub fn close(&mut self, out: &mut Vec<u8>) {
        if self.framing == GeminiFraming::Array {
            out.extend_from_slice(if self.written { b"]" } else { b"[]" });
            self.written = true;
        }
    }
}

/// Decoder and encoder of a translated stream.
#[derive(Debug)]
pub struct Translator {
    /// Upstream side.
    pub decoder: Decoder,
    /// Client side.
    pub encoder: Encoder,
    events: Vec<IrEvent>,
    /// Usage seen so far.
    pub usage: Option<Usage>,
    /// Whether a content event has been decoded.
    pub content: bool,
    /// Whether the upstream finished its answer.
    pub finished: bool,
}

impl Translator {
    /// A translator from `decoder` to `encoder`.
    pub fn new(decoder: Decoder, encoder: Encoder) -> Self {
        Self {
            decoder,
            encoder,
            events: Vec::new(),
            usage: None,
            content: false,
            finished: false,
        }
    }

    /// Decodes an upstream event and encodes the result into `out`.
    pub fn feed(&mut self, event: &Event, out: &mut Vec<u8>) -> Result<(), StreamError> {
        self.decoder.feed(event, &mut self.events)?;
        self.flush(out);
        Ok(())
    }

    fn flush(&mut self, out: &mut Vec<u8>) {
        for e in self.events.drain(..) {
            match &e {
                IrEvent::Usage(u) => self.usage = Some(*u),
                IrEvent::Finish(_) => {
                    self.finished = true;
                    self.content = true;
                }
                IrEvent::Text { .. }
                | IrEvent::Thinking { .. }
                | IrEvent::ToolArgs { .. }
                | IrEvent::BlockStart {
                    block: super::ir::Block::ToolCall { .. },
                    ..
                } => self.content = true,
                _ => {}
            }
            self.encoder.event(&e, out);
        }
    }

    /// The upstream ended: closes open blocks and writes the closing events.
    pub fn end(&mut self, out: &mut Vec<u8>) {
        self.decoder.finish(&mut self.events);
        self.flush(out);
        self.encoder.end(out);
    }
}

#[cfg(test)]
mod tests;
