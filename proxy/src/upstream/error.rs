//! Why one upstream attempt failed, and what that means for the account and
//! for the request. The mapping lives here, in one place.

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use llmpool_crds::route::FailureClass;
use llmpool_crds::table::CooldownPolicy;

use crate::state::Outcome;

/// The shortest cooldown a 429 causes, whatever its hint says.
pub const MIN_COOLDOWN: Duration = Duration::from_secs(1);

/// A failed attempt.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// The connection failed or was reset before an answer.
    #[error("connection failed: {0}")]
    Connect(#[source] super::client::SendError),
    /// No answer (or no first content) within the first-byte limit, or the
    /// attempt ran past its per-try limit before anything was sent on.
    #[error("timed out waiting for the upstream")]
    Timeout,
    /// The upstream answered with an error status.
    #[error("HTTP {status}")]
    Status {
        /// Upstream status.
        status: StatusCode,
        /// Cooldown hint, for 429s.
        hint: Option<Duration>,
        /// The error body says the quota or billing is exhausted.
        quota_exhausted: bool,
        /// Upstream body (bounded), returned to the client when not retried.
        body: Bytes,
    },
    /// A 200 stream that ended before any content.
    #[error("the stream ended before any content")]
    EmptyStream,
    /// A 200 stream whose first event was an error.
    #[error("the stream began with an error: {0}")]
    StreamError(String),
    /// The response body broke off before it was complete.
    #[error("the response body broke off: {0}")]
    Body(#[source] hyper::Error),
    /// The response was larger than the gateway will buffer.
    #[error("the response exceeded {0} bytes")]
    TooLarge(usize),
    /// A whole response that is not the JSON its protocol promises.
    #[error("the upstream response is not valid JSON of its protocol")]
    Malformed,
    /// The upstream answered with a redirect, which the gateway never
    /// follows: a request (and the account's key) goes only to the
    /// account's own base URL.
    #[error(
        "the upstream answered with a redirect (HTTP {0}), which is never followed; check the account's baseUrl"
    )]
    Redirected(StatusCode),
    /// The account cannot be called at all (an unusable egress proxy).
    #[error("{0}")]
    Unusable(String),
}

impl AttemptError {
    /// The failure class, or None when the failure belongs to the request
    /// (a 400, say) and another account would answer the same.
    pub fn class(&self) -> Option<FailureClass> {
        match self {
            AttemptError::Connect(e) if e.is_timeout() => Some(FailureClass::Timeout),
            AttemptError::Connect(_) | AttemptError::Body(_) | AttemptError::Unusable(_) => {
                Some(FailureClass::Connect)
            }
            AttemptError::Timeout => Some(FailureClass::Timeout),
            AttemptError::EmptyStream
            | AttemptError::Redirected(_)
            | AttemptError::StreamError(_)
            | AttemptError::Malformed
            | AttemptError::TooLarge(_) => Some(FailureClass::ServerError),
            AttemptError::Status {
                status,
                quota_exhausted,
                ..
            } => match status.as_u16() {
                429 if *quota_exhausted => Some(FailureClass::Auth),
                429 => Some(FailureClass::RateLimited),
                401..=403 => Some(FailureClass::Auth),
                408 => Some(FailureClass::Timeout),
                503 | 529 => Some(FailureClass::Overloaded),
                500..=599 => Some(FailureClass::ServerError),
                _ => None,
            },
        }
    }

    /// What the shared state records for the account.
    pub fn outcome(&self, cooldown: &CooldownPolicy) -> Outcome {
        let cap = Duration::from_millis(cooldown.max_ms);
        match (self.class(), self) {
            (Some(FailureClass::RateLimited), AttemptError::Status { hint, .. }) => {
                Outcome::RateLimited {
                    // a `Retry-After: 0` still cools the account a moment:
                    // otherwise every request would try it again at once
                    cooldown: hint
                        .unwrap_or(Duration::from_millis(cooldown.default_ms))
                        .max(MIN_COOLDOWN)
                        .min(cap),
                }
            }
            (Some(FailureClass::Auth), _) => Outcome::AccountBlocked { recheck: cap },
            _ => Outcome::Failed,
        }
    }

    /// A label for metrics and logs (never includes upstream text).
    pub fn label(&self) -> &'static str {
        match self.class() {
            Some(FailureClass::RateLimited) => "rate_limited",
            Some(FailureClass::ServerError) => "server_error",
            Some(FailureClass::Overloaded) => "overloaded",
            Some(FailureClass::Connect) => "connect_error",
            Some(FailureClass::Timeout) => "timeout",
            Some(FailureClass::Auth) => "auth_error",
            None => "client_error",
        }
    }
}
