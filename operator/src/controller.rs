//! The controller: watches LlmAccounts, ModelRoutes and Secrets in its
//! namespaces, and reconciles a namespace whenever something it compiles
//! from changes, on error with backoff, when an OAuth token is due, and at
//! least every resync period. One namespace is reconciled at a time, so
//! there is never more than one writer of a namespace's objects.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch};
use kube::{Api, Client, ResourceExt};
use llmpool_crds::objects;
use llmpool_crds::{LlmAccount, ModelRoute};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::events::Events;
use crate::metrics::Metrics;
use crate::reconcile::{Reconciler, referenced_secrets};
use crate::runtime::{self, RESET_ANNOTATION, Shared};

/// Pause after a change before reconciling, so a burst of edits (or an
/// apply of many resources) is compiled once.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// First and longest retry delay after a failed reconcile.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// The delay before retry number `failures`.
pub fn retry_delay(failures: u32) -> Duration {
    RETRY_FIRST
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(RETRY_MAX)
}

/// Namespaces waiting for a reconcile, each with its due time.
#[derive(Debug, Default)]
pub struct Queue {
    due: BTreeMap<String, Instant>,
}

impl Queue {
    /// Asks for `ns` at `at`, or earlier if it is already due earlier.
    pub fn schedule(&mut self, ns: &str, at: Instant) {
        let slot = self.due.entry(ns.to_owned()).or_insert(at);
        *slot = (*slot).min(at);
    }

    /// When the next namespace is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }

    /// Takes a namespace due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<String> {
        let ns = self
            .due
            .iter()
            .filter(|(_, at)| **at <= now)
            .min_by_key(|(_, at)| **at)
            .map(|(ns, _)| ns.clone())?;
        self.due.remove(&ns);
        Some(ns)
    }
}

/// What an account change must look like to matter: spec, labels (route
/// selectors) or a reset request. Status-only updates, including the
/// operator's own, are not worth a reconcile.
fn relevant(a: &LlmAccount) -> (Option<i64>, BTreeMap<String, String>, Option<String>) {
    (
        a.metadata.generation,
        a.labels().clone(),
        a.annotations().get(RESET_ANNOTATION).cloned(),
    )
}

/// The accounts the watchers have seen, by namespace and name.
type Accounts = Arc<Mutex<HashMap<String, BTreeMap<String, LlmAccount>>>>;

