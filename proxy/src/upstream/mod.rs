//! Provider clients: hosts, paths and auth. Small on purpose; the pipeline
//! decides what to send and what an answer means.

pub mod client;
pub mod clients;
pub mod connect;
pub mod error;
pub mod hints;
pub mod redact;

use http::{HeaderName, HeaderValue};
use llmpool_crds::{CompiledAccount, Provider};

use crate::protocol::Protocol;

/// What the gateway needs to call one account, built once per snapshot.
#[derive(Debug)]
pub struct Endpoint {
    /// The protocol the account speaks.
    pub protocol: Protocol,
    /// Whether the account is OpenAI itself (not a compatible server).
    pub openai_itself: bool,
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// The OpenAI chat endpoint (the hot path's only URL), parsed once.
    pub chat: Target,
    /// Headers for every request: auth (marked sensitive) and the account's extras.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Cleans this account's key out of upstream text.
    pub redactor: redact::Redactor,
}

/// Why an account's endpoint could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// A configured header does not fit HTTP.
    #[error("header {0} is not valid HTTP")]
    Header(String),
    /// The credential contains bytes HTTP headers cannot carry.
    #[error("the credential cannot be sent in an HTTP header")]
    Credential,
}

impl Endpoint {
    /// Builds the endpoint for an account and its key.
    pub fn new(account: &CompiledAccount, key: Option<&str>) -> Result<Self, EndpointError> {
        let chat = Target::parsed(format!("{}/chat/completions", account.base_url));
        let mut headers = Vec::new();
        for (k, v) in &account.headers {
            let name =
                HeaderName::try_from(k.as_str()).map_err(|_| EndpointError::Header(k.clone()))?;
            let value =
                HeaderValue::try_from(v.as_str()).map_err(|_| EndpointError::Header(k.clone()))?;
            headers.push((name, value));
        }
        if let Some(key) = key {
            let (name, text) = match account.provider {
                Provider::Openai | Provider::OpenaiCompatible => {
                    (http::header::AUTHORIZATION, format!("Bearer {key}"))
                }
                Provider::Anthropic => (HeaderName::from_static("x-api-key"), key.to_owned()),
                Provider::Gemini => (HeaderName::from_static("x-goog-api-key"), key.to_owned()),
            };
            let mut value = HeaderValue::try_from(text).map_err(|_| EndpointError::Credential)?;
            value.set_sensitive(true);
            headers.push((name, value));
        }
        Ok(Self {
            protocol: Protocol::of_provider(account.provider),
            openai_itself: account.provider == Provider::Openai,
            base_url: account.base_url.clone(),
            chat,
            headers,
            redactor: redact::Redactor::new(key),
        })
    }

    /// The generation URL for `model`: chat completions, messages, or
    /// Gemini's `models/{model}:generateContent` (`:streamGenerateContent`
    /// with SSE when streaming). The model must already be checked safe for
    /// a URL path (`gemini::valid_model`).
    pub fn generate_url(&self, model: &str, stream: bool) -> Target {
        match self.protocol {
            Protocol::OpenAi => self.chat.clone(),
            Protocol::Anthropic => format!("{}/v1/messages", self.base_url).into(),
            Protocol::Gemini if stream => format!(
                "{}/v1beta/models/{model}:streamGenerateContent?alt=sse",
                self.base_url
            )
            .into(),
            Protocol::Gemini => {
                format!("{}/v1beta/models/{model}:generateContent", self.base_url).into()
            }
        }
    }
}

/// Where an attempt is sent: parsed once when it is built for a snapshot
/// (the chat URL), or kept as text and parsed when sent (a URL that does
/// not parse fails the attempt there, with the reason).
#[derive(Clone, Debug)]
pub enum Target {
    /// Parsed ahead of time.
    Parsed(http::Uri),
    /// Parsed when sent.
    Text(String),
}

impl From<String> for Target {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

impl Target {
    /// Parses now, keeping the text when it does not parse.
    pub fn parsed(text: String) -> Self {
        match http::Uri::try_from(text.as_str()) {
            Ok(uri) => Self::Parsed(uri),
            Err(_) => Self::Text(text),
        }
    }

    /// The URI to send to.
    pub fn uri(&self) -> Result<http::Uri, http::Error> {
        match self {
            Self::Parsed(uri) => Ok(uri.clone()),
            Self::Text(text) => Ok(http::Uri::try_from(text.as_str())?),
        }
    }
}
