//! OpenAI-compatible endpoints.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use llmpool_crds::Strategy;

use super::{auth, body};
use crate::app::App;
use crate::error::ProxyError;
use crate::pipeline::{self, ChatCall};
use crate::protocol::openai::ChatRequestView;
use crate::protocol::{Protocol, json};

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match chat(&app, &headers, body).await {
        Ok(response) => response,
        Err(error) => reject(&app, error),
    }
}

async fn chat(app: &Arc<App>, headers: &HeaderMap, body: Body) -> Result<Response, ProxyError> {
    auth::check(&app.settings.client_keys, headers)?;
    if !app.loaded() {
        return Err(ProxyError::NotLoaded);
    }
    let bytes = body::read(body, app.settings.max_body_bytes).await?;
    let top = json::scan(&bytes, app.settings.max_json_depth)?;
    let view: ChatRequestView<'_> =
        serde_json::from_slice(&bytes).map_err(ProxyError::InvalidBody)?;
    if view.model.trim().is_empty() {
        return Err(ProxyError::InvalidField {
            field: "model",
            message: "must name a model",
        });
    }
    if view.messages.is_empty() {
        return Err(ProxyError::InvalidField {
            field: "messages",
            message: "must contain at least one message",
        });
    }
    let model_span = top
        .value_span(&bytes, "model")
        .ok_or(ProxyError::InvalidField {
            field: "model",
            message: "is required",
        })?;
    let snapshot = app.snapshots.load();
    // only sticky routes use a session key; others skip hashing the prompt
    let sticky = snapshot
        .route_for(&view.model)
        .filter(|r| r.compiled.strategy == Strategy::Sticky);
    let session_key = sticky.and_then(|route| {
        let header = &route.compiled.session.header;
        headers
            .get(header.as_str())
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(|v| format!("hdr:{v}"))
            .or_else(|| view.session_key())
    });
    let call = ChatCall {
        model: view.model.to_string(),
        stream: view.stream.unwrap_or(false),
        estimated_tokens: pipeline::estimate_tokens(bytes.len(), view.max_output_tokens()),
        session_key,
        model_span,
        body: bytes.clone(),
    };
    pipeline::run_chat(app, snapshot, call).await
}

/// `GET /v1/models`: the exact model names clients may ask for.
pub async fn list_models(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(error) = auth::check(&app.settings.client_keys, &headers) {
        return reject(&app, error);
    }
    let snapshot = app.snapshots.load();
    let data: Vec<_> = snapshot
        .model_names()
        .into_iter()
        .map(|id| serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "llmpool"}))
        .collect();
    Json(serde_json::json!({"object": "list", "data": data})).into_response()
}

fn reject(app: &App, error: ProxyError) -> Response {
    app.metrics.errors.with_label_values(&[error.label()]).inc();
    let status = error.status();
    if status.is_server_error() {
        tracing::warn!(error = %error, kind = error.label(), "request failed");
    } else {
        tracing::info!(error = %error, kind = error.label(), "request refused");
    }
    error.into_response(Protocol::OpenAi)
}
