//! `/healthz`, `/readyz` and `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};

use crate::app::App;

pub(super) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let snapshot = app.snapshots.load();
    let ready = app.loaded() && !app.draining();
    let routes_ready = snapshot.routes.iter().filter(|r| r.compiled.ready).count();
    let body = serde_json::json!({
        "ready": ready,
        "draining": app.draining(),
        "configLoaded": app.loaded(),
        "configGeneration": snapshot.generation,
        "routes": snapshot.routes.len(),
        "routesReady": routes_ready,
        "accounts": snapshot.accounts.len(),
        "state": app.store.kind(),
        "stateDegraded": app.store.degraded(),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let snapshot = app.snapshots.load();
    let names: Vec<Arc<str>> = snapshot.accounts.values().map(|a| a.name.clone()).collect();
    if let Ok(views) = app.store.view(&snapshot.namespace, &names).await {
        app.metrics.cooldown_seconds.reset();
        app.metrics.account_blocked.reset();
        for (name, view) in names.iter().zip(views) {
            let cooling = view.cooling_for.map_or(0.0, |d| d.as_secs_f64());
            app.metrics
                .cooldown_seconds
                .with_label_values(&[&**name])
                .set(cooling);
            app.metrics
                .account_blocked
                .with_label_values(&[&**name])
                .set(i64::from(view.blocked));
        }
    }
    app.metrics
        .state_degraded
        .set(i64::from(app.store.degraded()));
    let mut response = app.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