fn accounts_of(cache: &Accounts, ns: &str) -> Vec<LlmAccount> {
    cache
        .lock()
        .map(|c| {
            c.get(ns)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

/// Drops cached accounts of `scope` (all namespaces when `None`) that a
/// fresh list did not return: they were deleted while the watch was down.
/// Returns the namespaces that lost any.
fn forget_unlisted(
    cache: &mut HashMap<String, BTreeMap<String, LlmAccount>>,
    scope: Option<&str>,
    listed: &[(String, String)],
) -> Vec<String> {
    let mut touched = Vec::new();
    for (ns, accounts) in cache.iter_mut() {
        if scope.is_some_and(|s| s != ns) {
            continue;
        }
        let before = accounts.len();
        accounts.retain(|name, _| listed.iter().any(|(n, a)| n == ns && a == name));
        if accounts.len() != before {
            touched.push(ns.clone());
        }
    }
    touched
}

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

fn api<K>(client: &Client, scope: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Forwards the namespaces a watch stream touches.
async fn forward<S, K>(
    stream: S,
    tx: mpsc::UnboundedSender<String>,
    mut keep: impl FnMut(&Event<K>) -> Vec<String>,
) where
    S: Stream<Item = Result<Event<K>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                for ns in keep(&event) {
                    if tx.send(ns).is_err() {
                        return;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "watch failed; retrying with backoff"),
        }
    }
}

impl Controller {
    fn watch(&self, tx: &mpsc::UnboundedSender<String>, cache: &Accounts) {
        let client = &self.reconciler.client;
        let own = objects::credentials_name(&self.reconciler.name);
        for scope in &self.scopes {
            let scope = scope.as_deref();
            let config = watcher::Config::default();

            let accounts =
                watch(api::<LlmAccount>(client, scope), config.clone()).default_backoff();
            let seen = cache.clone();
            let scope_ns = scope.map(str::to_owned);
            // accounts listed again after a broken watch; the rest are gone
            let mut relisted: Option<Vec<(String, String)>> = None;
            tokio::spawn(forward(accounts, tx.clone(), move |event| {
                let Ok(mut seen) = seen.lock() else {
                    return Vec::new();
                };
                match event {
                    Event::Apply(a) | Event::InitApply(a) => {
                        let ns = a.namespace().unwrap_or_default();
                        if let Some(listed) = relisted.as_mut() {
                            listed.push((ns.clone(), a.name_any()));
                        }
                        let slot = seen.entry(ns.clone()).or_default();
                        let changed = slot
                            .get(&a.name_any())
                            .is_none_or(|old| relevant(old) != relevant(a));
                        slot.insert(a.name_any(), a.clone());
                        if changed { vec![ns] } else { Vec::new() }
                    }
                    Event::Delete(a) => {
                        let ns = a.namespace().unwrap_or_default();
                        if let Some(slot) = seen.get_mut(&ns) {
                            slot.remove(&a.name_any());
                        }
                        vec![ns]
                    }
                    Event::Init => {
                        relisted = Some(Vec::new());
                        Vec::new()
                    }
                    Event::InitDone => {
                        let listed = relisted.take().unwrap_or_default();
                        forget_unlisted(&mut seen, scope_ns.as_deref(), &listed)
                    }
                }
            }));

            let routes = watch(api::<ModelRoute>(client, scope), config.clone()).default_backoff();
            let mut generations: HashMap<(String, String), Option<i64>> = HashMap::new();
            tokio::spawn(forward(routes, tx.clone(), move |event| match event {
                Event::Apply(r) | Event::InitApply(r) => {
                    let key = (r.namespace().unwrap_or_default(), r.name_any());
                    let ns = key.0.clone();
                    let changed = generations.insert(key, r.metadata.generation)
                        != Some(r.metadata.generation);
                    if changed { vec![ns] } else { Vec::new() }
                }
                Event::Delete(r) => {
                    generations.remove(&(r.namespace().unwrap_or_default(), r.name_any()));
                    vec![r.namespace().unwrap_or_default()]
                }
                Event::Init | Event::InitDone => Vec::new(),
            }));

            // metadata only: the operator never keeps Secret data around
            let secrets =
                watch(api::<PartialObjectMeta<Secret>>(client, scope), config).default_backoff();
            let seen = cache.clone();
            let own = own.clone();
            tokio::spawn(forward(secrets, tx.clone(), move |event| {
                let s = match event {
                    Event::Apply(s) | Event::InitApply(s) | Event::Delete(s) => s,
                    Event::Init | Event::InitDone => return Vec::new(),
                };
                let ns = s.namespace().unwrap_or_default();
                let name = s.name_any();
                let referenced = seen.lock().is_ok_and(|c| {
                    c.get(&ns).is_some_and(|accounts| {
                        let accounts: Vec<LlmAccount> = accounts.values().cloned().collect();
                        referenced_secrets(&accounts).contains(&name)
                    })
                });
                // the credentials Secret itself: a hand edit or delete is undone
                if referenced || name == own {
                    vec![ns]
                } else {
                    Vec::new()
                }
            }));
        }
    }

    /// Runs until the process stops.
    pub async fn run(self) {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let cache: Accounts = Arc::default();
        self.watch(&tx, &cache);
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
        cache: &Accounts,
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
                let accounts = accounts_of(cache, ns);
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

    /// Brings every account's health summary up to date.
    async fn health(&self, cache: &Accounts) {
        let Some(admin) = self.shared.get() else {
            return;
        };
        let namespaces: Vec<String> = cache
            .lock()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default();
        let now_ms = u64::try_from(Timestamp::now().as_millisecond()).unwrap_or(0);
        for ns in namespaces {
            let accounts = accounts_of(cache, &ns);
            match runtime::health(&self.reconciler.client, admin, &ns, &accounts, now_ms).await {
                Ok(n) => self.metrics.status_patches.inc_by(n as u64),
                Err(e) => {
                    tracing::warn!(namespace = %ns, error = %e, "cannot update account health")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(ns: &str, name: &str) -> LlmAccount {
        let mut a = LlmAccount::new(
            name,
            serde_json::from_value(serde_json::json!({"provider": "openai"})).unwrap(),
        );
        a.metadata.namespace = Some(ns.to_owned());
        a
    }

    #[test]
    fn a_relist_forgets_accounts_deleted_while_the_watch_was_down() {
        let mut cache: HashMap<String, BTreeMap<String, LlmAccount>> = HashMap::new();
        for (ns, name) in [("a", "kept"), ("a", "gone"), ("b", "other")] {
            cache
                .entry(ns.to_owned())
                .or_default()
                .insert(name.to_owned(), account(ns, name));
        }
        let listed = vec![("a".to_owned(), "kept".to_owned())];
        assert_eq!(
            forget_unlisted(&mut cache, Some("a"), &listed),
            vec!["a".to_owned()]
        );
        assert_eq!(cache["a"].keys().collect::<Vec<_>>(), vec!["kept"]);
        assert_eq!(cache["b"].len(), 1, "another namespace's watch is not ours");
        assert_eq!(
            forget_unlisted(&mut cache, None, &listed),
            vec!["b".to_owned()]
        );
    }

    #[test]
    fn retries_back_off_from_one_second_to_five_minutes() {
        let secs: Vec<u64> = (1..=11).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }

    #[test]
    fn the_queue_keeps_the_earliest_time_and_hands_out_due_namespaces_in_order() {
        let t0 = Instant::now();
        let mut q = Queue::default();
        q.schedule("b", t0 + Duration::from_secs(5));
        q.schedule("a", t0 + Duration::from_secs(9));
        q.schedule("a", t0 + Duration::from_secs(2));
        q.schedule("b", t0 + Duration::from_secs(60));
        assert_eq!(q.next_due(), Some(t0 + Duration::from_secs(2)));
        assert_eq!(q.pop_due(t0), None);
        assert_eq!(q.pop_due(t0 + Duration::from_secs(6)).as_deref(), Some("a"));
        assert_eq!(q.pop_due(t0 + Duration::from_secs(6)).as_deref(), Some("b"));
        assert_eq!(q.pop_due(t0 + Duration::from_secs(6)), None);
    }
}
