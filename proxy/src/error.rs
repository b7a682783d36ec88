//! Errors a client sees. The mapping to HTTP status, to the client
//! protocol's error shape and to a metric label is one match each, here.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

use crate::protocol::json::ScanError;
use crate::protocol::{Protocol, TranslateError, anthropic, gemini, openai};
use crate::state::{StateError, Unavailability};
use crate::upstream::error::AttemptError;

/// A request the gateway answers itself, with an error.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Body over the configured limit.
    #[error("request body is larger than the {limit} byte limit")]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body did not arrive in time.
    #[error("the request body did not arrive within {} s", within.as_secs())]
    BodyTimeout {
        /// The limit.
        within: Duration,
    },
    /// The body could not be read.
    #[error("could not read the request body")]
    BodyRead(#[source] axum::Error),
    /// Not JSON, not an object, or nested too deeply.
    #[error("{0}")]
    Scan(#[from] ScanError),
    /// JSON that does not fit the API (wrong types, missing fields).
    #[error("invalid request body: {0}")]
    InvalidBody(#[source] serde_json::Error),
    /// A field with a value the gateway refuses.
    #[error("{field}: {message}")]
    InvalidField {
        /// Field name.
        field: &'static str,
        /// What is wrong.
        message: &'static str,
    },
    /// No client key sent while keys are required.
    #[error("missing API key: send `Authorization: Bearer <key>`")]
    MissingKey,
    /// A client key that is not configured.
    #[error("invalid API key")]
    InvalidKey,
    /// The client key's LlmClient is past its expiry time.
    #[error("API key of client {client} expired; ask the gateway's operator for a new one")]
    KeyExpired {
        /// LlmClient name.
        client: String,
    },
    /// The client key's LlmClient is disabled.
    #[error("API key of client {client} is disabled")]
    KeyDisabled {
        /// LlmClient name.
        client: String,
    },
    /// The client key may not use this model.
    #[error(
        "client {client} may not use model `{model}`; GET /v1/models lists the models this key may use"
    )]
    ModelNotAllowed {
        /// LlmClient name.
        client: String,
        /// Requested model (bounded).
        model: String,
    },
    /// The client is over one of its own limits.
    #[error("client {client} is over its own request or token limit; retry after {} s", retry_after.as_secs().max(1))]
    ClientLimited {
        /// LlmClient name.
        client: String,
        /// When its windows admit the request.
        retry_after: Duration,
    },
    /// No route serves the model.
    #[error("model `{0}` is not served by this gateway; GET /v1/models lists the models it serves")]
    UnknownModel(String),
    /// The route exists but nothing can serve it.
    #[error("model route `{route}` has no usable account: {reason}")]
    RouteNotReady {
        /// Route name.
        route: String,
        /// Why.
        reason: String,
    },
    /// Unknown path.
    #[error("unsupported endpoint {method} {path}")]
    UnknownEndpoint {
        /// Method.
        method: String,
        /// Path (no query string: it may hold a key).
        path: String,
    },
    /// Every account is cooling down, failing, blocked or at a limit.
    #[error("no account can take model `{model}` now ({}); retry after {} s", why_text(why), retry_after.as_secs().max(1))]
    AllBusy {
        /// Requested model.
        model: String,
        /// Earliest time one frees up.
        retry_after: Duration,
        /// What keeps the accounts out.
        why: Unavailability,
    },
    /// Every attempt failed.
    #[error("upstream failed after {attempts} attempt(s); last failure: account {account}: {last}")]
    UpstreamFailed {
        /// Attempts made.
        attempts: u32,
        /// Account of the last attempt.
        account: String,
        /// Last failure.
        #[source]
        last: AttemptError,
    },
    /// An upstream rejected the account's credentials (the upstream body is
    /// never passed on: it may echo part of the key).
    #[error(
        "upstream account {account} was refused ({status}); the gateway's operator must fix its credentials"
    )]
    UpstreamAuth {
        /// Account name.
        account: String,
        /// Upstream status.
        status: StatusCode,
    },
    /// The shared state failed.
    #[error("shared state unavailable")]
    State(#[from] StateError),
    /// This replica relays as many streams as it may.
    #[error("this gateway replica is relaying its limit of {limit} streams; retry after 1 s")]
    TooManyStreams {
        /// The limit.
        limit: usize,
    },
    /// Cluster mode before the first configuration arrived.
    #[error("the gateway has not loaded its configuration yet")]
    NotLoaded,
    /// The request cannot be expressed for the accounts that could serve it.
    #[error("{0}")]
    Translate(#[from] TranslateError),
    /// The request's token estimate exceeds every account's window.
    #[error(
        "the request needs about {estimate} tokens (prompt estimate plus the output limit), more than any account of this model can ever take ({largest} per window); lower the output limit"
    )]
    NeverFits {
        /// Tokens the request would reserve.
        estimate: u64,
        /// The largest window among the accounts.
        largest: u64,
    },
    /// A `previous_response_id` the gateway cannot place on an account.
    #[error(
        "previous_response_id `{id}` is not known to this gateway (created elsewhere, or its record expired); send the conversation as input instead"
    )]
    UnknownResponse {
        /// The id (bounded).
        id: String,
    },
    /// The account holding a stored response cannot take a request now.
    #[error("previous_response_id lives on account {account}, which is at its limits or cooling down; retry after {} s", retry_after.as_secs().max(1))]
    PinnedBusy {
        /// Account name.
        account: String,
        /// Earliest time it frees up.
        retry_after: Duration,
    },
    /// An upstream refused the request itself (a 4xx another account would
    /// answer the same); its message, for a client of another protocol.
    #[error("upstream account {account} refused the request: {message}")]
    UpstreamRejected {
        /// Account name.
        account: String,
        /// Upstream status.
        status: StatusCode,
        /// The upstream's error message (bounded).
        message: String,
    },
}

