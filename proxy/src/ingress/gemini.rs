//! Gemini endpoints: `models/{model}:generateContent` and
//! `:streamGenerateContent`, under `/v1beta/` and `/v1/`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::response::Response;
use http::HeaderMap;

use super::{auth, body, reject, session_key};
use crate::app::App;
use crate::error::ProxyError;
use crate::pipeline::{self, Call, ClientApi};
use crate::protocol::gemini::{self, Action, RequestView};
use crate::protocol::stream::GeminiFraming;
use crate::protocol::{Protocol, json};

/// `POST /v1beta/models/{model}:{action}` (and `/v1/...`).
pub async fn model_action(
    State(app): State<Arc<App>>,
    Path(segment): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let (head, body) = request.into_parts();
    match serve(&app, &segment, &query, &head.headers, body).await {
        Ok(response) => response,
        Err(error) => reject(&app, error, Protocol::Gemini),
    }
}

async fn serve(
    app: &Arc<App>,
    segment: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ProxyError> {
    let client = auth::check(
        app,
        &app.snapshots.load(),
        headers,
        query.get("key").map(String::as_str),
    )?;
    let Some((model, action)) = gemini::parse_action(segment) else {
        return Err(ProxyError::UnknownEndpoint {
            method: "POST".into(),
            path: format!("models/{}", super::bounded(segment)),
        });
    };
    if !app.loaded() {
        return Err(ProxyError::NotLoaded);
    }
    let bytes = body::read(body, app.settings.max_body_bytes, app.settings.body_timeout).await?;
    json::scan_limited(
        &bytes,
        app.settings.max_json_depth,
        app.settings.max_json_elements,
    )?;
    let snapshot = app.snapshots.load();
    let api = match action {
        Action::Embed => Some(ClientApi::GeminiEmbed { batch: false }),
        Action::BatchEmbed => Some(ClientApi::GeminiEmbed { batch: true }),
        Action::CountTokens => Some(ClientApi::GeminiCount),
        Action::Generate | Action::Stream => None,
    };
    if let Some(api) = api {
        serde_json::from_slice::<serde_json::Value>(&bytes).map_err(ProxyError::InvalidBody)?;
        let mut call = Call::new(api, bytes.clone(), model.to_owned(), false, headers);
        if let ClientApi::GeminiEmbed { .. } = api {
            call.estimated_tokens = (bytes.len() as u64) / 4;
        }
        return pipeline::run(app, snapshot, call.for_client(client)).await;
    }
    let view: RequestView<'_> = serde_json::from_slice(&bytes).map_err(ProxyError::InvalidBody)?;
    if view.contents.is_empty() {
        return Err(ProxyError::InvalidField {
            field: "contents",
            message: "must contain at least one content",
        });
    }
    let stream = action == Action::Stream;
    let framing = if query.get("alt").map(String::as_str) == Some("sse") {
        GeminiFraming::Sse
    } else {
        GeminiFraming::Array
    };
    let session = session_key(&snapshot, model, headers, || view.session_key());
    let mut call = Call::new(
        ClientApi::Gemini { framing },
        bytes.clone(),
        model.to_owned(),
        stream,
        headers,
    );
    call.estimated_tokens = pipeline::estimate_tokens(bytes.len(), view.max_output_tokens());
    call.session_key = session;
    pipeline::run(app, snapshot, call.for_client(client)).await
}
