//! The one internal form of a request, a response and a stream event. Every
//! protocol has a decoder into it and an encoder out of it (hub and spokes),
//! so translating between N protocols takes 2N codecs, never N×N. Only
//! requests whose client and account speak different protocols come here;
//! same-protocol traffic is forwarded as bytes.

use serde_json::Value;

use super::Protocol;

/// A generation request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request {
    /// Requested model (the upstream model once routed).
    pub model: String,
    /// System prompt blocks, in order (mid-conversation system messages are
    /// folded in here).
    pub system: Vec<Text>,
    /// The conversation, alternating roles once encoded.
    pub messages: Vec<Message>,
    /// Tool definitions.
    pub tools: Vec<Tool>,
    /// Which tool the model must (or must not) call.
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may call several tools at once.
    pub parallel_tool_calls: Option<bool>,
    /// Output token limit.
    pub max_tokens: Option<u64>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Top-k sampling.
    pub top_k: Option<u64>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Sampling seed.
    pub seed: Option<i64>,
    /// Presence penalty.
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    pub frequency_penalty: Option<f64>,
    /// JSON mode or a response schema.
    pub response_format: Option<ResponseFormat>,
    /// Thinking / reasoning settings.
    pub reasoning: Option<Reasoning>,
    /// Streaming wanted.
    pub stream: bool,
    /// End-user id (OpenAI `user`, Anthropic `metadata.user_id`).
    pub user: Option<String>,
    /// Number of choices wanted (only 1 can be translated).
    pub n: Option<u32>,
}

/// Text with an optional prompt-cache breakpoint (Anthropic `cache_control`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Text {
    /// The text, never altered.
    pub text: String,
    /// `cache_control`, kept only for Anthropic upstreams.
    pub cache: Option<Value>,
}

impl Text {
    /// Plain text without a cache breakpoint.
    pub fn plain(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            cache: None,
        }
    }
}

/// Who speaks a message. System prompts live in [`Request::system`]; tool
/// results are parts of user messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The user (and tool results).
    User,
    /// The model.
    Assistant,
}

/// One turn of the conversation.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Speaker.
    pub role: Role,
    /// Content in order.
    pub parts: Vec<Part>,
}

/// One piece of content.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    /// Text.
    Text(Text),
    /// An image.
    Image(Media),
    /// A document (PDF and the like).
    Document(Media),
    /// A tool call made by the model.
    ToolCall(ToolCall),
    /// The result of a tool call, sent by the user side.
    ToolResult(ToolResult),
    /// The model's thinking.
    Thinking(Thinking),
}

/// Image or document data.
#[derive(Clone, Debug, PartialEq)]
pub struct Media {
    /// Where the bytes are.
    pub source: Source,
    /// `cache_control`, kept only for Anthropic upstreams.
    pub cache: Option<Value>,
}

/// Where media bytes come from. The gateway never fetches a URL itself.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// Inline base64 data.
    Base64 {
        /// MIME type.
        media_type: String,
        /// Base64 text.
        data: String,
    },
    /// A remote URL.
    Url(String),
    /// A provider file reference (Gemini `fileData`).
    File {
        /// MIME type, if given.
        media_type: Option<String>,
        /// File URI.
        uri: String,
    },
}

/// A tool call.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    /// Call id (generated where the source has none).
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments as JSON text (an object, unless the model produced invalid JSON).
    pub arguments: String,
    /// A provider signature bound to this call (Gemini `thoughtSignature`).
    pub signature: Option<Signature>,
}

/// A tool result.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolResult {
    /// The id of the call it answers.
    pub id: String,
    /// The tool's name, when the source names it (Gemini does; others are
    /// looked up from the call).
    pub name: Option<String>,
    /// Text and image parts.
    pub content: Vec<Part>,
    /// The tool failed.
    pub is_error: bool,
    /// `cache_control`, kept only for Anthropic upstreams.
    pub cache: Option<Value>,
}

