//! After the commit point: relay the upstream stream to the client byte for
//! byte, on event boundaries, reading usage on the side. A failure now cannot
//! be retried, so the stream ends with the protocol's own error event.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::{Instant, timeout_at};

use super::attempt::Committed;
use super::lease::LeaseGuard;
use crate::app::App;
use crate::protocol::openai;
use crate::protocol::sse::Event;
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
}

impl Relay {
    /// Starts relaying a committed stream.
    pub fn new(
        stream: Committed,
        guard: LeaseGuard,
        app: Arc<App>,
        started: Instant,
        estimate: u64,
    ) -> Self {
        Self {
            stream,
            guard: Some(guard),
            app,
            started,
            estimate,
            bytes: 0,
            events: Vec::new(),
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
        loop {
            match timeout_at(self.stream.deadline, self.stream.upstream.next()).await {
                Ok(Some(Ok(chunk))) => {
                    self.bytes += chunk.len() as u64;
                    self.stream.parser.feed(&chunk, &mut self.events);
                    for event in self.events.drain(..) {
                        if event.data == "[DONE]" {
                            self.stream.done = true;
                        } else if event.data.contains("\"usage\"")
                            && let Some(u) = openai::usage_of(event.data.as_bytes())
                        {
                            self.stream.usage = Some(u);
                        }
                    }
                    if self.stream.parser.overflowed() {
                        return Some(self.fail("upstream sent an over-long stream line").await);
                    }
                    self.stream.held.extend_from_slice(&chunk);
                    if self.stream.parser.at_boundary() {
                        if self.stream.done {
                            // [DONE] ends the exchange: account for it before
                            // the client can see the end and send its next turn
                            self.finish(Outcome::Success {
                                exhausted_for: self.stream.exhausted,
                            })
                            .await;
                        }
                        return Some(self.stream.held.split().freeze());
                    }
                }
                Ok(Some(Err(_))) => {
                    return Some(self.fail("upstream connection broke off mid-stream").await);
                }
                Err(_) => {
                    return Some(
                        self.fail("upstream stream ran past the per-try time limit")
                            .await,
                    );
                }
                Ok(None) if self.stream.done => {
                    self.finish(Outcome::Success {
                        exhausted_for: self.stream.exhausted,
                    })
                    .await;
                    let rest = self.stream.held.split().freeze();
                    return (!rest.is_empty()).then_some(rest);
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
        Bytes::from(openai::stream_error_event(message))
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
        let tokens = self
            .stream
            .usage
            .map(|u| u.total())
            .unwrap_or(self.estimate + self.bytes / 16);
        guard.finish_served(outcome, Some(tokens)).await;
    }
}

/// Rough output-token estimate when the upstream reports no usage.
pub fn estimate_tokens(body_len: usize, max_output: Option<u64>) -> u64 {
    (body_len as u64) / 4 + max_output.unwrap_or(DEFAULT_OUTPUT_ESTIMATE)
}

const DEFAULT_OUTPUT_ESTIMATE: u64 = 1024;
