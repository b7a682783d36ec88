//! The request pipeline. Per request (once): route, plan. Per attempt:
//! select (admit), translate (model rewrite), call, then account. Retries
//! happen only before the commit point, each on an account not yet tried,
//! and the attempt budget counts each upstream call exactly once.

mod attempt;
mod call;
mod lease;
mod relay;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use llmpool_crds::Strategy;
use llmpool_crds::route::FailureClass;
use llmpool_crds::table::RetryPolicy;
use tokio::time::Instant;

use crate::app::App;
use crate::error::ProxyError;
use crate::protocol::{Protocol, anthropic, gemini, openai};
use crate::routing;
use crate::snapshot::Snapshot;
use crate::state::{Admission, AdmitRequest, Outcome, SessionRef};
use crate::upstream::error::AttemptError;
use attempt::Reply;
pub use call::{Call, ClientApi};
use lease::{Held, LeaseGuard};
pub use relay::estimate_tokens;

/// Serves one generation request on `snapshot`, which it holds to the end.
pub async fn run(
    app: &Arc<App>,
    snapshot: Arc<Snapshot>,
    call: Call,
) -> Result<Response, ProxyError> {
    let entered = Instant::now();
    let mut waited = Duration::ZERO;
    let max_streams = app.settings.max_streams;
    if call.stream && usize::try_from(app.metrics.streams_open.get()).unwrap_or(0) >= max_streams {
        return Err(ProxyError::TooManyStreams { limit: max_streams });
    }
    if let Some(client) = &call.client
        && !client.allows(&call.model)
    {
        return Err(ProxyError::ModelNotAllowed {
            client: client.name.to_string(),
            model: crate::ingress::bounded(&call.model),
        });
    }
    let route = snapshot
        .route_for(&call.model)
        .ok_or_else(|| ProxyError::UnknownModel(crate::ingress::bounded(&call.model)))?;
    let compiled = &route.compiled;
    let not_ready = |reason: String| ProxyError::RouteNotReady {
        route: compiled.name.clone(),
        reason,
    };
    if !compiled.ready {
        return Err(not_ready(compiled.problems.join("; ")));
    }
    let mut plan = routing::plan(route, &call.model);
    // a request larger than every account's token window would wait for
    // capacity forever: refuse it now, saying why
    let fits = |c: &crate::state::Candidate| {
        c.limits
            .tokens_per_minute
            .is_none_or(|t| call.estimated_tokens <= t)
            && c.limits
                .daily_tokens
                .is_none_or(|d| call.estimated_tokens <= d)
    };
    if !plan.candidates.is_empty() && !plan.candidates.iter().any(fits) {
        let largest = plan
            .candidates
            .iter()
            .filter_map(|c| c.limits.tokens_per_minute.or(c.limits.daily_tokens))
            .max()
            .unwrap_or(0);
        return Err(ProxyError::NeverFits {
            estimate: call.estimated_tokens,
            largest,
        });
    }
    if let Some(id) = &call.previous_response {
        pin(app, &snapshot, &mut plan, id).await?;
    }
    if plan.candidates.is_empty() {
        return Err(not_ready(format!(
            "no enabled account serves model `{}`",
            call.model
        )));
    }
    let session = match (compiled.strategy, &call.session_key) {
        (Strategy::Sticky, Some(key)) => Some(SessionRef {
            key: key.clone(),
            ttl: Duration::from_millis(compiled.session.ttl_ms),
        }),
        _ => None,
    };
    let retry = &compiled.retry;
    let lease_ttl = Duration::from_millis(retry.per_try_timeout_ms.saturating_add(5_000));
    let mut excluded: Vec<usize> = Vec::new();
    let mut attempts = 0u32;
    let mut last: Option<(String, AttemptError)> = None;
    // while every failure so far is a 429, the earliest time one frees up:
    // a client whose every attempt was rate limited gets a 429 with it
    let mut rate_limited: Option<Duration> = None;
    let mut only_rate_limits = true;
    let mut untranslatable: Option<ProxyError> = None;

    // no attempt starts, or waits for its first content, past this
    let request_deadline = entered + Duration::from_millis(retry.request_timeout_ms);
    // the client's limits are checked on the request's first admission only
    let mut charged = false;
    while attempts < retry.max_attempts {
        if attempts > 0 && Instant::now() >= request_deadline {
            break;
        }
        let charge = call.client.as_ref().map(|c| c.charge(!charged));
        let admission = app
            .store
            .admit(&AdmitRequest {
                namespace: &snapshot.namespace,
                candidates: &plan.candidates,
                excluded: &excluded,
                least_busy: compiled.strategy == Strategy::LeastBusy,
                session: session.as_ref(),
                estimated_tokens: call.estimated_tokens,
                lease_ttl,
                client: charge.as_ref(),
            })
            .await?;
        let lease = match admission {
            Admission::ClientLimited { retry_after } => {
                return Err(ProxyError::ClientLimited {
                    client: charge.map(|c| c.name.to_string()).unwrap_or_default(),
                    retry_after,
                });
            }
            Admission::Admitted(lease) => {
                charged = true;
                if session.is_some() && attempts == 0 {
                    let result = if lease.session_hit { "hit" } else { "miss" };
                    app.metrics
                        .sessions
                        .with_label_values(&[compiled.name.as_str(), result])
                        .inc();
                }
                lease
            }
            Admission::Unavailable { retry_after, why } => {
                if last.is_none()
                    && let Some(err) = untranslatable
                {
                    return Err(err);
                }
                if call.previous_response.is_some() && last.is_none() {
                    return Err(ProxyError::PinnedBusy {
                        account: plan
                            .candidates
                            .first()
                            .map(|c| c.account.to_string())
                            .unwrap_or_default(),
                        retry_after,
                    });
                }
                return Err(match last {
                    Some((account, err)) if err.class() != Some(FailureClass::RateLimited) => {
                        ProxyError::UpstreamFailed {
                            attempts,
                            account,
                            last: err,
                        }
                    }
                    _ => ProxyError::AllBusy {
                        model: crate::ingress::bounded(&call.model),
                        retry_after,
                        why,
                    },
                });
            }
        };
        let index = lease.index;
        let candidate = plan.candidates[index].clone();
        let member = plan.members[index];
        let account = candidate.account.clone();
        let guard = LeaseGuard::new(
            app.clone(),
            Held {
                namespace: snapshot.namespace.clone(),
                candidate: candidate.clone(),
                lease,
                session: session.clone(),
                client: charge,
            },
        );
        let outgoing = match call::outgoing(&call, member, &candidate.model) {
            Ok(o) => o,
            Err(err) => {
                // this account cannot take the request in its protocol:
                // another (of another protocol) may; no upstream call was made
                tracing::debug!(account = %account, error = %err, "request cannot be sent to this account");
                guard.finish(Outcome::Cancelled, None).await;
                excluded.push(index);
                untranslatable = Some(err);
                continue;
            }
        };
        attempts += 1;
        let started = Instant::now();
        let (limits, clipped) = within(retry, request_deadline.saturating_duration_since(started));
        let sent = attempt::send(
            member,
            outgoing,
            call.api,
            call.stream,
            &limits,
            app.settings.buffers,
            call.estimated_tokens,
        )
        .await;
        waited += started.elapsed();
        match sent {
            Ok(reply) => {
                app.metrics
                    .attempts
                    .with_label_values(&[compiled.name.as_str(), &*account, "ok"])
                    .inc();
                app.metrics
                    .first_byte_seconds
                    .with_label_values(&[&account])
                    .observe(started.elapsed().as_secs_f64());
                if call.stores_response {
                    let id = match &reply {
                        Reply::Whole { response_id, .. } => response_id.clone(),
                        Reply::Stream(c) => c.response_id.clone(),
                    };
                    remember_response(app, &snapshot.namespace, id, &account).await;
                }
                app.metrics
                    .tier_served
                    .with_label_values(&[compiled.name.as_str(), &candidate.tier.to_string()])
                    .inc();
                let response = respond(app, reply, guard, started, &call, &compiled.name).await;
                app.metrics
                    .overhead_seconds
                    .observe(entered.elapsed().saturating_sub(waited).as_secs_f64());
                let status = response.status();
                app.metrics
                    .requests
                    .with_label_values(&[compiled.name.as_str(), &*account, status.as_str()])
                    .inc();
                tracing::debug!(route = %compiled.name, account = %account, attempts, status = status.as_u16(), "served");
                return Ok(response);
            }
            Err(err) => {
                app.metrics
                    .attempts
                    .with_label_values(&[compiled.name.as_str(), &*account, err.label()])
                    .inc();
                tracing::warn!(route = %compiled.name, account = %account, attempt = attempts, error = %err, "attempt failed");
                // a timeout the request's own deadline cut short says
                // nothing against the account
                let outcome = match err {
                    AttemptError::Timeout if clipped => Outcome::Cancelled,
                    _ => err.outcome(&compiled.cooldown),
                };
                guard.finish(outcome, None).await;
                let rotates = err.class().is_some_and(|c| retry.rotate_on.contains(&c));
                if !rotates {
                    let response = pass_on(err, &account, attempts, call.api.protocol(), member)?;
                    app.metrics
                        .requests
                        .with_label_values(&[
                            compiled.name.as_str(),
                            &*account,
                            response.status().as_str(),
                        ])
                        .inc();
                    return Ok(response);
                }
                excluded.push(index);
                match (&err, err.class()) {
                    (AttemptError::Status { .. }, Some(FailureClass::RateLimited)) => {
                        let wait = match err.outcome(&compiled.cooldown) {
                            Outcome::RateLimited { cooldown } => cooldown,
                            _ => Duration::from_secs(1),
                        };
                        rate_limited = Some(rate_limited.map_or(wait, |w| w.min(wait)));
                    }
                    _ => only_rate_limits = false,
                }
                last = Some((account.to_string(), err));
            }
        }
    }
    Err(match last {
        Some(_) if only_rate_limits && rate_limited.is_some() => ProxyError::AllBusy {
            model: crate::ingress::bounded(&call.model),
            retry_after: rate_limited.unwrap_or(Duration::from_secs(1)),
            why: crate::state::Unavailability {
                rate_limited: attempts,
                ..Default::default()
            },
        },
        Some((account, err)) => ProxyError::UpstreamFailed {
            attempts,
            account,
            last: err,
        },
        None if untranslatable.is_some() => untranslatable.unwrap_or(ProxyError::NotLoaded),
        None => ProxyError::AllBusy {
            model: crate::ingress::bounded(&call.model),
            retry_after: Duration::from_secs(1),
            why: crate::state::Unavailability::default(),
        },
    })
}

