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
    Protocol, TranslateError, Wire, anthropic, count, embeddings, gemini, ir, json, openai,
    signature,
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
    /// OpenAI embeddings.
    Embeddings {
        /// `encoding_format: base64`.
        base64: bool,
    },
    /// Gemini `:embedContent` / `:batchEmbedContents`.
    GeminiEmbed {
        /// `:batchEmbedContents`.
        batch: bool,
    },
    /// Anthropic `/v1/messages/count_tokens`.
    CountTokens,
    /// Gemini `:countTokens`.
    GeminiCount,
}

impl ClientApi {
    /// The client's protocol family.
    pub fn protocol(self) -> Protocol {
        match self {
            ClientApi::Chat { .. } | ClientApi::Responses | ClientApi::Embeddings { .. } => {
                Protocol::OpenAi
            }
            ClientApi::Messages | ClientApi::CountTokens => Protocol::Anthropic,
            ClientApi::Gemini { .. } | ClientApi::GeminiEmbed { .. } | ClientApi::GeminiCount => {
                Protocol::Gemini
            }
        }
    }

    /// The client's generation wire API (None for embeddings and counts).
    pub fn wire(self) -> Option<Wire> {
        match self {
            ClientApi::Chat { .. } => Some(Wire::Chat),
            ClientApi::Responses => Some(Wire::Responses),
            ClientApi::Messages => Some(Wire::Messages),
            ClientApi::Gemini { .. } => Some(Wire::Generate),
            _ => None,
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
            // never streamed: the ingress refuses stream for these
            _ => stream::Encoder::OpenAi(openai::chat_stream::Encoder::new(false)),
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
    /// The named client the request is charged to.
    pub client: Option<std::sync::Arc<crate::clients::Client>>,
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
            client: None,
            ir: OnceLock::new(),
        }
    }

    /// Charges the request to a named client.
    pub fn for_client(mut self, client: Option<std::sync::Arc<crate::clients::Client>>) -> Self {
        self.client = client;
        self
    }

