//! HTTP handlers per client API, plus health, readiness and metrics.

mod admin;
mod auth;
mod body;
mod openai;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use http::HeaderValue;
use tracing::Instrument;

use crate::app::App;
use crate::error::ProxyError;
use crate::protocol::Protocol;

/// The data-plane router (admin endpoints included).
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/v1/chat/completions",
            post(openai::chat_completions).fallback(not_found),
        )
        .route("/v1/models", get(openai::list_models).fallback(not_found))
        .merge(admin::routes())
        .fallback(not_found)
        .layer(middleware::from_fn(request_id))
        .with_state(app)
}

/// The admin-only router, for a separate --admin-listen address.
pub fn admin_router(app: Arc<App>) -> Router {
    admin::routes().with_state(app)
}

async fn not_found(request: Request) -> Response {
    let error = ProxyError::UnknownEndpoint {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
    };
    error.into_response(Protocol::OpenAi)
}

/// Takes the client's `x-request-id` when it is sane, else makes one; puts
/// it on the log span and on the response, and logs one line per request.
async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    if let Ok(value) = HeaderValue::from_str(&id) {
        request.headers_mut().insert("x-request-id", value);
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.run(request).instrument(span.clone()).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    if path != "/metrics" && path != "/healthz" && path != "/readyz" {
        span.in_scope(|| {
            tracing::info!(
                method = %method,
                path = %path,
                status = response.status().as_u16(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "request"
            );
        });
    }
    response
}
