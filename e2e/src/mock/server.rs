//! The mock's HTTP server. It runs its own accept loop so that a handler can
//! drop its connection (the `reset` and `cut` faults) the way a failing
//! provider or load balancer would.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::behaviour::{Behaviour, Fault};
use super::reply::{self, Plan};
use super::{InFlight, Stats, anthropic, extra, gemini, openai, responses};

/// The wire format of one request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    OpenAi,
    Responses,
    Anthropic,
    Gemini { stream: bool },
}

/// Signals the connection task to drop the connection.
#[derive(Clone)]
struct Kill(Arc<Notify>);

/// Serves until the task is aborted.
pub async fn serve(listener: TcpListener, stats: Arc<Stats>) {
    let router = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/messages", post(messages))
        .route("/v1/responses", post(responses_api))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/v1beta/models/{action}", post(generate))
        .route("/v1/models", get(models))
        .route("/_mock/stats", get(stats_json))
        .with_state(stats);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // small SSE writes must not wait for delayed ACKs
        let _ = stream.set_nodelay(true);
        let kill = Kill(Arc::new(Notify::new()));
        let service = TowerToHyperService::new(router.clone().layer(Extension(kill.clone())));
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                () = kill.0.notified() => {}
            }
        });
    }
}

async fn models() -> Response {
    axum::Json(json!({"object": "list", "data": [{"id": "mock-model", "object": "model", "created": 0, "owned_by": "mock"}]}))
        .into_response()
}

async fn stats_json(State(stats): State<Arc<Stats>>) -> Response {
    axum::Json(json!({"requests": stats.requests()})).into_response()
}

fn header_key(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn chat(
    State(stats): State<Arc<Stats>>,
    Extension(kill): Extension<Kill>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = header_key(&headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned))
        .unwrap_or_else(|| "anonymous".to_owned());
    serve_one(stats, kill, Wire::OpenAi, key, None, body).await
}

async fn responses_api(
    State(stats): State<Arc<Stats>>,
    Extension(kill): Extension<Kill>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = header_key(&headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned))
        .unwrap_or_else(|| "anonymous".to_owned());
    serve_one(stats, kill, Wire::Responses, key, None, body).await
}

/// Counts an arrival and answers a scripted error, or runs `answer`.
fn auxiliary(
    stats: &Stats,
    key: &str,
    model: Option<String>,
    body: &[u8],
    answer: impl FnOnce(&Value) -> Result<Value, String>,
    invalid: fn(&str) -> Value,
    error: impl FnOnce(&Behaviour) -> Value,
) -> Response {
    let script = Behaviour::from_key(key);
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let model = model.or_else(|| request["model"].as_str().map(str::to_owned));
    let n = stats.arrive(key, &script.label, model);
    stats.record_body(&script.label, &request);
    stats.leave(&script.label);
    let b = script.for_request(n);
    if b.status != 200 {
        let status = StatusCode::from_u16(b.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, axum::Json(error(&b))).into_response();
    }
    match answer(&request) {
        Ok(v) => axum::Json(v).into_response(),
        Err(message) => (StatusCode::BAD_REQUEST, axum::Json(invalid(&message))).into_response(),
    }
}

fn openai_invalid(message: &str) -> Value {
    json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}})
}

async fn embeddings(State(stats): State<Arc<Stats>>, headers: HeaderMap, body: Bytes) -> Response {
    let key = header_key(&headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned))
        .unwrap_or_else(|| "anonymous".to_owned());
    auxiliary(
        &stats,
        &key,
        None,
        &body,
        extra::openai_embeddings,
        openai_invalid,
        |b| openai::error(b.status, b.code.as_deref()),
    )
}

async fn count_tokens(
    State(stats): State<Arc<Stats>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = header_key(&headers, "x-api-key").unwrap_or_else(|| "anonymous".to_owned());
    auxiliary(
        &stats,
        &key,
        None,
        &body,
        |r| Ok(extra::anthropic_count(r)),
        anthropic::invalid,
        |b| anthropic::error(b.status),
    )
}

async fn messages(
    State(stats): State<Arc<Stats>>,
    Extension(kill): Extension<Kill>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if headers.get("anthropic-version").is_none() {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(anthropic::invalid("anthropic-version: header is required")),
        )
            .into_response();
    }
    let key = header_key(&headers, "x-api-key").unwrap_or_else(|| "anonymous".to_owned());
    serve_one(stats, kill, Wire::Anthropic, key, None, body).await
}