/// Thinking content and its signature.
#[derive(Clone, Debug, PartialEq)]
pub struct Thinking {
    /// Visible thinking text (empty for redacted thinking).
    pub text: String,
    /// Signature (for redacted thinking: the opaque data).
    pub signature: Option<Signature>,
    /// Anthropic `redacted_thinking`.
    pub redacted: bool,
}

/// An opaque signature and the provider kind that made it. A signature is
/// only ever sent back to the provider kind that produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// Who made it.
    pub origin: Protocol,
    /// The provider's own value, untouched.
    pub value: String,
}

/// A tool definition.
#[derive(Clone, Debug, PartialEq)]
pub struct Tool {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: Value,
    /// OpenAI strict mode.
    pub strict: Option<bool>,
    /// `cache_control`, kept only for Anthropic upstreams.
    pub cache: Option<Value>,
}

/// Tool choice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No tool calls.
    None,
    /// Some tool must be called.
    Required,
    /// This tool must be called.
    Named(String),
}

/// Structured output.
#[derive(Clone, Debug, PartialEq)]
pub enum ResponseFormat {
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// Schema name.
        name: String,
        /// The schema.
        schema: Value,
    },
}

/// Thinking settings. Effort and budget convert into each other through
/// [`Effort::budget`] and [`Effort::from_budget`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reasoning {
    /// Effort level (OpenAI).
    pub effort: Option<Effort>,
    /// Token budget (Anthropic, Gemini).
    pub budget: Option<u64>,
    /// Return thinking text to the client.
    pub include_thoughts: bool,
    /// Thinking explicitly off.
    pub disabled: bool,
}

impl Reasoning {
    /// The token budget, from the budget or the effort.
    pub fn budget_tokens(&self) -> Option<u64> {
        self.budget.or_else(|| self.effort.map(Effort::budget))
    }

    /// The effort, from the effort or the budget.
    pub fn effort_level(&self) -> Option<Effort> {
        self.effort.or_else(|| self.budget.map(Effort::from_budget))
    }
}

/// Reasoning effort levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effort {
    /// minimal
    Minimal,
    /// low
    Low,
    /// medium
    Medium,
    /// high
    High,
}

impl Effort {
    /// The thinking budget used for this effort.
    pub fn budget(self) -> u64 {
        match self {
            Effort::Minimal => 1024,
            Effort::Low => 2048,
            Effort::Medium => 8192,
            Effort::High => 24576,
        }
    }

    /// The effort closest to a thinking budget.
    pub fn from_budget(budget: u64) -> Self {
        match budget {
            0..=1024 => Effort::Minimal,
            1025..=4095 => Effort::Low,
            4096..=16383 => Effort::Medium,
            _ => Effort::High,
        }
    }

    /// OpenAI's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Effort::Minimal => "minimal",
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
        }
    }

    /// Parses OpenAI's name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "minimal" | "none" => Some(Effort::Minimal),
            "low" => Some(Effort::Low),
            "medium" => Some(Effort::Medium),
            "high" | "xhigh" => Some(Effort::High),
            _ => None,
        }
    }
}

/// A whole generation response.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Response {
    /// Response id.
    pub id: String,
    /// Model that answered.
    pub model: String,
    /// Thinking, text and tool calls in order.
    pub content: Vec<Part>,
    /// Why it stopped.
    pub finish: Finish,
    /// Token usage.
    pub usage: Usage,
}

/// Why generation stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Finish {
    /// Natural end.
    #[default]
    Stop,
    /// A stop sequence (which one, when known).
    StopSequence(Option<String>),
    /// Output token limit.
    Length,
    /// The model called tools.
    ToolUse,
    /// Filtered for safety or refused.
    Filtered,
    /// Anything else, by the provider's name.
    Other(String),
}

