//! After the commit point: relay the upstream stream to the client byte for
//! byte, on event boundaries, reading usage on the side. A failure now cannot
//! be retried, so the stream ends with the protocol's own error event.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::{Instant, timeout_at};

use super::attempt::{Committed, Mode};
use super::lease::LeaseGuard;
use crate::app::App;
use crate::protocol::sse::Event;
use crate::protocol::stream as pstream;
use crate::protocol::{Protocol, Wire, anthropic, gemini, openai};
use crate::state::Outcome;

/// Relay state, driven by `Body::from_stream`.
pub struct Relay {
    stream: Committed,
    guard: Option<LeaseGuard>,
    app: Arc<App>,
    started: Instant,
    estimate: u64,
    bytes: u64,
    events: Vec<Event>,
    client: Protocol,
    route: String,
}

impl Relay {
    /// Starts relaying a committed stream.
    pub fn new(
        stream: Committed,
        guard: LeaseGuard,
        app: Arc<App>,
        started: Instant,
        estimate: u64,
        client: Protocol,
        route: &str,
    ) -> Self {
        app.metrics.streams_open.inc();
        Self {
            stream,
            guard: Some(guard),
            app,
            started,
            estimate,
            bytes: 0,
            events: Vec::new(),
            client,
            route: route.to_owned(),
        }
    }

