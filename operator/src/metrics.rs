//! The operator's Prometheus metrics, served on `--metrics` with /healthz.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    /// Reconciles by result (ok, error).
    pub reconciles: IntCounterVec,
    /// Failed reconciles by error kind.
    pub reconcile_errors: IntCounterVec,
    /// Reconcile duration.
    pub reconcile_seconds: Histogram,
    /// Writes of the proxies' objects.
    pub object_writes: IntCounter,
    /// Status patches.
    pub status_patches: IntCounter,
    /// OAuth refreshes by result (ok, error).
    pub oauth_refreshes: IntCounterVec,
    /// Namespaces whose table does not fit one object.
    pub too_large: IntGauge,
    /// 1 while this replica holds the leader Lease.
    pub leader: IntGauge,
    /// Cooldown resets done on request.
    pub cooldown_resets: IntCounter,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    // names are fixed and distinct, so registration cannot clash
    let _ = registry.register(Box::new(metric.clone()));
    metric
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> prometheus::Result<Self> {
        let r = Registry::new();
        Ok(Self {
            reconciles: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "llmpool_operator_reconciles_total",
                        "Namespace reconciles by result.",
                    ),
                    &["result"],
                )?,
            ),
            reconcile_errors: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "llmpool_operator_reconcile_errors_total",
                        "Failed reconciles by error kind.",
                    ),
                    &["error"],
                )?,
            ),
            reconcile_seconds: register(
                &r,
                Histogram::with_opts(HistogramOpts::new(
                    "llmpool_operator_reconcile_duration_seconds",
                    "Time one namespace reconcile took.",
                ))?,
            ),
            object_writes: register(
                &r,
                IntCounter::new(
                    "llmpool_operator_object_writes_total",
                    "Writes of the credentials Secret and routes ConfigMap pair.",
                )?,
            ),
            status_patches: register(
                &r,
                IntCounter::new(
                    "llmpool_operator_status_patches_total",
                    "Status patches on LlmAccounts and ModelRoutes.",
                )?,
            ),
            oauth_refreshes: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "llmpool_operator_oauth_refreshes_total",
                        "OAuth access-token refreshes by result.",
                    ),
                    &["result"],
                )?,
            ),
            too_large: register(
                &r,
                IntGauge::new(
                    "llmpool_operator_tables_too_large",
                    "Namespaces whose compiled table does not fit one object.",
                )?,
            ),
            leader: register(
                &r,
                IntGauge::new(
                    "llmpool_operator_leader",
                    "1 while this replica holds the leader Lease.",
                )?,
            ),
            cooldown_resets: register(
                &r,
                IntCounter::new(
                    "llmpool_operator_cooldown_resets_total",
                    "Cooldown resets asked for with the reset-cooldown annotation.",
                )?,
            ),
            registry: r,
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Serves `/metrics` and `/healthz` on `addr`; returns the bound address.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let router = axum::Router::new()
        .route("/metrics", get(move || async move { metrics.render() }))
        .route("/healthz", get(|| async { "ok" }));
    let bound = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(bound)
}
