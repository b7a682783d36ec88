//! The OpenAI Responses API: `POST /v1/responses`.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{read_json, reject, require_model, session_key};
use crate::app::App;
use crate::error::ProxyError;
use crate::pipeline::{self, Call, ClientApi};
use crate::protocol::Protocol;

/// What the gateway reads of a Responses request; the body is forwarded.
#[derive(Deserialize)]
struct View<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default, borrow)]
    input: Option<&'a RawValue>,
    #[serde(default, borrow)]
    instructions: Option<&'a RawValue>,
    #[serde(default)]
    max_output_tokens: Option<u64>,
    #[serde(default, borrow)]
    previous_response_id: Option<Cow<'a, str>>,
    #[serde(default)]
    store: Option<bool>,
    #[serde(default, borrow)]
    prompt_cache_key: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    user: Option<Cow<'a, str>>,
}

impl View<'_> {
    fn session_key(&self) -> Option<String> {
        if let Some(k) = self.prompt_cache_key.as_deref().filter(|k| !k.is_empty()) {
            return Some(format!("pck:{k}"));
        }
        if let Some(u) = self.user.as_deref().filter(|u| !u.is_empty()) {
            return Some(format!("user:{u}"));
        }
        let input = self.input?.get();
        let instructions = self.instructions.map(RawValue::get).unwrap_or_default();
        Some(format!(
            "hash:{}",
            crate::protocol::openai::short_hash(&[instructions, input])
        ))
    }
}

/// `POST /v1/responses`.
pub async fn create(State(app): State<Arc<App>>, request: Request) -> Response {
    let (head, body) = request.into_parts();
    match serve(&app, &head.headers, body).await {
        Ok(response) => response,
        Err(error) => reject(&app, error, Protocol::OpenAi),
    }
}

async fn serve(app: &Arc<App>, headers: &HeaderMap, body: Body) -> Result<Response, ProxyError> {
    let (bytes, top, client) = read_json(app, headers, body).await?;
    let view: View<'_> = serde_json::from_slice(&bytes).map_err(ProxyError::InvalidBody)?;
    require_model(&view.model)?;
    if view.input.is_none() && view.previous_response_id.is_none() {
        return Err(ProxyError::InvalidField {
            field: "input",
            message: "is required",
        });
    }
    let snapshot = app.snapshots.load();
    let session = session_key(&snapshot, &view.model, headers, || view.session_key());
    let mut call = Call::new(
        ClientApi::Responses,
        bytes.clone(),
        view.model.to_string(),
        view.stream.unwrap_or(false),
        headers,
    );
    call.model_span = top.value_span(&bytes, "model");
    call.estimated_tokens = pipeline::estimate_tokens(bytes.len(), view.max_output_tokens);
    call.session_key = session;
    call.previous_response = view.previous_response_id.map(|id| id.into_owned());
    call.stores_response = view.store != Some(false);
    pipeline::run(app, snapshot, call.for_client(client)).await
}
