//! Model listings, in the shape of the API the client speaks: Anthropic's
//! when it sends `anthropic-version`, Gemini's on `/v1beta/` or when the key
//! came as `x-goog-api-key` or `?key=`, OpenAI's otherwise. The models are
//! the exact names of the routes (globs cannot be listed); a single model
//! is found by any route that serves it, globs included.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use serde_json::{Value, json};

use super::{auth, bounded, reject};
use crate::app::App;
use crate::error::ProxyError;
use crate::protocol::Protocol;

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

fn listing(app: &App, shape: Protocol) -> Response {
    let snapshot = app.snapshots.load();
    let names = snapshot.model_names();
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

fn one(app: &App, model: &str, shape: Protocol) -> Response {
    let model = model.strip_prefix("models/").unwrap_or(model);
    let snapshot = app.snapshots.load();
    if snapshot.route_for(model).is_none() {
        return reject(app, ProxyError::UnknownModel(bounded(model)), shape);
    }
    Json(entry(model, shape)).into_response()
}

/// `GET /v1/models`.
pub async fn list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<Params>,
) -> Response {
    let shape = shape(&headers, &q);
    if let Err(e) = auth::check(
        &app.settings.client_keys,
        &headers,
        q.get("key").map(String::as_str),
    ) {
        return reject(&app, e, shape);
    }
    listing(&app, shape)
}

/// `GET /v1/models/{model}`.
pub async fn get(
    State(app): State<Arc<App>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    Query(q): Query<Params>,
) -> Response {
    let shape = shape(&headers, &q);
    if let Err(e) = auth::check(
        &app.settings.client_keys,
        &headers,
        q.get("key").map(String::as_str),
    ) {
        return reject(&app, e, shape);
    }
    one(&app, &model, shape)
}

/// `GET /v1beta/models`.
pub async fn list_gemini(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<Params>,
) -> Response {
    if let Err(e) = auth::check(
        &app.settings.client_keys,
        &headers,
        q.get("key").map(String::as_str),
    ) {
        return reject(&app, e, Protocol::Gemini);
    }
    listing(&app, Protocol::Gemini)
}

/// `GET /v1beta/models/{model}`.
pub async fn get_gemini(
    State(app): State<Arc<App>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    Query(q): Query<Params>,
) -> Response {
    if let Err(e) = auth::check(
        &app.settings.client_keys,
        &headers,
        q.get("key").map(String::as_str),
    ) {
        return reject(&app, e, Protocol::Gemini);
    }
    one(&app, &model, Protocol::Gemini)
}
