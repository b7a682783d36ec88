//! The watches: LlmAccounts, ModelRoutes, LlmClients and (by metadata only)
//! Secrets per scope, turned into the namespaces that need a reconcile.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch};
use kube::{Api, Client, ResourceExt};
use llmpool_crds::objects;
use llmpool_crds::{LlmAccount, LlmClient, ModelRoute};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::reconcile::referenced_secrets;
use crate::runtime::RESET_ANNOTATION;

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

/// Resources the watchers have seen, by namespace and name.
pub(super) type Cache<K> = Arc<Mutex<HashMap<String, BTreeMap<String, K>>>>;

/// Everything the watchers keep: accounts (for resets and health) and
/// clients (for usage), both also for the Secrets they reference.
#[derive(Clone, Default)]
pub(super) struct Seen {
    pub(super) accounts: Cache<LlmAccount>,
    pub(super) clients: Cache<LlmClient>,
}

/// The cached resources of one namespace.
pub(super) fn cached<K: Clone>(cache: &Cache<K>, ns: &str) -> Vec<K> {
    cache
        .lock()
        .map(|c| {
            c.get(ns)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

/// Drops cached resources of `scope` (all namespaces when `None`) that a
/// fresh list did not return: they were deleted while the watch was down.
/// Returns the namespaces that lost any.
fn forget_unlisted<K>(
    cache: &mut HashMap<String, BTreeMap<String, K>>,
    scope: Option<&str>,
    listed: &[(String, String)],
) -> Vec<String> {
    let mut touched = Vec::new();
    for (ns, resources) in cache.iter_mut() {
        if scope.is_some_and(|s| s != ns) {
            continue;
        }
        let before = resources.len();
        resources.retain(|name, _| listed.iter().any(|(n, a)| n == ns && a == name));
        if resources.len() != before {
            touched.push(ns.clone());
        }
    }
    touched
}

/// Keeps `seen` up to date from one watch and names the namespaces whose
/// resources changed in a way `relevant` says matters.
fn caching<K, R>(
    seen: Cache<K>,
    scope: Option<String>,
    relevant: fn(&K) -> R,
) -> impl FnMut(&Event<K>) -> Vec<String>
where
    K: kube::Resource + Clone,
    R: PartialEq,
{
    // resources listed again after a broken watch; the rest are gone
    let mut relisted: Option<Vec<(String, String)>> = None;
    move |event| {
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
                forget_unlisted(&mut seen, scope.as_deref(), &listed)
            }
        }
    }
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

/// Starts the watches of every scope; each sends the namespaces whose
/// inputs changed to `tx` and keeps `cache` up to date. Dropping the
/// returned set stops them.
pub(super) fn spawn(
    client: &Client,
    name: &str,
    scopes: &[Option<String>],
    tx: &mpsc::UnboundedSender<String>,
    seen: &Seen,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let own = objects::credentials_name(name);
    for scope in scopes {
        let scope = scope.as_deref();
        let config = watcher::Config::default();

        let accounts = watch(api::<LlmAccount>(client, scope), config.clone()).default_backoff();
        let scope_ns = scope.map(str::to_owned);
        tasks.spawn(forward(
            accounts,
            tx.clone(),
            caching(seen.accounts.clone(), scope_ns.clone(), relevant),
        ));

        let clients = watch(api::<LlmClient>(client, scope), config.clone()).default_backoff();
        tasks.spawn(forward(
            clients,
            tx.clone(),
            caching(seen.clients.clone(), scope_ns, |c: &LlmClient| {
                c.metadata.generation
            }),
        ));

        let routes = watch(api::<ModelRoute>(client, scope), config.clone()).default_backoff();
        let mut generations: HashMap<(String, String), Option<i64>> = HashMap::new();
        tasks.spawn(forward(routes, tx.clone(), move |event| match event {
            Event::Apply(r) | Event::InitApply(r) => {
                let key = (r.namespace().unwrap_or_default(), r.name_any());
                let ns = key.0.clone();
                let changed =
                    generations.insert(key, r.metadata.generation) != Some(r.metadata.generation);
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
        let seen = seen.clone();
        let own = own.clone();
        tasks.spawn(forward(secrets, tx.clone(), move |event| {
            let s = match event {
                Event::Apply(s) | Event::InitApply(s) | Event::Delete(s) => s,
                Event::Init | Event::InitDone => return Vec::new(),
            };
            let ns = s.namespace().unwrap_or_default();
            let name = s.name_any();
            let (accounts, clients) = (cached(&seen.accounts, &ns), cached(&seen.clients, &ns));
            let referenced = referenced_secrets(&accounts, &clients).contains(&name);
            // the credentials Secret itself: a hand edit or delete is undone
            if referenced || name == own {
                vec![ns]
            } else {
                Vec::new()
            }
        }));
    }
    tasks
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
}
