//! Anthropic Messages endpoints.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::HeaderMap;

use super::{read_json, reject, require_model, session_key};
use crate::app::App;
use crate::error::ProxyError;
use crate::pipeline::{self, Call, ClientApi};
use crate::protocol::Protocol;
use crate::protocol::anthropic::RequestView;

/// `POST /v1/messages`.
pub async fn messages(State(app): State<Arc<App>>, request: Request) -> Response {
    let (head, body) = request.into_parts();
    match serve(&app, &head.headers, body).await {
        Ok(response) => response,
        Err(error) => reject(&app, error, Protocol::Anthropic),
    }
}

async fn serve(app: &Arc<App>, headers: &HeaderMap, body: Body) -> Result<Response, ProxyError> {
    let (bytes, top, client) = read_json(app, headers, body).await?;
    let view: RequestView<'_> = serde_json::from_slice(&bytes).map_err(ProxyError::InvalidBody)?;
    require_model(&view.model)?;
    let Some(max_tokens) = view.max_tokens else {
        return Err(ProxyError::InvalidField {
            field: "max_tokens",
            message: "is required",
        });
    };
    if view.messages.is_empty() {
        return Err(ProxyError::InvalidField {
            field: "messages",
            message: "must contain at least one message",
        });
    }
    let model_span = top.value_span(&bytes, "model");
    let snapshot = app.snapshots.load();
    let session = session_key(&snapshot, &view.model, headers, || view.session_key());
    let mut call = Call::new(
        ClientApi::Messages,
        bytes.clone(),
        view.model.to_string(),
        view.stream.unwrap_or(false),
        headers,
    );
    call.model_span = model_span;
    call.estimated_tokens = pipeline::estimate_tokens(bytes.len(), Some(max_tokens));
    call.session_key = session;
    pipeline::run(app, snapshot, call.for_client(client)).await
}

/// `POST /v1/messages/count_tokens`.
pub async fn count_tokens(State(app): State<Arc<App>>, request: Request) -> Response {
    let (head, body) = request.into_parts();
    match count(&app, &head.headers, body).await {
        Ok(response) => response,
        Err(error) => reject(&app, error, Protocol::Anthropic),
    }
}

async fn count(app: &Arc<App>, headers: &HeaderMap, body: Body) -> Result<Response, ProxyError> {
    let (bytes, top, client) = read_json(app, headers, body).await?;
    let view: RequestView<'_> = serde_json::from_slice(&bytes).map_err(ProxyError::InvalidBody)?;
    require_model(&view.model)?;
    let snapshot = app.snapshots.load();
    let mut call = Call::new(
        ClientApi::CountTokens,
        bytes.clone(),
        view.model.to_string(),
        false,
        headers,
    );
    call.model_span = top.value_span(&bytes, "model");
    pipeline::run(app, snapshot, call.for_client(client)).await
}