/// Token usage in one normal form: input includes cached tokens, output
/// includes reasoning tokens (OpenAI's convention).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input tokens, cached ones included.
    pub input: u64,
    /// Input tokens read from the prompt cache.
    pub cached_input: u64,
    /// Input tokens written to the prompt cache (Anthropic).
    pub cache_write: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// Reasoning tokens.
    pub reasoning: u64,
}

impl Usage {
    /// Input plus output.
    pub fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }
}

/// A streamed event. Decoders emit blocks one at a time: a block is started,
/// receives deltas, and is stopped before the next one starts.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The response began.
    Start {
        /// Response id.
        id: String,
        /// Model.
        model: String,
    },
    /// A content block begins.
    BlockStart {
        /// Block index within the response.
        index: usize,
        /// What kind of block.
        block: Block,
    },
    /// Text for a text block.
    Text {
        /// Block index.
        index: usize,
        /// The text, verbatim.
        text: String,
    },
    /// Text for a thinking block.
    Thinking {
        /// Block index.
        index: usize,
        /// The text, verbatim.
        text: String,
    },
    /// The signature of a thinking block.
    Signature {
        /// Block index.
        index: usize,
        /// The signature.
        signature: Signature,
    },
    /// A fragment of a tool call's JSON arguments.
    ToolArgs {
        /// Block index.
        index: usize,
        /// JSON text to append.
        json: String,
    },
    /// A block ends.
    BlockStop {
        /// Block index.
        index: usize,
    },
    /// Usage so far (cumulative; the last one wins).
    Usage(Usage),
    /// Why generation stopped.
    Finish(Finish),
}

/// The kind of a streamed block.
#[derive(Clone, Debug, PartialEq)]
pub enum Block {
    /// Answer text.
    Text,
    /// Thinking text.
    Thinking,
    /// Redacted thinking with its opaque data.
    RedactedThinking(Signature),
    /// A tool call.
    ToolCall {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// Signature bound to the call (Gemini).
        signature: Option<Signature>,
    },
}

/// Gathers stream events into a whole response (for encoders that need the
/// full response at the end, and for tests).
#[derive(Debug, Default)]
pub struct Collector {
    response: Response,
    open: Option<(usize, Part)>,
}

impl Collector {
    /// Applies one event.
    pub fn push(&mut self, event: &Event) {
        match event {
            Event::Start { id, model } => {
                self.response.id.clone_from(id);
                self.response.model.clone_from(model);
            }
            Event::BlockStart { index, block } => {
                self.close();
                let part = match block {
                    Block::Text => Part::Text(Text::default()),
                    Block::Thinking => Part::Thinking(Thinking {
                        text: String::new(),
                        signature: None,
                        redacted: false,
                    }),
                    Block::RedactedThinking(sig) => Part::Thinking(Thinking {
                        text: String::new(),
                        signature: Some(sig.clone()),
                        redacted: true,
                    }),
                    Block::ToolCall {
                        id,
                        name,
                        signature,
                    } => Part::ToolCall(ToolCall {
                        id: id.clone(),
                        name: name.clone(),
                        arguments: String::new(),
                        signature: signature.clone(),
                    }),
                };
                self.open = Some((*index, part));
            }
            Event::Text { text, .. } => {
                if let Some((_, Part::Text(t))) = &mut self.open {
                    t.text.push_str(text);
                }
            }
            Event::Thinking { text, .. } => {
                if let Some((_, Part::Thinking(t))) = &mut self.open {
                    t.text.push_str(text);
                }
            }
            Event::Signature { signature, .. } => {
                if let Some((_, Part::Thinking(t))) = &mut self.open {
                    t.signature = Some(signature.clone());
                }
            }
            Event::ToolArgs { json, .. } => {
                if let Some((_, Part::ToolCall(c))) = &mut self.open {
                    c.arguments.push_str(json);
                }
            }
            Event::BlockStop { .. } => self.close(),
            Event::Usage(u) => self.response.usage = *u,
            Event::Finish(f) => self.response.finish = f.clone(),
        }
    }

