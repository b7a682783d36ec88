//! One upstream attempt, up to the commit point: the moment the gateway
//! knows the answer is good and starts sending it to the client. Anything
//! that fails before that point can still move to another account.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyDataStream;
use hyper::body::Incoming;
use llmpool_crds::table::RetryPolicy;
use tokio::time::{Instant, timeout_at};

use super::call::{self, ClientApi, Outgoing};
use crate::app::Buffers;
use crate::protocol::ir::Usage;
use crate::protocol::sse::{self, Event};
use crate::protocol::stream::{self as pstream, ChunkKind, Framer, GeminiFraming, Translator};
use crate::protocol::{Wire, openai};
use crate::snapshot::Member;
use crate::upstream::error::AttemptError;
use crate::upstream::hints;
use crate::upstream::redact::Redactor;

/// Largest upstream error body kept (to classify it or hand it on).
const MAX_ERROR_BODY: usize = 64 * 1024;

static JSON: HeaderValue = HeaderValue::from_static("application/json");

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
        /// The upstream's response id (Responses API), for affinity.
        response_id: Option<String>,
    },
    /// A stream whose first content has arrived.
    Stream(Committed),
}

/// How a committed stream reaches the client.
pub enum Mode {
    /// Same protocol: the upstream's bytes, untouched.
    Pass,
    /// Same protocol (Gemini), re-framed as one JSON array for the client.
    Reframe(Framer),
    /// Another protocol: every event translated.
    Translate(Box<Translator>),
}

/// A stream past its commit point.
pub struct Committed {
    /// Upstream status (2xx).
    pub status: StatusCode,
    /// How events reach the client.
    pub mode: Mode,
    /// The upstream's wire API.
    pub wire: Wire,
    /// The upstream's response id (Responses API), for affinity.
    pub response_id: Option<String>,
    /// Cleans the account's key out of what is relayed.
    pub redactor: Redactor,
    /// Bytes ready for the client: send first.
    pub prefix: Bytes,
    /// Pass-through bytes read so far that do not yet end on an event boundary.
    pub held: BytesMut,
    /// The rest of the upstream body.
    pub upstream: BoxStream<'static, Result<Bytes, hyper::Error>>,
    /// Parser state, continued by the relay.
    pub parser: sse::Parser,
    /// Usage seen so far.
    pub usage: Option<Usage>,
    /// `[DONE]` already seen.
    pub done: bool,
    /// Per-try deadline.
    pub deadline: Instant,
    /// Longest silence allowed between two upstream chunks.
    pub idle: Duration,
    /// The account is at zero remaining budget for this long.
    pub exhausted: Option<Duration>,
}

/// Sends one attempt and reads up to the commit point.
pub async fn send(
    member: &Member,
    out: Outgoing,
    api: ClientApi,
    stream: bool,
    retry: &RetryPolicy,
    buffers: Buffers,
    estimate: u64,
) -> Result<Reply, AttemptError> {
    let client = member
        .client
        .as_ref()
        .map_err(|e| AttemptError::Unusable(e.clone()))?;
    let redactor = member
        .account
        .endpoint
        .as_ref()
        .map(|e| e.redactor.clone())
        .unwrap_or_default();
    if let Some(body) = out.local {
        return Ok(Reply::Whole {
            status: StatusCode::OK,
            content_type: None,
            usage: None,
            body,
            exhausted: None,
            response_id: None,
        });
    }
    let started = Instant::now();
    let deadline = started + Duration::from_millis(retry.per_try_timeout_ms);
    let first_byte = deadline.min(started + Duration::from_millis(retry.first_byte_timeout_ms));

    let account_headers = match &member.account.endpoint {
        Ok(endpoint) => endpoint.headers.as_slice(),
        Err(_) => &[],
    };
    let headers = std::iter::once((&http::header::CONTENT_TYPE, &JSON))
        .chain(account_headers.iter().map(|(n, v)| (n, v)))
        .chain(out.headers.iter().map(|(n, v)| (n, v)));
    let wire = out.wire;
    let sending = client.post(&out.url, headers, out.body.clone());
    let response = match timeout_at(first_byte, sending).await {
        Err(_) => return Err(AttemptError::Timeout),
        Ok(Err(e)) => return Err(AttemptError::Connect(e)),
        Ok(Ok(r)) => r,
    };
    let status = response.status();
    if status.is_redirection() {
        return Err(AttemptError::Redirected(status));
    }
    let (head, body) = response.into_parts();
    let headers = &head.headers;
    if !status.is_success() {
        let body = read_bounded(body, MAX_ERROR_BODY, deadline)
            .await
            .unwrap_or_default();
        let now = std::time::SystemTime::now();
        let body = redactor.bytes(&body);
        return Err(hints::status_error(
            wire.protocol(),
            status,
            headers,
            body,
            now,
        ));
    }
    let exhausted = hints::exhausted_for(headers, std::time::SystemTime::now());
    if !stream {
        let body = read_bounded_strict(body, buffers.response, deadline).await?;
        let response_id = (wire == Wire::Responses)
            .then(|| openai::responses::id_of(&body))
            .flatten();
        let (body, usage) =
            call::whole_reply(&out, api, body, estimate).map_err(|_| AttemptError::Malformed)?;
        return Ok(Reply::Whole {
            status,
            content_type: if out.translated {
                None
            } else {
                content_type(headers)
            },
            usage,
            body,
            exhausted,
            response_id,
        });
    }
    let mode = if out.translated {
        Mode::Translate(Box::new(Translator::new(
            pstream::Decoder::new(wire.protocol()),
            api.encoder(),
        )))
    } else {
        match api {
            ClientApi::Gemini {
                framing: GeminiFraming::Array,
            } => Mode::Reframe(Framer::new(GeminiFraming::Array)),
            _ => Mode::Pass,
        }
    };
    let timing = Timing {
        first_byte,
        deadline,
        idle: Duration::from_millis(retry.stream_idle_timeout_ms),
        max_event: buffers.stream_event,
    };
    commit_stream(status, body, mode, wire, timing, exhausted, redactor).await
}

