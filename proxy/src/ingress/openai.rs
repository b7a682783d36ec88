//! OpenAI-compatible endpoints.

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
use crate::protocol::openai::ChatRequestView;

/// `POST /v1/chat/completions`.
pub async fn chat_completions(State(app): State<Arc<App>>, request: Request) -> Response {
    let (head, body) = request.into_parts();
    match chat(&app, &head.headers, body).await {
        Ok(response) => response,
        Err(error) => reject(&app, error, Protocol::OpenAi),
    }
}

async fn chat(app: &Arc<App>, headers: &HeaderMap, body: Body) -> Result<Response, ProxyError> {
    let (bytes, top, client) = read_json(app, headers, body).await?;
    let view: ChatRequestView<'_> =
        serde_json::from_slice(&bytes).map_err(ProxyError::InvalidBody)?;
    require_model(&view.model)?;
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
    let session = session_key(&snapshot, &view.model, headers, || view.session_key());
    let api = ClientApi::Chat {
        include_usage: view.include_usage(),
    };
    let mut call = Call::new(
        api,
        bytes.clone(),
        view.model.to_string(),
        view.stream.unwrap_or(false),
        headers,
    );
    call.model_span = Some(model_span);
    call.estimated_tokens = pipeline::estimate_tokens(bytes.len(), view.max_output_tokens());
    call.session_key = session;
    pipeline::run(app, snapshot, call.for_client(client)).await
}

/// What the gateway reads of an embeddings request.
#[derive(serde::Deserialize)]
struct EmbeddingsView<'a> {
    #[serde(borrow)]
    model: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    input: &'a serde_json::value::RawValue,
    #[serde(default)]
    encoding_format: Option<String>,
}

/// `POST /v1/embeddings`.
pub async fn embeddings(State(app): State<Arc<App>>, request: Request) -> Response {
    let (head, body) = request.into_parts();
    match embed(&app, &head.headers, body).await {
        Ok(response) => response,
        Err(error) => reject(&app, error, Protocol::OpenAi),
    }
}

async fn embed(app: &Arc<App>, headers: &HeaderMap, body: Body) -> Result<Response, ProxyError> {
    let (bytes, top, client) = read_json(app, headers, body).await?;
    let view: EmbeddingsView<'_> =
        serde_json::from_slice(&bytes).map_err(ProxyError::InvalidBody)?;
    require_model(&view.model)?;
    if matches!(view.input.get(), "\"\"" | "[]") {
        return Err(ProxyError::InvalidField {
            field: "input",
            message: "must not be empty",
        });
    }
    let base64 = match view.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => {
            return Err(ProxyError::InvalidField {
                field: "encoding_format",
                message: "must be float or base64",
            });
        }
    };
    let snapshot = app.snapshots.load();
    let mut call = Call::new(
        ClientApi::Embeddings { base64 },
        bytes.clone(),
        view.model.to_string(),
        false,
        headers,
    );
    call.model_span = top.value_span(&bytes, "model");
    call.estimated_tokens = (bytes.len() as u64) / 4;
    pipeline::run(app, snapshot, call.for_client(client)).await
}
