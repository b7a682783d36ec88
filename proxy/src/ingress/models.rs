//! Model listings, in the shape of the API the client speaks: Anthropic's
//! when it sends `anthropic-version`, Gemini's on `/v1beta/` or when the key
//! came as `x-goog-api-key` or `?key=`, OpenAI's otherwise. The models are
//! the exact names of the routes (globs cannot be listed) that the client's
//! key may use; a single model is found by any route that serves it, globs
//! included.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use serde_json::{Value, json};

use super::{auth, bounded, reject};
use crate::app::App;
use crate::clients::Client;
use crate::error::ProxyError;
use crate::protocol::Protocol;
use crate::snapshot::Snapshot;

type Params = HashMap<String, String>;

fn shape(headers: &HeaderMap, query: &Params) -> Protocol {
    if headers.contains_key("anthropic-version") {
        Protocol::Anthropic
    } else if headers.contains_key("x-goog-api-key") || query.contains_key("key") {
        Protocol::Gemini
    } else {
        Protocol::OpenAi
    }
}

fn entry(id: &str, shape: Protocol) -> Value {
    match shape {
        Protocol::OpenAi => {
            json!({"id": id, "object": "model", "created": 0, "owned_by": "llmpool"})
        }
        Protocol::Anthropic => json!({
            "type": "model", "id": id, "display_name": id, "created_at": "1970-01-01T00:00:00Z"
        }),
        Protocol::Gemini => json!({
            "name": format!("models/{id}"),
            "version": "llmpool",
            "displayName": id,
            "description": format!("{id}, served by llmpool"),
            "inputTokenLimit": 1_048_576,
            "outputTokenLimit": 65_536,
            "supportedGenerationMethods": ["generateContent", "streamGenerateContent"]
        }),
    }
}

fn listing(snapshot: &Snapshot, client: Option<&Client>, shape: Protocol) -> Response {
    let names: Vec<&str> = snapshot
        .model_names()
        .into_iter()
        .filter(|m| client.is_none_or(|c| c.allows(m)))
        .collect();
    let data: Vec<Value> = names.iter().map(|id| entry(id, shape)).collect();
    let body = match shape {
        Protocol::OpenAi => json!({"object": "list", "data": data}),
        Protocol::Anthropic => json!({
            "data": data,
            "has_more": false,
            "first_id": names.first(),
            "last_id": names.last()
        }),
        Protocol::Gemini => json!({"models": data}),
    };
    Json(body).into_response()
}

/// The model a client asked about, when it is served and allowed.
fn one<'m>(
    snapshot: &Snapshot,
    client: Option<&Client>,
    model: &'m str,
) -> Result<&'m str, ProxyError> {
    let model = model.strip_prefix("models/").unwrap_or(model);
    if let Some(c) = client.filter(|c| !c.allows(model)) {
        return Err(ProxyError::ModelNotAllowed {
            client: c.name.to_string(),
            model: bounded(model),
        });
    }
    if snapshot.route_for(model).is_none() {
        return Err(ProxyError::UnknownModel(bounded(model)));
    }
    Ok(model)
}

/// Authenticates, then answers with one model or the listing.
fn answer(
    app: &App,
    headers: &HeaderMap,
    query: &Params,
    shape: Protocol,
    model: Option<&str>,
) -> Response {
    let snapshot = app.snapshots.load();
    let client = match auth::check(
        app,
        &snapshot,
        headers,
        query.get("key").map(String::as_str),
    ) {
        Ok(c) => c,
        Err(e) => return reject(app, e, shape),
    };
    match model {
        None => listing(&snapshot, client.as_deref(), shape),
        Some(m) => match one(&snapshot, client.as_deref(), m) {
            Ok(id) => Json(entry(id, shape)).into_response(),
            Err(e) => reject(app, e, shape),
        },
    }
}

/// `GET /v1/models`.
pub async fn list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<Params>,
) -> Response {
    answer(&app, &headers, &q, shape(&headers, &q), None)
}

/// `GET /v1/models/{model}`.
pub async fn get(
    State(app): State<Arc<App>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    Query(q): Query<Params>,
) -> Response {
    answer(&app, &headers, &q, shape(&headers, &q), Some(&model))
}

/// `GET /v1beta/models`.
pub async fn list_gemini(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<Params>,
) -> Response {
    answer(&app, &headers, &q, Protocol::Gemini, None)
}

/// `GET /v1beta/models/{model}`.
pub async fn get_gemini(
    State(app): State<Arc<App>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    Query(q): Query<Params>,
) -> Response {
    answer(&app, &headers, &q, Protocol::Gemini, Some(&model))
}