/// The time limits of one streamed attempt.
struct Timing {
    first_byte: Instant,
    deadline: Instant,
    idle: Duration,
    /// Longest line or event buffered.
    max_event: usize,
}

async fn commit_stream(
    status: StatusCode,
    body: Incoming,
    mut mode: Mode,
    wire: Wire,
    timing: Timing,
    exhausted: Option<Duration>,
    redactor: Redactor,
) -> Result<Reply, AttemptError> {
    let mut upstream = BodyDataStream::new(body).boxed();
    let mut parser = sse::Parser::new(timing.max_event);
    let mut held = BytesMut::new();
    let mut events: Vec<Event> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    let mut usage = None;
    let mut committed = false;
    let mut done = false;
    let mut response_id = None;
    loop {
        let chunk = match timeout_at(timing.first_byte, upstream.next()).await {
            Err(_) => return Err(AttemptError::Timeout),
            Ok(None) => return Err(AttemptError::EmptyStream),
            Ok(Some(Err(e))) => return Err(AttemptError::Body(e)),
            Ok(Some(Ok(c))) => c,
        };
        parser.feed(&chunk, &mut events);
        if parser.overflowed() || held.len() > MAX_ERROR_BODY * 16 {
            return Err(AttemptError::TooLarge(timing.max_event));
        }
        if let Mode::Pass = mode {
            held.extend_from_slice(&chunk);
        }
        for event in events.drain(..) {
            match &mut mode {
                Mode::Translate(t) => {
                    t.feed(&event, &mut out)
                        .map_err(|e| AttemptError::StreamError(redactor.text(&e.to_string())))?;
                    committed |= t.content;
                    done |= pstream::is_done(wire, &event);
                }
                Mode::Pass | Mode::Reframe(_) => {
                    if wire == Wire::Responses
                        && response_id.is_none()
                        && event.event.as_deref() == Some("response.created")
                    {
                        response_id = openai::responses::id_of(event.data.as_bytes());
                    }
                    match pstream::classify(wire, &event) {
                        ChunkKind::Error(message) if !committed => {
                            return Err(AttemptError::StreamError(redactor.text(&message)));
                        }
                        ChunkKind::Done if !committed => return Err(AttemptError::EmptyStream),
                        ChunkKind::Done => done = true,
                        ChunkKind::Content => committed = true,
                        ChunkKind::Preamble | ChunkKind::Error(_) => {}
                    }
                    pstream::read_usage(wire, &event, &mut usage);
                    if wire == Wire::Generate && pstream::is_done(wire, &event) {
                        done = true;
                    }
                    if let Mode::Reframe(framer) = &mut mode {
                        framer.write_raw(event.data.as_bytes(), &mut out);
                    }
                }
            }
        }
        if committed {
            let prefix = match &mode {
                Mode::Pass if parser.at_boundary() => {
                    let first = held.split().freeze();
                    if redactor.holds_secret(&first) {
                        redactor.bytes(&first)
                    } else {
                        first
                    }
                }
                Mode::Pass => Bytes::new(),
                _ => Bytes::from(std::mem::take(&mut out)),
            };
            if let Mode::Translate(t) = &mode {
                usage = t.usage;
            }
            return Ok(Reply::Stream(Committed {
                status,
                mode,
                wire,
                response_id,
                redactor,
                prefix,
                held,
                upstream,
                parser,
                usage,
                done,
                deadline: timing.deadline,
                idle: timing.idle,
                exhausted,
            }));
        }
    }
}

fn content_type(headers: &HeaderMap) -> Option<HeaderValue> {
    headers.get(http::header::CONTENT_TYPE).cloned()
}

/// Reads a body up to `limit` bytes (the rest is dropped); for error bodies.
async fn read_bounded(body: Incoming, limit: usize, deadline: Instant) -> Option<Bytes> {
    let mut stream = BodyDataStream::new(body);
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
    body: Incoming,
    limit: usize,
    deadline: Instant,
) -> Result<Bytes, AttemptError> {
    let mut stream = BodyDataStream::new(body);
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
