//! The watches: LlmAccounts, ModelRoutes and (by metadata only) Secrets
//! per scope, turned into the namespaces that need a reconcile.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch};
use kube::{Api, Client, ResourceExt};
use llmpool_crds::objects;
use llmpool_crds::{LlmAccount, ModelRoute};
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

/// The accounts the watchers have seen, by namespace and name.
pub(super) type Accounts = Arc<Mutex<HashMap<String, BTreeMap<String, LlmAccount>>>>;

pub(super) fn accounts_of(cache: &Accounts, ns: &str) -> Vec<LlmAccount> {
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
    cache: &Accounts,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let own = objects::credentials_name(name);
    for scope in scopes {
        let scope = scope.as_deref();
        let config = watcher::Config::default();

        let accounts = watch(api::<LlmAccount>(client, scope), config.clone()).default_backoff();
        let seen = cache.clone();
        let scope_ns = scope.map(str::to_owned);
        // accounts listed again after a broken watch; the rest are gone
        let mut relisted: Option<Vec<(String, String)>> = None;
        tasks.spawn(forward(accounts, tx.clone(), move |event| {
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
        let seen = cache.clone();
        let own = own.clone();
        tasks.spawn(forward(secrets, tx.clone(), move |event| {
            let s = match event {
                Event::Apply(s) | Event::InitApply(s) | Event::Delete(s) => s,
                Event::Init | Event::InitDone => return Vec::new(),
            };
            let ns = s.namespace().unwrap_or_default();
            let name = s.name_any();
            let referenced = seen.lock().is_ok_and(|c| {
                c.get(&ns)
                    .is_some_and(|accounts| referenced_secrets(accounts.values()).contains(&name))
            });
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