    /// The request in the internal form, decoded on first use.
    fn ir(&self) -> Result<&ir::Request, ProxyError> {
        let decoded = self.ir.get_or_init(|| {
            let decoded = match self.api {
                ClientApi::Chat { .. } => openai::chat::decode_request(&self.body),
                ClientApi::Responses => openai::responses::decode_request(&self.body),
                ClientApi::Messages | ClientApi::CountTokens => {
                    anthropic::messages::decode_request(&self.body)
                }
                ClientApi::Gemini { .. } => {
                    gemini::generate::decode_request(&self.body, &self.model, self.stream)
                }
                ClientApi::GeminiCount => count::unwrap_gemini(&self.body)
                    .and_then(|inner| gemini::generate::decode_request(&inner, &self.model, false)),
                ClientApi::Embeddings { .. } | ClientApi::GeminiEmbed { .. } => Err(
                    TranslateError::Bad("embeddings have no generation form".into()),
                ),
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
    pub url: crate::upstream::Target,
    /// What is sent.
    pub body: Bytes,
    /// The account's wire API.
    pub wire: Wire,
    /// Whether the answer must be translated for the client.
    pub translated: bool,
    /// Headers beyond the account's own.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// How the whole answer becomes the client's.
    pub convert: Convert,
    /// An answer made here, without calling the upstream (token counts for
    /// accounts whose provider has no counter).
    pub local: Option<Bytes>,
}

/// How a whole upstream answer becomes the client's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Convert {
    /// Generation: the same bytes, or translated when the wires differ.
    Generate,
    /// Embeddings for an OpenAI client, from an upstream of `from`.
    OpenAiEmbeddings {
        /// Upstream protocol.
        from: Protocol,
        /// The client asked for base64.
        base64: bool,
        /// The model named in the answer.
        model: String,
    },
    /// Embeddings for a Gemini client, from an upstream of `from`.
    GeminiEmbeddings {
        /// Upstream protocol.
        from: Protocol,
        /// One or a batch.
        batch: bool,
    },
    /// A token count in the client's protocol (same shape: untouched).
    Count {
        /// The client's protocol.
        to: Protocol,
        /// The upstream's protocol.
        from: Protocol,
    },
}

const ANTHROPIC_VERSION: HeaderValue = HeaderValue::from_static("2023-06-01");

/// Builds the upstream request for `member`, asking for `model`.
pub fn outgoing(call: &Call, member: &Member, model: &str) -> Result<Outgoing, ProxyError> {
    let endpoint = member
        .account
        .endpoint
        .as_ref()
        .map_err(|e| ProxyError::Translate(TranslateError::Bad(e.clone())))?;
    match call.api {
        ClientApi::Embeddings { .. } | ClientApi::GeminiEmbed { .. } => {
            return embed_outgoing(call, endpoint, model);
        }
        ClientApi::CountTokens | ClientApi::GeminiCount => {
            return count_outgoing(call, endpoint, model);
        }
        _ => {}
    }
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
    let translated = call.api.wire() != Some(wire);
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
        Wire::Responses => format!("{}/responses", endpoint.base_url).into(),
        _ => endpoint.generate_url(model, call.stream),
    };
    Ok(Outgoing {
        url,
        body,
        wire,
        translated,
        headers,
        convert: Convert::Generate,
        local: None,
    })
}

fn to_bytes(v: &serde_json::Value) -> Result<Bytes, ProxyError> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(ProxyError::InvalidBody)
}

/// An embeddings request for an account: OpenAI's `/embeddings` or Gemini's
/// `:batchEmbedContents` (`:embedContent` for a Gemini client's single one).
fn embed_outgoing(
    call: &Call,
    endpoint: &crate::upstream::Endpoint,
    model: &str,
) -> Result<Outgoing, ProxyError> {
    let upstream = endpoint.protocol;
    let (url, body, convert) = match (call.api, upstream) {
        (_, Protocol::Anthropic) => {
            return Err(TranslateError::unsupported("embeddings", Protocol::Anthropic).into());
        }
        (ClientApi::Embeddings { base64 }, Protocol::OpenAi) => (
            format!("{}/embeddings", endpoint.base_url),
            same_protocol_body(call, Protocol::OpenAi, model),
            Convert::OpenAiEmbeddings {
                from: Protocol::OpenAi,
                base64,
                model: model.to_owned(),
            },
        ),
        (ClientApi::Embeddings { base64 }, Protocol::Gemini) => {
            let req = embeddings::decode_openai(&call.body)?;
            (
                format!(
                    "{}/v1beta/models/{model}:batchEmbedContents",
                    endpoint.base_url
                ),
                to_bytes(&embeddings::encode_gemini(&req, model))?,
                Convert::OpenAiEmbeddings {
                    from: Protocol::Gemini,
                    base64,
                    model: model.to_owned(),
                },
            )
        }
        (ClientApi::GeminiEmbed { batch }, Protocol::Gemini) => {
            let action = if batch {
                "batchEmbedContents"
            } else {
                "embedContent"
            };
            let body = match batch {
                true => embeddings::retarget_gemini_batch(&call.body, model)
                    .map(Bytes::from)
                    .unwrap_or_else(|| call.body.clone()),
                false => call.body.clone(),
            };
            (
                format!("{}/v1beta/models/{model}:{action}", endpoint.base_url),
                body,
                Convert::GeminiEmbeddings {
                    from: Protocol::Gemini,
                    batch,
                },
            )
        }
        (ClientApi::GeminiEmbed { batch }, _) => {
            let req = embeddings::decode_gemini(&call.body, batch)?;
            (
                format!("{}/embeddings", endpoint.base_url),
                to_bytes(&embeddings::encode_openai(&req, model))?,
                Convert::GeminiEmbeddings {
                    from: Protocol::OpenAi,
                    batch,
                },
            )
        }
        _ => return Err(TranslateError::Bad("not an embeddings request".into()).into()),
    };
    if upstream == Protocol::Gemini && !gemini::valid_model(model) {
        return Err(ProxyError::InvalidField {
            field: "model",
            message: "is not a valid Gemini model name (letters, digits, '-', '.', '_')",
        });
    }
    Ok(Outgoing {
        url: url.into(),
        body,
        wire: Wire::Chat,
        translated: true,
        headers: Vec::new(),
        convert,
        local: None,
    })
}

/// A token-count request for an account: its own counter (translated
/// between Anthropic and Gemini), or a local estimate for OpenAI accounts.
fn count_outgoing(
    call: &Call,
    endpoint: &crate::upstream::Endpoint,
    model: &str,
) -> Result<Outgoing, ProxyError> {
    let client = call.api.protocol();
    let upstream = endpoint.protocol;
    let convert = Convert::Count {
        to: client,
        from: upstream,
    };
    let mut out = Outgoing {
        url: String::new().into(),
        body: Bytes::new(),
        wire: Wire::Chat,
        translated: client != upstream,
        headers: Vec::new(),
        convert,
        local: None,
    };
    match upstream {
        Protocol::OpenAi => {
            let n = count::estimate(call.ir()?);
            let answer = match client {
                Protocol::Gemini => count::gemini_answer(n),
                _ => count::anthropic_answer(n),
            };
            out.local = Some(to_bytes(&answer)?);
        }
        Protocol::Anthropic => {
            out.url = format!("{}/v1/messages/count_tokens", endpoint.base_url).into();
            out.body = if client == Protocol::Anthropic {
                same_protocol_body(call, Protocol::Anthropic, model)
            } else {
                to_bytes(&count::encode_anthropic(call.ir()?, model)?)?
            };
            if call.anthropic_headers.is_empty() {
                out.headers.push((
                    HeaderName::from_static("anthropic-version"),
                    ANTHROPIC_VERSION,
                ));
            }
            out.headers.extend(call.anthropic_headers.iter().cloned());
        }
        Protocol::Gemini => {
            if !gemini::valid_model(model) {
                return Err(ProxyError::InvalidField {
                    field: "model",
                    message: "is not a valid Gemini model name (letters, digits, '-', '.', '_')",
                });
            }
            out.url = format!("{}/v1beta/models/{model}:countTokens", endpoint.base_url).into();
            out.body = if client == Protocol::Gemini {
                call.body.clone()
            } else {
                to_bytes(&count::encode_gemini(call.ir()?, model)?)?
            };
        }
    }
    Ok(out)
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

/// Turns a whole upstream answer into the client's answer: the body
/// (translated when the APIs differ) and its usage.
pub fn whole_reply(
    out: &Outgoing,
    api: ClientApi,
    body: Bytes,
    estimate: u64,
) -> Result<(Bytes, Option<ir::Usage>), serde_json::Error> {
    let malformed = || serde_json::Error::io(std::io::Error::other("malformed upstream answer"));
    match &out.convert {
        Convert::Generate => {}
        Convert::OpenAiEmbeddings {
            from,
            base64,
            model,
        } => {
            let e = match from {
                Protocol::Gemini => embeddings::decode_gemini_response(&body),
                _ => embeddings::decode_openai_response(&body),
            }
            .ok_or_else(malformed)?;
            let v = embeddings::encode_openai_response(&e, model, *base64, estimate);
            let usage = v
                .pointer("/usage/prompt_tokens")
                .and_then(serde_json::Value::as_u64);
            return Ok((
                Bytes::from(v.to_string()),
                usage.map(|n| ir::Usage {
                    input: n,
                    ..ir::Usage::default()
                }),
            ));
        }
        Convert::GeminiEmbeddings { from, batch } => {
            if *from == Protocol::Gemini {
                return Ok((body, None));
            }
            let e = embeddings::decode_openai_response(&body).ok_or_else(malformed)?;
            let tokens = e.tokens;
            let v = embeddings::encode_gemini_response(&e, *batch);
            return Ok((
                Bytes::from(v.to_string()),
                tokens.map(|n| ir::Usage {
                    input: n,
                    ..ir::Usage::default()
                }),
            ));
        }
        Convert::Count { to, from } => {
            if to == from {
                return Ok((body, Some(ir::Usage::default())));
            }
            let n = count::read_count(&body).ok_or_else(malformed)?;
            let v = match to {
                Protocol::Gemini => count::gemini_answer(n),
                _ => count::anthropic_answer(n),
            };
            return Ok((Bytes::from(v.to_string()), Some(ir::Usage::default())));
        }
    }
    let (wire, translated) = (out.wire, out.translated);
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
        _ => return Err(malformed()),
    };
    Ok((Bytes::from(encoded.to_string()), Some(decoded.usage)))
}