    fn close(&mut self) {
        if let Some((_, part)) = self.open.take() {
            self.response.content.push(part);
        }
    }

    /// The response gathered so far.
    pub fn finish(mut self) -> Response {
        self.close();
        self.response
    }

    /// The response gathered so far, without consuming the collector.
    pub fn snapshot(&self) -> Response {
        let mut r = self.response.clone();
        if let Some((_, part)) = &self.open {
            r.content.push(part.clone());
        }
        r
    }
}

impl Source {
    /// Reads an OpenAI image URL: a `data:` URL becomes inline data, any
    /// other URL stays a URL.
    pub fn from_url(url: &str) -> Result<Self, super::TranslateError> {
        let Some(rest) = url.strip_prefix("data:") else {
            return Ok(Source::Url(url.to_owned()));
        };
        let (meta, data) = rest.split_once(',').ok_or_else(|| {
            super::TranslateError::Bad("an image data: URL has no comma before its data".into())
        })?;
        let media_type = meta.strip_suffix(";base64").ok_or_else(|| {
            super::TranslateError::Bad("image data: URLs must be base64 encoded".into())
        })?;
        check_base64(data)?;
        Ok(Source::Base64 {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        })
    }

    /// Inline data as a `data:` URL; URLs as they are.
    pub fn to_url(&self) -> Option<String> {
        match self {
            Source::Base64 { media_type, data } => Some(format!("data:{media_type};base64,{data}")),
            Source::Url(url) => Some(url.clone()),
            Source::File { .. } => None,
        }
    }
}

/// Refuses inline data that is not base64 (checked by alphabet and length,
/// without decoding it).
pub fn check_base64(data: &str) -> Result<(), super::TranslateError> {
    let trimmed = data.trim_end_matches('=');
    let ok = data.len() - trimmed.len() <= 2
        && trimmed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(super::TranslateError::Bad(
            "inline image or document data is not valid base64".into(),
        ))
    }
}

impl ToolCall {
    /// The arguments as a JSON object (what Anthropic and Gemini take).
    /// Invalid JSON from a model is kept under `_raw` rather than lost.
    pub fn arguments_object(&self) -> Value {
        if self.arguments.trim().is_empty() {
            return Value::Object(serde_json::Map::new());
        }
        match serde_json::from_str::<Value>(&self.arguments) {
            Ok(v @ Value::Object(_)) => v,
            Ok(other) => serde_json::json!({ "_raw": other }),
            Err(_) => serde_json::json!({ "_raw": self.arguments }),
        }
    }
}

impl ToolResult {
    /// The result's text parts joined.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for p in &self.content {
            if let Part::Text(t) = p {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&t.text);
            }
        }
        out
    }
}

impl Request {
    /// The name of the tool a call id belongs to, from the calls in the history.
    pub fn tool_name(&self, id: &str) -> Option<&str> {
        self.messages
            .iter()
            .flat_map(|m| &m.parts)
            .find_map(|p| match p {
                Part::ToolCall(c) if c.id == id => Some(c.name.as_str()),
                _ => None,
            })
    }

    /// Appends parts to the conversation, merging with the last message when
    /// it has the same role.
    pub fn push(&mut self, role: Role, parts: Vec<Part>) {
        if parts.is_empty() {
            return;
        }
        match self.messages.last_mut() {
            Some(last) if last.role == role => last.parts.extend(parts),
            _ => self.messages.push(Message { role, parts }),
        }
    }

    /// Fails when the request asks for several choices, which only
    /// same-protocol forwarding can serve.
    pub fn check_single_choice(&self, target: Protocol) -> Result<(), super::TranslateError> {
        match self.n {
            Some(n) if n > 1 => Err(super::TranslateError::unsupported(
                "n > 1 (several choices) across protocols",
                target,
            )),
            _ => Ok(()),
        }
    }
}
