//! The mock's HTTP server. It runs its own accept loop so that a handler can
//! drop its connection (the `reset` and `cut` faults) the way a failing
//! provider or load balancer would.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, State};
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
use super::{InFlight, Stats, openai};

/// Signals the connection task to drop the connection.
#[derive(Clone)]
struct Kill(Arc<Notify>);

/// Serves until the task is aborted.
pub async fn serve(listener: TcpListener, stats: Arc<Stats>) {
    let router = Router::new()
        .route("/v1/chat/completions", post(chat))
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

async fn chat(
    State(stats): State<Arc<Stats>>,
    Extension(kill): Extension<Kill>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("anonymous")
        .to_owned();
    let script = Behaviour::from_key(&key);
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned();
    let n = stats.arrive(&key, &script.label, Some(model.clone()));
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
        let mut response = (
            StatusCode::from_u16(b.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(openai::error(b.status, b.code.as_deref())),
        )
            .into_response();
        if let Some(retry) = &b.retry_after
            && let Ok(v) = retry.parse()
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    let stream = request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let include_usage = request
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut response = if stream {
        stream_response(b.clone(), model, body.len(), include_usage, kill, guard)
    } else {
        drop(guard);
        axum::Json(openai::completion(&model, &b.label, body.len())).into_response()
    };
    if let Some(remaining) = b.remaining {
        let h = response.headers_mut();
        h.insert("x-ratelimit-remaining-requests", remaining.into());
        if let Some(reset) = b.reset.as_deref().and_then(|r| r.parse().ok()) {
            h.insert("x-ratelimit-reset-requests", reset);
        }
    }
    response
}

fn stream_response(
    b: Behaviour,
    model: String,
    prompt_bytes: usize,
    include_usage: bool,
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
                let err = json!({"error": {"message": "The server is overloaded (mock).", "type": "server_error", "code": null}});
                send(format!("data: {err}\n\n")).await;
                return;
            }
            _ => {}
        }
        if !b.first_byte.is_zero() {
            tokio::time::sleep(b.first_byte).await;
        }
        if !send(openai::chunk(
            &model,
            json!({"role": "assistant", "content": ""}),
            None,
        ))
        .await
        {
            return;
        }
        let pieces = openai::reply_pieces(&b.label, b.chunks);
        for (i, piece) in pieces.iter().enumerate() {
            if b.fault == Some(Fault::Cut) && i == b.after {
                // half an event, then the connection goes away
                send("data: {\"id\":\"chatcmpl-mo".to_owned()).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                kill.0.notify_one();
                return;
            }
            if !b.chunk_delay.is_zero() {
                tokio::time::sleep(b.chunk_delay).await;
            }
            if !send(openai::chunk(&model, json!({"content": piece}), None)).await {
                return;
            }
        }
        send(openai::chunk(&model, json!({}), Some("stop"))).await;
        if include_usage {
            send(openai::usage_chunk(
                &model,
                prompt_bytes,
                pieces.len() as u64,
            ))
            .await;
        }
        send("data: [DONE]\n\n".to_owned()).await;
    });
    let body = Body::from_stream(tokio_stream_from(rx));
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        "text/event-stream"
            .parse()
            .unwrap_or(http::HeaderValue::from_static("text/event-stream")),
    );
    response
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, Infallible>>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