/// The retry policy for an attempt with `left` of the request's time: the
/// first-byte limit shortened to fit, and whether it was.
fn within(retry: &RetryPolicy, left: Duration) -> (Cow<'_, RetryPolicy>, bool) {
    // rounded up, so the attempt's limit never falls before the request's
    let left_ms = u64::try_from(left.as_micros().div_ceil(1000)).unwrap_or(u64::MAX);
    if left_ms >= retry.first_byte_timeout_ms {
        return (Cow::Borrowed(retry), false);
    }
    let mut limits = retry.clone();
    limits.first_byte_timeout_ms = left_ms;
    (Cow::Owned(limits), true)
}

/// Keeps only the account that stored `id` (Responses API), or fails
/// clearly: never sends a continuation where it would not be found.
async fn pin(
    app: &App,
    snapshot: &Snapshot,
    plan: &mut routing::Plan<'_>,
    id: &str,
) -> Result<(), ProxyError> {
    let unknown = || ProxyError::UnknownResponse {
        id: crate::ingress::bounded(id),
    };
    let account = match app.store.response_account(&snapshot.namespace, id).await? {
        Some(a) => a,
        None => {
            // an unknown id can still be served when only one account could
            // have stored it
            let mut names: Vec<&str> = plan.candidates.iter().map(|c| &*c.account).collect();
            names.dedup();
            match names.as_slice() {
                [one] => (*one).to_owned(),
                _ => return Err(unknown()),
            }
        }
    };
    let keep: Vec<bool> = plan
        .candidates
        .iter()
        .map(|c| *c.account == *account)
        .collect();
    let mut flags = keep.iter();
    plan.candidates.retain(|_| *flags.next().unwrap_or(&false));
    let mut flags = keep.iter();
    plan.members.retain(|_| *flags.next().unwrap_or(&false));
    let member = plan.members.first().ok_or_else(unknown)?;
    if member.account.compiled.provider != llmpool_crds::Provider::Openai {
        return Err(ProxyError::Translate(
            crate::protocol::TranslateError::Unsupported {
                feature: "previous_response_id (stored responses live only on OpenAI)".into(),
                provider: member.account.compiled.provider.as_str(),
            },
        ));
    }
    Ok(())
}

