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
        "auth": app.auth_mode().as_str(),
        "clients": snapshot.clients.names().len(),
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
    app.metrics.account_limit.reset();
    for account in snapshot.accounts.values() {
        set_limits(
            &app.metrics.account_limit,
            &account.name,
            &account.compiled.limits,
        );
    }
    if let Ok(views) = app.store.view(&snapshot.namespace, &names).await {
        app.metrics.cooldown_seconds.reset();
        app.metrics.cooldown_until.reset();
        app.metrics.account_blocked.reset();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        for (name, view) in names.iter().zip(views) {
            let cooling = view.cooling_for.map_or(0.0, |d| d.as_secs_f64());
            app.metrics
                .cooldown_seconds
                .with_label_values(&[&**name])
                .set(cooling);
            app.metrics
                .cooldown_until
                .with_label_values(&[&**name])
                .set(if cooling > 0.0 { now + cooling } else { 0.0 });
            app.metrics
                .account_blocked
                .with_label_values(&[&**name])
                .set(i64::from(view.blocked));
        }
    }
    client_metrics(&app, &snapshot).await;
    app.metrics
        .state_degraded
        .set(i64::from(app.store.degraded()));
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    app.metrics
        .runtime_tasks
        .set(i64::try_from(tasks).unwrap_or(i64::MAX));
    let mut response = app.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// Each named client's configured limits and what it used across replicas.
async fn client_metrics(app: &App, snapshot: &crate::snapshot::Snapshot) {
    let names = snapshot.clients.names();
    app.metrics.client_limit.reset();
    for client in snapshot.clients.iter() {
        set_limits(&app.metrics.client_limit, &client.name, &client.limits);
    }
    let Ok(usage) = app.store.client_usage(&snapshot.namespace, &names).await else {
        return;
    };
    app.metrics.client_usage.reset();
    for (name, u) in names.iter().zip(usage) {
        for (window, v) in [
            ("requests_last_minute", u.requests_last_minute),
            ("tokens_last_minute", u.tokens_last_minute),
            ("tokens_today", u.tokens_today),
            ("in_flight", u.in_flight),
        ] {
            app.metrics
                .client_usage
                .with_label_values(&[&**name, window])
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }
}

/// One gauge sample per configured limit of an account or client.
fn set_limits(
    gauge: &prometheus::IntGaugeVec,
    name: &str,
    l: &llmpool_crds::table::CompiledLimits,
) {
    for (limit, value) in [
        ("requests_per_minute", l.requests_per_minute.map(u64::from)),
        ("tokens_per_minute", l.tokens_per_minute),
        ("max_concurrency", l.max_concurrency.map(u64::from)),
        ("daily_tokens", l.daily_tokens),
    ] {
        if let Some(v) = value {
            gauge
                .with_label_values(&[name, limit])
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }
}
