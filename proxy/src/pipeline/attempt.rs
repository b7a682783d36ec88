//! One upstream attempt, up to the commit point: the moment the gateway
//! knows the answer is good and starts sending it to the client. Anything
//! that fails before that point can still move to another account.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use http::{HeaderMap, HeaderValue, StatusCode};
use llmpool_crds::table::RetryPolicy;
use tokio::time::{Instant, timeout_at};

use crate::protocol::openai::{self, ChunkKind, Usage};
use crate::protocol::sse::{self, Event};
use crate::snapshot::Member;
use crate::upstream::error::AttemptError;
use crate::upstream::hints;

/// Largest upstream error body kept (to classify it or hand it on).
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Longest SSE line accepted from an upstream.
pub const MAX_SSE_LINE: usize = 4 * 1024 * 1024;

/// A good answer, ready to be sent on.
pub enum Reply {
    /// A whole (non-streaming) response.
    Whole {
        /// Upstream status (2xx).
        status: StatusCode,
        /// Upstream content type.
        content_type: Option<HeaderValue>,
        /// The body, untouched.
        body: Bytes,
        /// Usage read from it.
        usage: Option<Usage>,
        /// The account is at zero remaining budget for this long.
        exhausted: Option<Duration>,
    },
    /// A stream whose first content has arrived.
    Stream(Committed),
}

/// A stream past its commit point.
pub struct Committed {
    /// Upstream status (2xx).
    pub status: StatusCode,
    /// Bytes read so far that end on an event boundary: send first.
    pub prefix: Bytes,
    /// Bytes read so far that do not yet end on an event boundary.
    pub held: BytesMut,
    /// The rest of the upstream body.
    pub upstream: BoxStream<'static, reqwest::Result<Bytes>>,
    /// Parser state, continued by the relay.
    pub parser: sse::Parser,
    /// Usage seen so far.
    pub usage: Option<Usage>,
    /// `[DONE]` already seen.
    pub done: bool,
    /// Per-try deadline.
    pub deadline: Instant,
    /// The account is at zero remaining budget for this long.
    pub exhausted: Option<Duration>,
}

/// Sends one attempt and reads up to the commit point.
pub async fn send(
    member: &Member,
    body: Bytes,
    stream: bool,
    retry: &RetryPolicy,
    max_response: usize,
) -> Result<Reply, AttemptError> {
    let client = member
        .client
        .as_ref()
        .map_err(|e| AttemptError::Unusable(e.clone()))?;
    let endpoint = member
        .account
        .endpoint
        .as_ref()
        .map_err(|e| AttemptError::Unusable(e.clone()))?;
    let started = Instant::now();
    let deadline = started + Duration::from_millis(retry.per_try_timeout_ms);
    let first_byte = deadline.min(started + Duration::from_millis(retry.first_byte_timeout_ms));

    let mut request = client
        .post(&endpoint.chat_url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (name, value) in &endpoint.headers {
        request = request.header(name, value);
    }
    let response = match timeout_at(first_byte, request.send()).await {
        Err(_) => return Err(AttemptError::Timeout),
        Ok(Err(e)) => return Err(AttemptError::Connect(e)),
        Ok(Ok(r)) => r,
    };
    let status = response.status();
    let headers = response.headers().clone();
    if !status.is_success() {
        let body = read_bounded(response, MAX_ERROR_BODY, deadline)
            .await
            .unwrap_or_default();
        let hint = hints::retry_after(&headers, &body, std::time::SystemTime::now());
        let quota_exhausted = openai::error_codes(&body).contains("insufficient_quota");
        return Err(AttemptError::Status {
            status,
            hint,
            quota_exhausted,
            body,
        });
    }
    let exhausted = hints::exhausted_for(&headers);
    if !stream {
        let body = read_bounded_strict(response, max_response, deadline).await?;
        return Ok(Reply::Whole {
            status,
            content_type: content_type(&headers),
            usage: openai::usage_of(&body),
            body,
            exhausted,
        });
    }
    commit_stream(status, response, first_byte, deadline, exhausted).await
}

async fn commit_stream(
    status: StatusCode,
    response: reqwest::Response,
    first_byte: Instant,
    deadline: Instant,
    exhausted: Option<Duration>,
) -> Result<Reply, AttemptError> {
    let mut upstream = response.bytes_stream().boxed();
    let mut parser = sse::Parser::new(MAX_SSE_LINE);
    let mut held = BytesMut::new();
    let mut events: Vec<Event> = Vec::new();
    let mut usage = None;
    loop {
        let chunk = match timeout_at(first_byte, upstream.next()).await {
            Err(_) => return Err(AttemptError::Timeout),
            Ok(None) => return Err(AttemptError::EmptyStream),
            Ok(Some(Err(e))) => return Err(AttemptError::Body(e)),
            Ok(Some(Ok(c))) => c,
        };
        parser.feed(&chunk, &mut events);
        if parser.overflowed() || held.len() > MAX_ERROR_BODY * 16 {
            return Err(AttemptError::TooLarge(MAX_SSE_LINE));
        }
        held.extend_from_slice(&chunk);
        let mut committed = false;
        let mut done = false;
        for event in events.drain(..) {
            match openai::classify_chunk(&event.data) {
                ChunkKind::Error(message) if !committed => {
                    return Err(AttemptError::StreamError(message));
                }
                ChunkKind::Done if !committed => return Err(AttemptError::EmptyStream),
                ChunkKind::Done => done = true,
                ChunkKind::Content => {
                    committed = true;
                    if let Some(u) = openai::usage_of(event.data.as_bytes()) {
                        usage = Some(u);
                    }
                }
                ChunkKind::Preamble | ChunkKind::Error(_) => {}
            }
        }
        if committed {
            let prefix = if parser.at_boundary() {
                held.split().freeze()
            } else {
                Bytes::new()
            };
            return Ok(Reply::Stream(Committed {
                status,
                prefix,
                held,
                upstream,
                parser,
                usage,
                done,
                deadline,
                exhausted,
            }));
        }
    }
}

fn content_type(headers: &HeaderMap) -> Option<HeaderValue> {
    headers.get(http::header::CONTENT_TYPE).cloned()
}

/// Reads a body up to `limit` bytes (the rest is dropped); for error bodies.
async fn read_bounded(
    response: reqwest::Response,
    limit: usize,
    deadline: Instant,
) -> Option<Bytes> {
    let mut stream = response.bytes_stream();
    let mut out = BytesMut::new();
    while let Ok(Some(Ok(chunk))) = timeout_at(deadline, stream.next()).await {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    Some(out.freeze())
}

/// Reads a whole body; a body that breaks off or is too large fails the attempt.
async fn read_bounded_strict(
    response: reqwest::Response,
    limit: usize,
    deadline: Instant,
) -> Result<Bytes, AttemptError> {
    let mut stream = response.bytes_stream();
    let mut out = BytesMut::new();
    loop {
        match timeout_at(deadline, stream.next()).await {
            Err(_) => return Err(AttemptError::Timeout),
            Ok(None) => return Ok(out.freeze()),
            Ok(Some(Err(e))) => return Err(AttemptError::Body(e)),
            Ok(Some(Ok(chunk))) => {
                if out.len() + chunk.len() > limit {
                    return Err(AttemptError::TooLarge(limit));
                }
                out.extend_from_slice(&chunk);
            }
        }
    }
}