/// Records which account stored a response, before the client sees its
/// id: a client may send the next turn at once, to another replica.
async fn remember_response(app: &App, namespace: &str, id: Option<String>, account: &str) {
    let Some(id) = id else { return };
    let ttl = app.settings.response_ttl;
    if let Err(e) = app.store.bind_response(namespace, &id, account, ttl).await {
        tracing::warn!(error = %e, "could not record a stored response's account");
    }
}

/// Builds the client response from a good reply.
async fn respond(
    app: &Arc<App>,
    reply: Reply,
    guard: LeaseGuard,
    started: Instant,
    call: &Call,
    route: &str,
) -> Response {
    let estimate = call.estimated_tokens;
    match reply {
        Reply::Whole {
            status,
            content_type,
            body,
            usage,
            exhausted,
            ..
        } => {
            app.metrics
                .upstream_seconds
                .with_label_values(&[guard.account()])
                .observe(started.elapsed().as_secs_f64());
            if let Some(u) = &usage {
                app.metrics
                    .count_tokens(route, guard.account(), guard.client(), u);
            }
            let tokens = usage.map(|u| u.total()).unwrap_or(estimate);
            guard
                .finish_served(
                    Outcome::Success {
                        exhausted_for: exhausted,
                    },
                    Some(tokens),
                )
                .await;
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            let ct = content_type.unwrap_or_else(|| HeaderValue::from_static("application/json"));
            response.headers_mut().insert(header::CONTENT_TYPE, ct);
            response
        }
        Reply::Stream(committed) => {
            let status = committed.status;
            let relay = relay::Relay::new(
                committed,
                guard,
                app.clone(),
                started,
                estimate,
                call.api.protocol(),
                route,
            );
            let mut response = Response::new(Body::from_stream(relay.into_stream()));
            *response.status_mut() = status;
            let headers = response.headers_mut();
            let content_type = match call.api {
                ClientApi::Gemini {
                    framing: crate::protocol::stream::GeminiFraming::Array,
                } => "application/json",
                _ => "text/event-stream",
            };
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
    }
}

/// A failure that another account would not fix, handed to the client: the
/// upstream's own error body when it speaks the client's protocol, its
/// message in the client's shape when it does not, and the gateway's error
/// for everything else (never an upstream auth body: it may echo part of a
/// key).
fn pass_on(
    err: AttemptError,
    account: &str,
    attempts: u32,
    client: Protocol,
    member: &crate::snapshot::Member,
) -> Result<Response, ProxyError> {
    let upstream = member
        .account
        .endpoint
        .as_ref()
        .map(|e| e.protocol)
        .unwrap_or(client);
    match err {
        AttemptError::Status { status, .. } if matches!(status.as_u16(), 401..=403) => {
            Err(ProxyError::UpstreamAuth {
                account: account.to_owned(),
                status,
            })
        }
        AttemptError::Status { status, body, .. }
            if status != StatusCode::TOO_MANY_REQUESTS || !body.is_empty() =>
        {
            if upstream != client {
                return Err(ProxyError::UpstreamRejected {
                    account: account.to_owned(),
                    status,
                    message: upstream_message(upstream, &body),
                });
            }
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(response)
        }
        other => Err(ProxyError::UpstreamFailed {
            attempts,
            account: account.to_owned(),
            last: other,
        }),
    }
}

/// The message of an upstream error body of `protocol`, bounded.
fn upstream_message(protocol: Protocol, body: &[u8]) -> String {
    let message = match protocol {
        Protocol::OpenAi => openai::error_text(body),
        Protocol::Anthropic => anthropic::error_parts(body).map(|(_, m)| m),
        Protocol::Gemini => gemini::error_parts(body).map(|(_, m)| m),
    }
    .unwrap_or_else(|| "no message".to_owned());
    let mut end = message.len().min(1024);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].to_owned()
}
