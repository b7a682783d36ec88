//! The controller: watches LlmAccounts, ModelRoutes, LlmClients and Secrets in its
//! namespaces, and reconciles a namespace whenever something it compiles
//! from changes, on error with backoff, when an OAuth token is due, and at
//! least every resync period. One namespace is reconciled at a time, so
//! there is never more than one writer of a namespace's objects.

mod queue;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::events::Events;
use crate::metrics::Metrics;
use crate::reconcile::Reconciler;
use crate::runtime::{self, Shared};
use queue::RETRY_FIRST;
pub use queue::{Queue, retry_delay};
use watch::{Seen, cached};

/// Pause after a change before reconciling, so a burst of edits (or an
/// apply of many resources) is compiled once.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// The operator's controller.
pub struct Controller {
    /// Per-namespace reconcile.
    pub reconciler: Reconciler,
    /// Event publisher.
    pub events: Events,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Shared state for health and resets.
    pub shared: Shared,
    /// Namespaces to watch; `None` is all of them.
    pub scopes: Vec<Option<String>>,
    /// Longest time between two reconciles of a namespace.
    pub resync: Duration,
    /// Health summary period.
    pub health_interval: Duration,
}

impl Controller {
    /// Runs until the process stops.
    pub async fn run(self) {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let cache = Seen::default();
        // the watches live exactly as long as this future
        let _watches = watch::spawn(
            &self.reconciler.client,
            &self.reconciler.name,
            &self.scopes,
            &tx,
            &cache,
        );
        let mut queue = Queue::default();
        let mut failures: HashMap<String, u32> = HashMap::new();
        let mut health = tokio::time::interval(self.health_interval);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let wake = queue
                .next_due()
                .unwrap_or_else(|| Instant::now() + self.resync);
            tokio::select! {
                Some(ns) = rx.recv() => queue.schedule(&ns, Instant::now() + DEBOUNCE),
                () = tokio::time::sleep_until(wake) => {
                    while let Some(ns) = queue.pop_due(Instant::now()) {
                        let next = self.reconcile(&ns, &cache, &mut failures).await;
                        queue.schedule(&ns, next);
                    }
                }
                _ = health.tick() => self.health(&cache).await,
            }
        }
    }

    /// One namespace; returns when it is due again.
    async fn reconcile(
        &self,
        ns: &str,
        cache: &Seen,
        failures: &mut HashMap<String, u32>,
    ) -> Instant {
        let started = Instant::now();
        let now = Timestamp::now();
        let result = self.reconciler.reconcile(ns, Time(now)).await;
        self.metrics
            .reconcile_seconds
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(summary) => {
                failures.remove(ns);
                self.metrics.reconciles.with_label_values(&["ok"]).inc();
                if summary.objects_written {
                    self.metrics.object_writes.inc();
                    tracing::info!(
                        namespace = ns,
                        "wrote the credentials Secret and routes ConfigMap"
                    );
                }
                if summary.objects_deleted {
                    tracing::info!(
                        namespace = ns,
                        "no accounts or routes left; deleted the proxies' objects"
                    );
                }
                if let Some(why) = &summary.too_large {
                    tracing::warn!(namespace = ns, error = %why, "compiled table too large; kept the last objects");
                }
                self.metrics
                    .status_patches
                    .inc_by(summary.statuses_patched as u64);
                self.metrics
                    .oauth_refreshes
                    .with_label_values(&["ok"])
                    .inc_by(summary.refreshes.0 as u64);
                self.metrics
                    .oauth_refreshes
                    .with_label_values(&["error"])
                    .inc_by(summary.refreshes.1 as u64);
                self.events.publish(&summary.transitions).await;
                let accounts = cached(&cache.accounts, ns);
                match runtime::resets(
                    &self.reconciler.client,
                    &self.shared,
                    &self.events,
                    ns,
                    &accounts,
                )
                .await
                {
                    Ok(n) => self.metrics.cooldown_resets.inc_by(n as u64),
                    Err(e) => {
                        tracing::warn!(namespace = ns, error = %e, "cooldown reset failed; retrying");
                        return Instant::now() + RETRY_FIRST;
                    }
                }
                let mut next = started + self.resync;
                if let Some(due) = summary.next_due_ms {
                    let wait = u64::try_from(due - now.as_millisecond()).unwrap_or(0);
                    next = next.min(Instant::now() + Duration::from_millis(wait));
                }
                next
            }
            Err(e) => {
                let n = failures.entry(ns.to_owned()).or_default();
                *n += 1;
                self.metrics.reconciles.with_label_values(&["error"]).inc();
                self.metrics
                    .reconcile_errors
                    .with_label_values(&[e.metric_label()])
                    .inc();
                let delay = retry_delay(*n);
                tracing::warn!(namespace = ns, error = %e, failures = *n, retry_in = ?delay, "reconcile failed");
                Instant::now() + delay
            }
        }
    }

    /// Brings every account's health and every client's usage summary up
    /// to date.
    async fn health(&self, cache: &Seen) {
        let Some(admin) = self.shared.get() else {
            return;
        };
        let mut namespaces: Vec<String> = [
            namespaces_of(&cache.accounts),
            namespaces_of(&cache.clients),
        ]
        .concat();
        namespaces.sort();
        namespaces.dedup();
        let now_ms = u64::try_from(Timestamp::now().as_millisecond()).unwrap_or(0);
        let client = &self.reconciler.client;
        for ns in namespaces {
            let accounts = cached(&cache.accounts, &ns);
            match runtime::health(client, admin, &ns, &accounts, now_ms).await {
                Ok(n) => self.metrics.status_patches.inc_by(n as u64),
                Err(e) => {
                    tracing::warn!(namespace = %ns, error = %e, "cannot update account health")
                }
            }
            let clients = cached(&cache.clients, &ns);
            match runtime::client_usage(client, admin, &ns, &clients, now_ms).await {
                Ok(n) => self.metrics.status_patches.inc_by(n as u64),
                Err(e) => {
                    tracing::warn!(namespace = %ns, error = %e, "cannot update client usage")
                }
            }
        }
    }
}

fn namespaces_of<K>(cache: &watch::Cache<K>) -> Vec<String> {
    cache
        .lock()
        .map(|c| c.keys().cloned().collect())
        .unwrap_or_default()
}