async fn generate(
    State(stats): State<Arc<Stats>>,
    Extension(kill): Extension<Kill>,
    Path(action): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = header_key(&headers, "x-goog-api-key")
        .or_else(|| query.get("key").cloned())
        .unwrap_or_else(|| "anonymous".to_owned());
    let Some((model, verb)) = action.rsplit_once(':') else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(gemini::error(404, None, false)),
        )
            .into_response();
    };
    let gemini_error = |b: &Behaviour| gemini::error(b.status, b.retry_after.as_deref(), false);
    match verb {
        "embedContent" | "batchEmbedContents" => {
            let batch = verb == "batchEmbedContents";
            let model = model.to_owned();
            return auxiliary(
                &stats,
                &key,
                Some(model.clone()),
                &body,
                |r| extra::gemini_embeddings(r, &model, batch),
                gemini::invalid,
                gemini_error,
            );
        }
        "countTokens" => {
            return auxiliary(
                &stats,
                &key,
                Some(model.to_owned()),
                &body,
                |r| Ok(extra::gemini_count(r)),
                gemini::invalid,
                gemini_error,
            );
        }
        _ => {}
    }
    let stream = match verb {
        "generateContent" => false,
        "streamGenerateContent" if query.get("alt").map(String::as_str) == Some("sse") => true,
        _ => {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(gemini::error(404, None, false)),
            )
                .into_response();
        }
    };
    serve_one(
        stats,
        kill,
        Wire::Gemini { stream },
        key,
        Some(model.to_owned()),
        body,
    )
    .await
}

/// Puts the key into an error body's message, as a careless provider does.
fn echo_key(mut body: Value, b: &Behaviour, key: &str) -> Value {
    if b.echo_key
        && let Some(m) = body.pointer_mut("/error/message")
    {
        *m = json!(format!("Incorrect API key provided: {key}"));
    }
    body
}

fn error_response(wire: Wire, b: &Behaviour, key: &str) -> Response {
    let status = StatusCode::from_u16(b.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match wire {
        Wire::OpenAi | Wire::Responses => openai::error(b.status, b.code.as_deref()),
        Wire::Anthropic => anthropic::error(b.status),
        Wire::Gemini { .. } => gemini::error(
            b.status,
            b.retry_after.as_deref(),
            b.code.as_deref() == Some("daily"),
        ),
    };
    let mut response = (status, axum::Json(echo_key(body, b, key))).into_response();
    if status.is_redirection() {
        // back to itself: a client that follows redirects asks again, and again
        response.headers_mut().insert(
            header::LOCATION,
            http::HeaderValue::from_static("/v1/chat/completions"),
        );
    }
    if !matches!(wire, Wire::Gemini { .. })
        && let Some(retry) = &b.retry_after
        && let Ok(v) = retry.parse()
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

fn invalid(wire: Wire, message: &str) -> Response {
    let body = match wire {
        Wire::OpenAi | Wire::Responses => {
            json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}})
        }
        Wire::Anthropic => anthropic::invalid(message),
        Wire::Gemini { .. } => gemini::invalid(message),
    };
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