    /// Turns the relay into a body stream.
    pub fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
        futures_util::stream::unfold(self, |mut relay| async move {
            let item = relay.next().await?;
            Some((Ok(item), relay))
        })
    }

    async fn next(&mut self) -> Option<Bytes> {
        if !self.stream.prefix.is_empty() {
            return Some(std::mem::take(&mut self.stream.prefix));
        }
        self.guard.as_ref()?;
        let upstream = self.stream.wire;
        loop {
            let quiet_until = self.stream.deadline.min(Instant::now() + self.stream.idle);
            match timeout_at(quiet_until, self.stream.upstream.next()).await {
                Ok(Some(Ok(chunk))) => {
                    self.bytes += chunk.len() as u64;
                    self.stream.parser.feed(&chunk, &mut self.events);
                    if self.stream.parser.overflowed() {
                        return Some(self.fail("upstream sent an over-long stream line").await);
                    }
                    let mut out = Vec::new();
                    let mut broken = None;
                    for event in self.events.drain(..) {
                        if pstream::is_done(upstream, &event) {
                            self.stream.done = true;
                        }
                        match &mut self.stream.mode {
                            Mode::Pass => {
                                pstream::read_usage(upstream, &event, &mut self.stream.usage);
                            }
                            Mode::Reframe(framer) => {
                                pstream::read_usage(upstream, &event, &mut self.stream.usage);
                                framer.write_raw(event.data.as_bytes(), &mut out);
                            }
                            Mode::Translate(t) => {
                                if let Err(e) = t.feed(&event, &mut out) {
                                    broken = Some(e.to_string());
                                    break;
                                }
                                self.stream.usage = t.usage;
                            }
                        }
                    }
                    self.events.clear();
                    if let Some(message) = broken {
                        let message = self.stream.redactor.text(&message);
                        let mut bytes = out;
                        bytes.extend_from_slice(&self.fail(&message).await);
                        return Some(Bytes::from(bytes));
                    }
                    let ready = match &self.stream.mode {
                        Mode::Pass => {
                            self.stream.held.extend_from_slice(&chunk);
                            if !self.stream.parser.at_boundary() {
                                continue;
                            }
                            let events = self.stream.held.split().freeze();
                            // an upstream that echoes the key mid-stream
                            if self.stream.redactor.holds_secret(&events) {
                                self.stream.redactor.bytes(&events)
                            } else {
                                events
                            }
                        }
                        _ => Bytes::from(out),
                    };
                    if self.stream.done && upstream != Wire::Generate {
                        // the end of the answer: account for it before the
                        // client can see the end and send its next turn
                        let closing = self.close_stream();
                        self.finish(Outcome::Success {
                            exhausted_for: self.stream.exhausted,
                        })
                        .await;
                        let mut bytes = ready.to_vec();
                        bytes.extend_from_slice(&closing);
                        return Some(Bytes::from(bytes));
                    }
                    if ready.is_empty() {
                        continue;
                    }
                    return Some(ready);
                }
                Ok(Some(Err(_))) => {
                    return Some(self.fail("upstream connection broke off mid-stream").await);
                }
                Err(_) if Instant::now() >= self.stream.deadline => {
                    return Some(
                        self.fail("upstream stream ran past the per-try time limit")
                            .await,
                    );
                }
                Err(_) => {
                    let message = format!(
                        "upstream stream went silent for {} ms (streamIdleTimeout)",
                        self.stream.idle.as_millis()
                    );
                    return Some(self.fail(&message).await);
                }
                Ok(None) if self.stream.done => {
                    let mut rest = self.stream.held.split().to_vec();
                    rest.extend_from_slice(&self.close_stream());
                    self.finish(Outcome::Success {
                        exhausted_for: self.stream.exhausted,
                    })
                    .await;
                    return (!rest.is_empty()).then(|| Bytes::from(rest));
                }
                Ok(None) => {
                    return Some(
                        self.fail("upstream stream ended before it was complete")
                            .await,
                    );
                }
            }
        }
    }

    /// The client protocol's closing bytes once the upstream is done (none
    /// for pass-through: the upstream's own end went through).
    fn close_stream(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        match &mut self.stream.mode {
            Mode::Pass => {}
            Mode::Reframe(framer) => framer.close(&mut out),
            Mode::Translate(t) => {
                t.end(&mut out);
                self.stream.usage = t.usage;
            }
        }
        out
    }

    async fn fail(&mut self, message: &str) -> Bytes {
        tracing::warn!(
            account = self
                .guard
                .as_ref()
                .map(LeaseGuard::account)
                .unwrap_or_default(),
            "{message}"
        );
        self.finish(Outcome::Failed).await;
        // drop any partial event so the error event parses on its own
        self.stream.held.clear();
        let mut out = Vec::new();
        if let Mode::Translate(t) = &mut self.stream.mode
            && let pstream::Encoder::Responses(e) = &mut t.encoder
        {
            e.error(message, &mut out);
            return Bytes::from(out);
        }
        match self.client {
            Protocol::OpenAi if self.stream.wire == Wire::Responses => {
                out = openai::responses::stream_error_event(message);
            }
            Protocol::OpenAi => out = openai::stream_error_event(message),
            Protocol::Anthropic => out = anthropic::stream_error_event(message),
            Protocol::Gemini => {
                let mut framer = match &mut self.stream.mode {
                    Mode::Reframe(f) => {
                        std::mem::replace(f, pstream::Framer::new(pstream::GeminiFraming::Array))
                    }
                    Mode::Translate(t) => match &mut t.encoder {
                        pstream::Encoder::Gemini(_, f) => {
                            std::mem::replace(f, pstream::Framer::new(pstream::GeminiFraming::Sse))
                        }
                        _ => pstream::Framer::new(pstream::GeminiFraming::Sse),
                    },
                    Mode::Pass => pstream::Framer::new(pstream::GeminiFraming::Sse),
                };
                framer.write_raw(&gemini::stream_error_chunk(message), &mut out);
                framer.close(&mut out);
            }
        }
        Bytes::from(out)
    }

    async fn finish(&mut self, outcome: Outcome) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        let account = guard.account().to_owned();
        let elapsed = self.started.elapsed().as_secs_f64();
        self.app
            .metrics
            .upstream_seconds
            .with_label_values(&[&account])
            .observe(elapsed);
        if let Some(u) = &self.stream.usage {
            let client = guard.client();
            self.app
                .metrics
                .count_tokens(&self.route, &account, client, u);
        }
        let tokens = self
            .stream
            .usage
            .map(|u| u.total())
            .unwrap_or(self.estimate.saturating_add(self.bytes / 16));
        guard.finish_served(outcome, Some(tokens)).await;
    }
}

/// Rough output-token estimate when the upstream reports no usage.
pub fn estimate_tokens(body_len: usize, max_output: Option<u64>) -> u64 {
    ((body_len as u64) / 4).saturating_add(max_output.unwrap_or(DEFAULT_OUTPUT_ESTIMATE))
}

const DEFAULT_OUTPUT_ESTIMATE: u64 = 1024;

impl Drop for Relay {
    fn drop(&mut self) {
        self.app.metrics.streams_open.dec();
    }
}