/// What keeps the accounts out, in words: "2 cooling down after rate
/// limits, 1 failing (circuit open)".
fn why_text(why: &Unavailability) -> String {
    let parts: Vec<String> = [
        (why.rate_limited, "cooling down after rate limits"),
        (
            why.failing,
            "failing (circuit open after repeated errors or timeouts)",
        ),
        (
            why.blocked,
            "blocked (credentials refused or quota exhausted)",
        ),
        (why.at_limit, "at their configured limits"),
        (why.tried, "already tried by this request"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        "all rate limited or at capacity".to_owned()
    } else {
        parts.join(", ")
    }
}

impl ProxyError {
    /// HTTP status for the client.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ProxyError::BodyRead(_)
            | ProxyError::Scan(_)
            | ProxyError::InvalidBody(_)
            | ProxyError::InvalidField { .. }
            | ProxyError::Translate(_)
            | ProxyError::UnknownResponse { .. }
            | ProxyError::NeverFits { .. } => StatusCode::BAD_REQUEST,
            ProxyError::PinnedBusy { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::UpstreamRejected { status, .. } => *status,
            ProxyError::MissingKey
            | ProxyError::InvalidKey
            | ProxyError::KeyExpired { .. }
            | ProxyError::KeyDisabled { .. } => StatusCode::UNAUTHORIZED,
            ProxyError::ModelNotAllowed { .. } => StatusCode::FORBIDDEN,
            ProxyError::ClientLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::UnknownModel(_) | ProxyError::UnknownEndpoint { .. } => {
                StatusCode::NOT_FOUND
            }
            ProxyError::RouteNotReady { .. }
            | ProxyError::State(_)
            | ProxyError::NotLoaded
            | ProxyError::TooManyStreams { .. } => StatusCode::SERVICE_UNAVAILABLE,
            // rate limits and full accounts are the client's cue to slow
            // down; accounts that fail or are refused are the gateway's outage
            ProxyError::AllBusy { why, .. }
                if why.rate_limited + why.at_limit == 0 && why.failing + why.blocked > 0 =>
            {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::AllBusy { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::UpstreamFailed {
                last: AttemptError::Timeout,
                ..
            } => StatusCode::GATEWAY_TIMEOUT,
            _ if self.overloaded() => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::UpstreamFailed { .. } | ProxyError::UpstreamAuth { .. } => {
                StatusCode::BAD_GATEWAY
            }
        }
    }

    /// The variant's name, as a metric label.
    pub fn label(&self) -> &'static str {
        match self {
            ProxyError::BodyTooLarge { .. } => "body_too_large",
            ProxyError::BodyTimeout { .. } => "body_timeout",
            ProxyError::BodyRead(_) => "body_read",
            ProxyError::Scan(_) => "invalid_json",
            ProxyError::InvalidBody(_) => "invalid_body",
            ProxyError::InvalidField { .. } => "invalid_field",
            ProxyError::MissingKey => "missing_key",
            ProxyError::InvalidKey => "invalid_key",
            ProxyError::KeyExpired { .. } => "key_expired",
            ProxyError::KeyDisabled { .. } => "key_disabled",
            ProxyError::ModelNotAllowed { .. } => "model_not_allowed",
            ProxyError::ClientLimited { .. } => "client_limited",
            ProxyError::UnknownModel(_) => "unknown_model",
            ProxyError::RouteNotReady { .. } => "route_not_ready",
            ProxyError::UnknownEndpoint { .. } => "unknown_endpoint",
            ProxyError::AllBusy { .. } => "all_busy",
            ProxyError::UpstreamFailed { .. } => "upstream_failed",
            ProxyError::UpstreamAuth { .. } => "upstream_auth",
            ProxyError::State(_) => "state",
            ProxyError::NotLoaded => "not_loaded",
            ProxyError::TooManyStreams { .. } => "too_many_streams",
            ProxyError::Translate(_) => "cannot_translate",
            ProxyError::UnknownResponse { .. } => "unknown_response",
            ProxyError::NeverFits { .. } => "never_fits",
            ProxyError::PinnedBusy { .. } => "pinned_busy",
            ProxyError::UpstreamRejected { .. } => "upstream_rejected",
        }
    }

    /// OpenAI `error.type` and `error.code`.
    fn openai_kind(&self) -> (&'static str, &'static str) {
        match self {
            ProxyError::BodyTooLarge { .. } => ("invalid_request_error", "request_too_large"),
            ProxyError::BodyTimeout { .. } => ("invalid_request_error", "request_timeout"),
            ProxyError::BodyRead(_) | ProxyError::Scan(_) | ProxyError::InvalidBody(_) => {
                ("invalid_request_error", "invalid_json")
            }
            ProxyError::InvalidField { .. } | ProxyError::Translate(_) => {
                ("invalid_request_error", "invalid_value")
            }
            ProxyError::UnknownResponse { .. } => {
                ("invalid_request_error", "previous_response_not_found")
            }
            ProxyError::NeverFits { .. } => {
                ("invalid_request_error", "request_too_large_for_accounts")
            }
            ProxyError::PinnedBusy { .. } => ("rate_limit_error", "rate_limit_exceeded"),
            ProxyError::UpstreamRejected { status, .. } => match status.as_u16() {
                404 => ("invalid_request_error", "model_not_found"),
                _ => ("invalid_request_error", "upstream_rejected"),
            },
            ProxyError::MissingKey | ProxyError::InvalidKey => {
                ("invalid_request_error", "invalid_api_key")
            }
            ProxyError::KeyExpired { .. } => ("invalid_request_error", "api_key_expired"),
            ProxyError::KeyDisabled { .. } => ("invalid_request_error", "api_key_disabled"),
            ProxyError::ModelNotAllowed { .. } => ("permission_error", "model_not_allowed"),
            ProxyError::ClientLimited { .. } => ("rate_limit_error", "client_rate_limit_exceeded"),
            ProxyError::UnknownModel(_) => ("invalid_request_error", "model_not_found"),
            ProxyError::UnknownEndpoint { .. } => ("invalid_request_error", "unknown_url"),
            ProxyError::AllBusy { .. } if self.status() == StatusCode::SERVICE_UNAVAILABLE => {
                ("server_error", "accounts_unavailable")
            }
            ProxyError::AllBusy { .. } => ("rate_limit_error", "rate_limit_exceeded"),
            ProxyError::RouteNotReady { .. } | ProxyError::State(_) | ProxyError::NotLoaded => {
                ("server_error", "service_unavailable")
            }
            ProxyError::TooManyStreams { .. } => ("server_error", "overloaded"),
            ProxyError::UpstreamFailed { .. } | ProxyError::UpstreamAuth { .. } => {
                ("server_error", "upstream_error")
            }
        }
    }

    fn param(&self) -> Option<&'static str> {
        match self {
            ProxyError::InvalidField { field, .. } => Some(field),
            ProxyError::UnknownModel(_) | ProxyError::ModelNotAllowed { .. } => Some("model"),
            ProxyError::NeverFits { .. } => Some("max_tokens"),
            ProxyError::UnknownResponse { .. } => Some("previous_response_id"),
            _ => None,
        }
    }

    /// Whether every account failed as overloaded (Anthropic clients expect
    /// a 529 `overloaded_error` then).
    fn overloaded(&self) -> bool {
        matches!(self, ProxyError::UpstreamFailed { last, .. }
            if last.class() == Some(llmpool_crds::route::FailureClass::Overloaded))
    }

    /// Anthropic `error.type` for a status.
    fn anthropic_kind(&self, status: StatusCode) -> &'static str {
        match status.as_u16() {
            400 | 405..=412 | 414..=428 => "invalid_request_error",
            401 => "authentication_error",
            402 => "billing_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            _ if self.overloaded() => "overloaded_error",
            _ => "api_error",
        }
    }

    /// The response in the client's protocol.
    pub fn into_response(self, protocol: Protocol) -> Response {
        let mut status = self.status();
        let message = self.to_string();
        let body = match protocol {
            Protocol::OpenAi => {
                let (kind, code) = self.openai_kind();
                openai::error_body(&message, kind, code, self.param())
            }
            Protocol::Anthropic => {
                if self.overloaded() {
                    status = StatusCode::from_u16(529).unwrap_or(status);
                }
                anthropic::error_body(&message, self.anthropic_kind(status))
            }
            Protocol::Gemini => {
                if self.overloaded() {
                    status = StatusCode::SERVICE_UNAVAILABLE;
                }
                gemini::error_body(&message, status.as_u16())
            }
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let ProxyError::AllBusy { retry_after, .. }
        | ProxyError::PinnedBusy { retry_after, .. }
        | ProxyError::ClientLimited { retry_after, .. } = &self
        {
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let ProxyError::TooManyStreams { .. } = &self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(1u64));
        }
        response
    }
}
