//! A parsed client request and, per attempt, the upstream request built for
//! the chosen account: the client's bytes with only the model rewritten
//! when both speak the same protocol, a translation through the internal
//! form (decoded once, on first need) when they do not.

use std::ops::Range;
use std::sync::OnceLock;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::ProxyError;
use crate::protocol::openai::chat::Dialect;
use crate::protocol::stream::{self, GeminiFraming};
use crate::protocol::{
    Protocol, TranslateError, Wire, anthropic, gemini, ir, json, openai, signature,
};
use crate::snapshot::Member;

/// Which client API a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientApi {
    /// OpenAI chat completions.
    Chat {
        /// `stream_options.include_usage`.
        include_usage: bool,
    },
    /// OpenAI Responses.
    Responses,
    /// Anthropic messages.
    Messages,
    /// Gemini generateContent / streamGenerateContent.
    Gemini {
        /// How a stream is framed for the client.
        framing: GeminiFraming,
    },
}

impl ClientApi {
    /// The client's protocol family.
    pub fn protocol(self) -> Protocol {
        self.wire().protocol()
    }

    /// The client's wire API.
    pub fn wire(self) -> Wire {
        match self {
            ClientApi::Chat { .. } => Wire::Chat,
            ClientApi::Responses => Wire::Responses,
            ClientApi::Messages => Wire::Messages,
            ClientApi::Gemini { .. } => Wire::Generate,
        }
    }

    /// A stream encoder for this client.
    pub fn encoder(self) -> stream::Encoder {
        match self {
            ClientApi::Chat { include_usage } => {
                stream::Encoder::OpenAi(openai::chat_stream::Encoder::new(include_usage))
            }
            ClientApi::Responses => stream::Encoder::Responses(Default::default()),
            ClientApi::Messages => stream::Encoder::Anthropic(Default::default()),
            ClientApi::Gemini { framing } => {
                stream::Encoder::Gemini(Default::default(), stream::Framer::new(framing))
            }
        }
    }
}

/// A parsed generation request, ready for the pipeline.
pub struct Call {
    /// The API the client speaks.
    pub api: ClientApi,
    /// The client's body.
    pub body: Bytes,
    /// Where the `model` value lies in `body` (None for Gemini: the model
    /// is in the path).
    pub model_span: Option<Range<usize>>,
    /// Requested model.
    pub model: String,
    /// Streaming wanted.
    pub stream: bool,
    /// Tokens to reserve.
    pub estimated_tokens: u64,
    /// Session key from the header, else from the body (sticky routes only).
    pub session_key: Option<String>,
    /// Anthropic headers an Anthropic client sent, passed on to Anthropic.
    pub anthropic_headers: Vec<(HeaderName, HeaderValue)>,
    /// Responses API: the stored response this request continues.
    pub previous_response: Option<String>,
    /// Responses API: the answer is stored upstream (record its account).
    pub stores_response: bool,
    ir: OnceLock<Result<ir::Request, String>>,
}