async fn serve_one(
    stats: Arc<Stats>,
    kill: Kill,
    wire: Wire,
    key: String,
    path_model: Option<String>,
    body: Bytes,
) -> Response {
    let script = Behaviour::from_key(&key);
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = path_model.unwrap_or_else(|| {
        request
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned()
    });
    let n = stats.arrive(&key, &script.label, Some(model.clone()));
    stats.record_body(&script.label, &request);
    let guard = InFlight {
        stats: stats.clone(),
        label: script.label.clone(),
    };
    let b = script.for_request(n);
    tokio::time::sleep(b.latency).await;

    match b.fault {
        Some(Fault::Reset) => {
            kill.0.notify_one();
            return std::future::pending().await;
        }
        Some(Fault::Hang) => return std::future::pending().await,
        _ => {}
    }
    if b.status != 200 {
        drop(guard);
        return error_response(wire, &b, &key);
    }
    if wire == Wire::Responses
        && let Some(previous) = request.get("previous_response_id").and_then(Value::as_str)
        && stats.stored_by(previous).as_deref() != Some(b.label.as_str())
    {
        drop(guard);
        let body = json!({"error": {"message": format!("Previous response with id '{previous}' not found."),
            "type": "invalid_request_error", "param": "previous_response_id", "code": "previous_response_not_found"}});
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    }
    let turn = match wire {
        Wire::OpenAi => openai::turn(&request),
        Wire::Responses => responses::turn(&request),
        Wire::Anthropic => anthropic::turn(&request),
        Wire::Gemini { .. } => gemini::turn(&request),
    };
    let mut turn = match turn {
        Ok(t) => t,
        Err(message) => {
            drop(guard);
            return invalid(wire, &message);
        }
    };
    turn.thinking |= b.think;
    let plan = reply::plan(&b.label, &turn, b.parallel);
    let stream = match wire {
        Wire::Gemini { stream } => stream,
        _ => request
            .get("stream")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    let include_usage = request
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut response = if stream {
        let events = match wire {
            Wire::Responses => {
                let id = stats.store_response(&b.label);
                responses::stream(&id, &model, &plan, body.len(), b.chunks)
            }
            _ => stream_events(wire, &b, &model, &plan, body.len(), include_usage),
        };
        stream_response(b.clone(), wire, events, kill, guard)
    } else {
        drop(guard);
        let v = match wire {
            Wire::OpenAi => openai::whole(&model, &plan, body.len()),
            Wire::Responses => {
                responses::whole(&stats.store_response(&b.label), &model, &plan, body.len())
            }
            Wire::Anthropic => anthropic::whole(&model, &plan, body.len(), b.cached),
            Wire::Gemini { .. } => gemini::whole(&b.label, &model, &plan, body.len()),
        };
        axum::Json(v).into_response()
    };
    if let Some(remaining) = b.remaining {
        let h = response.headers_mut();
        if wire == Wire::Anthropic {
            // Anthropic names the reset as an RFC 3339 time
            h.insert("anthropic-ratelimit-requests-remaining", remaining.into());
            let secs = b
                .reset
                .as_deref()
                .and_then(|r| r.trim_end_matches('s').parse::<u64>().ok())
                .unwrap_or(1);
            if let Ok(v) = rfc3339_in(secs).parse() {
                h.insert("anthropic-ratelimit-requests-reset", v);
            }
        } else {
            h.insert("x-ratelimit-remaining-requests", remaining.into());
            if let Some(reset) = b.reset.as_deref().and_then(|r| r.parse().ok()) {
                h.insert("x-ratelimit-reset-requests", reset);
            }
        }
    }
    response
}

/// A stream's events: (bytes, whether they carry content).
fn stream_events(
    wire: Wire,
    b: &Behaviour,
    model: &str,
    plan: &Plan,
    prompt_bytes: usize,
    include_usage: bool,
) -> Vec<(String, bool)> {
    match wire {
        Wire::OpenAi | Wire::Responses => {
            let mut out = vec![(
                openai::chunk(model, json!({"role": "assistant", "content": ""}), None),
                false,
            )];
            out.extend(
                openai::content_chunks(model, plan, b.chunks)
                    .into_iter()
                    .map(|c| (c, true)),
            );
            let finish = if plan.calls.is_empty() {
                "stop"
            } else {
                "tool_calls"
            };
            out.push((openai::chunk(model, json!({}), Some(finish)), true));
            if include_usage {
                out.push((openai::usage_chunk(model, prompt_bytes, 4), true));
            }
            out.push(("data: [DONE]\n\n".to_owned(), false));
            out
        }
        Wire::Anthropic => anthropic::stream(model, plan, prompt_bytes, b.cached, b.chunks)
            .into_iter()
            .map(|e| {
                let content = e.starts_with("event: content_block_delta");
                (e, content)
            })
            .collect(),
        Wire::Gemini { .. } => gemini::stream(&b.label, model, plan, prompt_bytes, b.chunks)
            .into_iter()
            .map(|c| (format!("data: {c}\r\n\r\n"), true))
            .collect(),
    }
}

fn stream_response(
    b: Behaviour,
    wire: Wire,
    events: Vec<(String, bool)>,
    kill: Kill,
    guard: InFlight,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(8);
    tokio::spawn(async move {
        let _guard = guard;
        let send = |text: String| {
            let tx = tx.clone();
            async move { tx.send(Ok(Bytes::from(text))).await.is_ok() }
        };
        match b.fault {
            Some(Fault::Empty) => return,
            Some(Fault::ErrorEvent) => {
                let err = match wire {
                    Wire::OpenAi | Wire::Responses => format!(
                        "data: {}\n\n",
                        json!({"error": {"message": "The server is overloaded (mock).", "type": "server_error", "code": null}})
                    ),
                    Wire::Anthropic => format!(
                        "{}{}",
                        events.first().map(|e| e.0.clone()).unwrap_or_default(),
                        anthropic::error_event()
                    ),
                    Wire::Gemini { .. } => {
                        format!("data: {}\r\n\r\n", gemini::error(503, None, false))
                    }
                };
                send(err).await;
                return;
            }
            _ => {}
        }
        if !b.first_byte.is_zero() {
            tokio::time::sleep(b.first_byte).await;
        }
        let mut content_sent = 0;
        for (event, content) in events {
            if content && b.fault == Some(Fault::Cut) && content_sent == b.after {
                // half an event, then the connection goes away
                send(event[..event.len() / 2].to_owned()).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                kill.0.notify_one();
                return;
            }
            if content && b.fault == Some(Fault::Endless) && content_sent == b.after {
                // data lines without the blank line that ends an event
                let line = format!("data: {}\n", "x".repeat(1024));
                while send(line.clone()).await {}
                return;
            }
            if content && b.fault == Some(Fault::Stall) && content_sent == b.after {
                // keep the connection open, say nothing, until the reader goes
                tx.closed().await;
                return;
            }
            if content && content_sent > 0 && !b.chunk_delay.is_zero() {
                tokio::time::sleep(b.chunk_delay).await;
            }
            if !send(event).await {
                return;
            }
            if content {
                content_sent += 1;
            }
        }
    });
    let body = Body::from_stream(tokio_stream_from(rx));
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    response
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, Infallible>>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The RFC 3339 UTC time `secs` seconds from now.
fn rfc3339_in(secs: u64) -> String {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + secs;
    let days = (at / 86_400) as i64;
    let rem = at % 86_400;
    // civil date from days since 1970-01-01
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
