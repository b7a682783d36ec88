//! Wire formats: pure parsing, building and translation, no I/O.
//!
//! Same-protocol traffic is forwarded as bytes (only `model` rewritten).
//! Different protocols meet in [`ir`]: each protocol module decodes into it
//! and encodes out of it, for requests, whole responses and stream events.

pub mod anthropic;
pub mod count;
pub mod embeddings;
pub mod gemini;
pub mod ir;
pub mod json;
pub mod openai;
pub mod schema;
pub mod signature;
pub mod sse;
pub mod stream;

/// A protocol family: the API a client speaks, the API an account speaks,
/// and the shape of the errors each expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// OpenAI Chat Completions (and the Responses API's error shape).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini generateContent.
    Gemini,
}

impl Protocol {
    /// The protocol an account of `provider` speaks.
    pub fn of_provider(provider: llmpool_crds::Provider) -> Self {
        match provider {
            llmpool_crds::Provider::Openai | llmpool_crds::Provider::OpenaiCompatible => {
                Protocol::OpenAi
            }
            llmpool_crds::Provider::Anthropic => Protocol::Anthropic,
            llmpool_crds::Provider::Gemini => Protocol::Gemini,
        }
    }

    /// The provider kind's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::OpenAi => "openai",
            Protocol::Anthropic => "anthropic",
            Protocol::Gemini => "gemini",
        }
    }
}

/// `error.<kind>` and `error.message` of a JSON error body (Anthropic names
/// the kind `type`, Gemini `status`); missing fields are empty.
pub fn error_fields(body: &[u8], kind: &str) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?;
    let field = |name: &str| {
        e.get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Some((field(kind), field("message")))
}

/// A generation API on the wire: what a client calls, and what an account
/// is called with. Same wire on both ends means byte pass-through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wire {
    /// OpenAI chat completions.
    Chat,
    /// OpenAI Responses.
    Responses,
    /// Anthropic messages.
    Messages,
    /// Gemini generateContent.
    Generate,
}

impl Wire {
    /// The protocol family (error shapes, signature origins, decoders).
    pub fn protocol(self) -> Protocol {
        match self {
            Wire::Chat | Wire::Responses => Protocol::OpenAi,
            Wire::Messages => Protocol::Anthropic,
            Wire::Generate => Protocol::Gemini,
        }
    }
}

/// Why a request could not be translated for an account.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// The body does not fit the client's API.
    #[error("invalid request body: {0}")]
    Invalid(#[source] serde_json::Error),
    /// The request uses something the target cannot express.
    #[error("{feature} is not supported by {provider} accounts")]
    Unsupported {
        /// What.
        feature: String,
        /// Target provider kind.
        provider: &'static str,
    },
    /// The request is inconsistent (a tool result for an unknown call, bad
    /// image data, a schema nested too deeply).
    #[error("{0}")]
    Bad(String),
}

impl TranslateError {
    /// A feature the target provider cannot express.
    pub fn unsupported(feature: impl Into<String>, target: Protocol) -> Self {
        TranslateError::Unsupported {
            feature: feature.into(),
            provider: target.name(),
        }
    }
}

#[cfg(test)]
mod request_tests;

#[cfg(test)]
mod golden_tests;

#[cfg(test)]
mod property_tests;