impl Call {
    /// A call; `anthropic_headers` are read from `headers` for Anthropic clients.
    pub fn new(
        api: ClientApi,
        body: Bytes,
        model: String,
        stream: bool,
        headers: &HeaderMap,
    ) -> Self {
        let anthropic_headers = if api == ClientApi::Messages {
            ["anthropic-version", "anthropic-beta"]
                .iter()
                .filter_map(|name| {
                    let value = headers.get(*name)?.clone();
                    Some((HeaderName::from_static(name), value))
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            api,
            body,
            model_span: None,
            model,
            stream,
            estimated_tokens: 0,
            session_key: None,
            anthropic_headers,
            previous_response: None,
            stores_response: false,
            ir: OnceLock::new(),
        }
    }

    /// The request in the internal form, decoded on first use.
    fn ir(&self) -> Result<&ir::Request, ProxyError> {
        let decoded = self.ir.get_or_init(|| {
            let decoded = match self.api {
                ClientApi::Chat { .. } => openai::chat::decode_request(&self.body),
                ClientApi::Responses => openai::responses::decode_request(&self.body),
                ClientApi::Messages => anthropic::messages::decode_request(&self.body),
                ClientApi::Gemini { .. } => {
                    gemini::generate::decode_request(&self.body, &self.model, self.stream)
                }
            };
            decoded.map_err(|e| e.to_string())
        });
        decoded
            .as_ref()
            .map_err(|e| ProxyError::Translate(TranslateError::Bad(e.clone())))
    }
}

/// An upstream request for one attempt.
pub struct Outgoing {
    /// Where it goes.
    pub url: String,
    /// What is sent.
    pub body: Bytes,
    /// The account's wire API.
    pub wire: Wire,
    /// Whether the answer must be translated for the client.
    pub translated: bool,
    /// Headers beyond the account's own.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

const ANTHROPIC_VERSION: HeaderValue = HeaderValue::from_static("2023-06-01");

/// Builds the upstream request for `member`, asking for `model`.
pub fn outgoing(call: &Call, member: &Member, model: &str) -> Result<Outgoing, ProxyError> {
    let endpoint = member
        .account
        .endpoint
        .as_ref()
        .map_err(|e| ProxyError::Translate(TranslateError::Bad(e.clone())))?;
    let wire = match endpoint.protocol {
        // only OpenAI itself serves the Responses API; compatible servers
        // are sent chat completions
        Protocol::OpenAi if call.api == ClientApi::Responses && endpoint.openai_itself => {
            Wire::Responses
        }
        Protocol::OpenAi => Wire::Chat,
        Protocol::Anthropic => Wire::Messages,
        Protocol::Gemini => Wire::Generate,
    };
    let upstream = endpoint.protocol;
    if upstream == Protocol::Gemini && !gemini::valid_model(model) {
        return Err(ProxyError::InvalidField {
            field: "model",
            message: "is not a valid Gemini model name (letters, digits, '-', '.', '_')",
        });
    }
    let translated = call.api.wire() != wire;
    let body = if translated {
        let mut req = call.ir()?.clone();
        req.model = model.to_owned();
        req.stream = call.stream;
        let value = match upstream {
            Protocol::OpenAi => {
                let dialect = if endpoint.openai_itself {
                    Dialect::OpenAi
                } else {
                    Dialect::Compatible
                };
                openai::chat::encode_request(&req, dialect)?
            }
            Protocol::Anthropic => anthropic::messages::encode_request(&req)?,
            Protocol::Gemini => gemini::generate::encode_request(&req)?,
        };
        Bytes::from(serde_json::to_vec(&value).map_err(ProxyError::InvalidBody)?)
    } else {
        same_protocol_body(call, upstream, model)
    };
    let mut headers = Vec::new();
    if upstream == Protocol::Anthropic {
        if call.anthropic_headers.is_empty() {
            headers.push((
                HeaderName::from_static("anthropic-version"),
                ANTHROPIC_VERSION,
            ));
        }
        headers.extend(call.anthropic_headers.iter().cloned());
    }
    let url = match wire {
        Wire::Responses => format!("{}/responses", endpoint.base_url),
        _ => endpoint.generate_url(model, call.stream),
    };
    Ok(Outgoing {
        url,
        body,
        wire,
        translated,
        headers,
    })
}

/// The client's bytes for an account of its own protocol: cleaned of other
/// providers' signatures when it holds any, and with `model` rewritten.
fn same_protocol_body(call: &Call, protocol: Protocol, model: &str) -> Bytes {
    let cleaned = if signature::body_has_tag(&call.body) {
        match protocol {
            Protocol::Anthropic => anthropic::clean_foreign_signatures(&call.body),
            Protocol::Gemini => gemini::clean_foreign_signatures(&call.body),
            Protocol::OpenAi => None,
        }
    } else {
        None
    };
    if cleaned.is_none() && model == call.model {
        return call.body.clone();
    }
    let (body, span) = match &cleaned {
        Some(c) => (
            &c[..],
            json::scan(c, usize::MAX)
                .ok()
                .and_then(|top| top.value_span(c, "model")),
        ),
        None => (&call.body[..], call.model_span.clone()),
    };
    match span {
        Some(span) => Bytes::from(json::replace_string(body, span, model)),
        None => Bytes::copy_from_slice(body),
    }
}

/// Turns a whole upstream answer of `wire` into the client's answer:
/// the body (translated when the wire differs) and its usage.
pub fn whole_reply(
    wire: Wire,
    translated: bool,
    api: ClientApi,
    body: Bytes,
) -> Result<(Bytes, Option<ir::Usage>), serde_json::Error> {
    if !translated {
        let usage = match wire {
            Wire::Chat => openai::usage_of(&body),
            Wire::Responses => openai::responses::usage_of(&body),
            Wire::Messages => serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("usage").map(anthropic::messages::decode_usage)),
            Wire::Generate => serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("usageMetadata").map(gemini::generate::decode_usage)),
        };
        return Ok((body, usage));
    }
    let decoded = match wire {
        Wire::Chat | Wire::Responses => openai::chat::decode_response(&body),
        Wire::Messages => anthropic::messages::decode_response(&body),
        Wire::Generate => gemini::generate::decode_response(&body),
    }?;
    let encoded = match api {
        ClientApi::Chat { .. } => openai::chat::encode_response(&decoded),
        ClientApi::Responses => openai::responses::encode_response(&decoded),
        ClientApi::Messages => anthropic::messages::encode_response(&decoded),
        ClientApi::Gemini { .. } => gemini::generate::encode_response(&decoded),
    };
    Ok((Bytes::from(encoded.to_string()), Some(decoded.usage)))
}
