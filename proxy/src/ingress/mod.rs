//! HTTP handlers per client API, plus health, readiness and metrics.

mod admin;
mod anthropic;
mod auth;
mod body;
mod gemini;
mod models;
mod openai;
mod responses;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue};
use llmpool_crds::Strategy;

use crate::app::App;
use crate::error::ProxyError;
use crate::logline;

/// The named client a request authenticated as (None: open gateway or a
/// flat-list key).
type Client = Option<Arc<crate::clients::Client>>;
use crate::protocol::Protocol;
use crate::snapshot::Snapshot;

/// The data-plane router (admin endpoints included).
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/v1/chat/completions",
            post(openai::chat_completions).fallback(not_found),
        )
        .route(
            "/v1/embeddings",
            post(openai::embeddings).fallback(not_found),
        )
        .route(
            "/v1/messages/count_tokens",
            post(anthropic::count_tokens).fallback(not_found),
        )
        .route("/v1/responses", post(responses::create).fallback(not_found))
        .route(
            "/v1/messages",
            post(anthropic::messages).fallback(not_found),
        )
        .route("/v1/models", get(models::list).fallback(not_found))
        .route(
            "/v1/models/{model}",
            get(models::get)
                .post(gemini::model_action)
                .fallback(not_found),
        )
        .route(
            "/v1beta/models",
            get(models::list_gemini).fallback(not_found),
        )
        .route(
            "/v1beta/models/{model}",
            get(models::get_gemini)
                .post(gemini::model_action)
                .fallback(not_found),
        )
        .merge(admin::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), request_id))
        .with_state(app)
}

/// The admin-only router, for a separate --admin-listen address.
pub fn admin_router(app: Arc<App>) -> Router {
    admin::routes().with_state(app)
}

/// The protocol a request without its own handler most likely speaks, for
/// the shape of its error.
fn guess_protocol(request: &Request) -> Protocol {
    let headers = request.headers();
    if request.uri().path().starts_with("/v1beta/")
        || headers.contains_key("x-goog-api-key")
        || request.uri().query().is_some_and(|q| q.contains("key="))
    {
        Protocol::Gemini
    } else if headers.contains_key("anthropic-version") {
        Protocol::Anthropic
    } else {
        Protocol::OpenAi
    }
}

async fn not_found(request: Request) -> Response {
    let protocol = guess_protocol(&request);
    let error = ProxyError::UnknownEndpoint {
        method: request.method().to_string(),
        path: bounded(request.uri().path()),
    };
    error.into_response(protocol)
}

/// A client-supplied string cut to a length safe for logs and error bodies.
pub(crate) fn bounded(text: &str) -> String {
    const MAX: usize = 256;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The checks every JSON endpoint makes before it looks at the body: the
/// client key, a loaded configuration, the size limit and the JSON depth
/// limit. Returns the body, its top-level fields and the named client.
async fn read_json(
    app: &App,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<(bytes::Bytes, crate::protocol::json::TopLevel, Client), ProxyError> {
    let client = auth::check(app, &app.snapshots.load(), headers, None)?;
    if !app.loaded() {
        return Err(ProxyError::NotLoaded);
    }
    let bytes = body::read(body, app.settings.max_body_bytes, app.settings.body_timeout).await?;
    let settings = &app.settings;
    let top = crate::protocol::json::scan_limited(
        &bytes,
        settings.max_json_depth,
        settings.max_json_elements,
    )?;
    Ok((bytes, top, client))
}

/// A request's `model` must name something.
fn require_model(model: &str) -> Result<(), ProxyError> {
    if model.trim().is_empty() {
        return Err(ProxyError::InvalidField {
            field: "model",
            message: "must name a model",
        });
    }
    Ok(())
}

/// Counts and logs a refused request and answers in the client's protocol.
fn reject(app: &App, error: ProxyError, protocol: Protocol) -> Response {
    app.metrics.errors.with_label_values(&[error.label()]).inc();
    let status = error.status();
    if status.is_server_error() {
        tracing::warn!(error = %error, kind = error.label(), "request failed");
    } else {
        tracing::info!(error = %error, kind = error.label(), "request refused");
    }
    error.into_response(protocol)
}

/// The session key of a request on a sticky route: the route's session
/// header, else what the body offers. Other routes skip the work.
fn session_key(
    snapshot: &Snapshot,
    model: &str,
    headers: &HeaderMap,
    from_body: impl FnOnce() -> Option<String>,
) -> Option<String> {
    let route = snapshot
        .route_for(model)
        .filter(|r| r.compiled.strategy == Strategy::Sticky)?;
    let header = &route.compiled.session.header;
    headers
        .get(header.as_str())
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(|v| format!("hdr:{v}"))
        .or_else(from_body)
}

/// The client API of a data-plane path, as a metric label.
fn api_label(path: &str) -> Option<&'static str> {
    Some(match path {
        "/v1/chat/completions" => "chat",
        "/v1/responses" => "responses",
        "/v1/messages" => "messages",
        "/v1/messages/count_tokens" => "count_tokens",
        "/v1/embeddings" => "embeddings",
        p if p.ends_with(":generateContent") || p.ends_with(":streamGenerateContent") => "gemini",
        p if p.ends_with(":countTokens") => "count_tokens",
        p if p.ends_with("mbedContent") || p.ends_with("mbedContents") => "embeddings",
        _ => return None,
    })
}

/// A request id unique across replicas without a system call per request:
/// a random number drawn once per process and a counter, mixed so that ids
/// look random (32 hex digits, like a UUID's).
fn new_request_id() -> String {
    use std::fmt::Write as _;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEED: OnceLock<u128> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| uuid::Uuid::new_v4().as_u128());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // a bijection of the counter: distinct requests, distinct ids
    let first = mix(n.wrapping_add(seed as u64));
    let mut id = String::with_capacity(32);
    let _ = write!(id, "{first:016x}{:016x}", mix(first ^ (seed >> 64) as u64));
    id
}

/// splitmix64's finaliser: a bijection on u64 that scatters its bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Takes the client's `x-request-id` when it is sane, else makes one; puts
/// it on every log line of the request and on the response (not on the
/// upstream request: nothing reads it there), and logs one line per request.
async fn request_id(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    // the id was checked to be visible ASCII, so this never fails; when it
    // somehow did, the answer goes without the header
    let header = HeaderValue::from_str(&id).ok();
    let method = request.method().clone();
    let path = bounded(request.uri().path());
    let started = std::time::Instant::now();
    logline::with_request_id(id, async move {
        let (mut response, client) = auth::recording(next.run(request)).await;
        if let Some(client) = &client {
            app.metrics
                .client_requests
                .with_label_values(&[&**client, response.status().as_str()])
                .inc();
        }
        if let Some(api) = api_label(&path) {
            app.metrics
                .request_seconds
                .with_label_values(&[api])
                .observe(started.elapsed().as_secs_f64());
        }
        if let Some(value) = header {
            response.headers_mut().insert("x-request-id", value);
        }
        if path != "/metrics" && path != "/healthz" && path != "/readyz" {
            tracing::info!(
                method = %method,
                path = %path,
                status = response.status().as_u16(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "request"
            );
        }
        response
    })
    .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_unique_and_shaped_like_a_uuid() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| super::new_request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(
            ids.iter()
                .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        );
        // no shared visible prefix between consecutive ids
        let (a, b) = (super::new_request_id(), super::new_request_id());
        assert_ne!(a[..8], b[..8]);
    }
}
