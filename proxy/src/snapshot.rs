//! The immutable configuration snapshot. A request loads it once and keeps
//! it to the end; a reload builds a new one and swaps it in atomically, so
//! readers never see half an update and in-flight requests are untouched.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arc_swap::ArcSwap;
use llmpool_crds::glob::Glob;
use llmpool_crds::{Compiled, CompiledAccount, CompiledRoute};

use crate::clients::Directory;
use crate::upstream::Endpoint;
use crate::upstream::clients::{ClientKey, ClientPool, ClientResult};

/// One account as the data plane uses it.
#[derive(Debug)]
pub struct AccountRuntime {
    /// Name, shared cheaply.
    pub name: Arc<str>,
    /// Compiled settings.
    pub compiled: CompiledAccount,
    /// Model globs this account serves (empty = all).
    pub models: Vec<Glob>,
    /// URL and headers, or why the account cannot be called.
    pub endpoint: Result<Endpoint, String>,
    /// Credential fingerprint.
    pub fingerprint: Arc<str>,
    /// Project, shared cheaply.
    pub project: Option<Arc<str>>,
}

impl AccountRuntime {
    /// Whether this account serves `model`.
    pub fn serves(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|g| g.matches(model))
    }
}

/// An account inside a tier, with the client to call it.
pub struct Member {
    /// The account.
    pub account: Arc<AccountRuntime>,
    /// Its pooled client.
    pub client: ClientResult,
}

/// A tier with its precomputed orders.
pub struct TierRuntime {
    /// Members sorted by name.
    pub members: Vec<Member>,
    /// Upstream model override.
    pub model: Option<Arc<str>>,
    /// Smooth weighted round-robin sequence of member indexes.
    pub weighted: Vec<usize>,
    /// Member indexes by (priority, name), for fill-first.
    pub by_priority: Vec<usize>,
}

/// A route with its tiers ready to use.
pub struct RouteRuntime {
    /// Compiled settings.
    pub compiled: CompiledRoute,
    /// Tiers in order.
    pub tiers: Vec<TierRuntime>,
    /// Round-robin position; lives outside the snapshot so reloads keep it.
    pub rotation: Arc<AtomicU64>,
}

/// Everything a request needs from configuration.
pub struct Snapshot {
    /// Increases with every swap.
    pub generation: u64,
    /// Namespace (key prefix in shared state).
    pub namespace: Arc<str>,
    /// Routes in table order.
    pub routes: Vec<RouteRuntime>,
    /// Accounts by name.
    pub accounts: BTreeMap<String, Arc<AccountRuntime>>,
    /// Named client keys.
    pub clients: Directory,
    exact: HashMap<String, usize>,
    globs: Vec<(Glob, usize)>,
}

/// Long-lived pieces a snapshot borrows from (survive reloads).
#[derive(Default)]
pub struct Shared {
    /// HTTP clients.
    pub clients: ClientPool,
    rotations: std::sync::Mutex<HashMap<String, Arc<AtomicU64>>>,
}

impl Shared {
    fn rotation(&self, route: &str) -> Arc<AtomicU64> {
        let mut map = self
            .rotations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(route.to_owned()).or_default().clone()
    }
}

impl Snapshot {
    /// Builds a snapshot from a compiled table.
    pub fn build(compiled: &Compiled, namespace: &str, generation: u64, shared: &Shared) -> Self {
        let table = &compiled.table;
        let accounts: BTreeMap<String, Arc<AccountRuntime>> = table
            .accounts
            .iter()
            .map(|(name, acc)| {
                let key = compiled.credentials.get(name);
                let endpoint = Endpoint::new(acc, key).map_err(|e| e.to_string());
                let runtime = AccountRuntime {
                    name: Arc::from(name.as_str()),
                    compiled: acc.clone(),
                    models: acc
                        .models
                        .iter()
                        .filter_map(|m| Glob::new(m).ok())
                        .collect(),
                    endpoint,
                    fingerprint: Arc::from(acc.credential_fingerprint.as_str()),
                    project: acc.project_id.as_deref().map(Arc::from),
                };
                (name.clone(), Arc::new(runtime))
            })
            .collect();

        let mut used_clients = Vec::new();
        let mut routes = Vec::new();
        let mut exact = HashMap::new();
        let mut globs = Vec::new();
        for (index, route) in table.routes.iter().enumerate() {
            let tiers = route
                .tiers
                .iter()
                .map(|tier| {
                    let members: Vec<Member> = tier
                        .accounts
                        .iter()
                        .filter_map(|name| accounts.get(name))
                        .map(|acc| {
                            let key = ClientKey {
                                account: acc.compiled.name.clone(),
                                egress_proxy: acc.compiled.egress_proxy.clone(),
                                connect_timeout_ms: route.retry.connect_timeout_ms,
                            };
                            let client = shared.clients.get(&key);
                            used_clients.push(key);
                            Member {
                                account: acc.clone(),
                                client,
                            }
                        })
                        .collect();
                    let weights: Vec<u32> =
                        members.iter().map(|m| m.account.compiled.weight).collect();
                    let mut by_priority: Vec<usize> = (0..members.len()).collect();
                    by_priority.sort_by_key(|&i| {
                        (
                            members[i].account.compiled.priority,
                            members[i].account.name.clone(),
                        )
                    });
                    TierRuntime {
                        weighted: smooth_weighted(&weights),
                        by_priority,
                        model: tier.model.as_deref().map(Arc::from),
                        members,
                    }
                })
                .collect();
            for pattern in &route.models {
                let Ok(glob) = Glob::new(pattern) else {
                    continue;
                };
                if glob.is_exact() {
                    exact.insert(pattern.clone(), index);
                } else {
                    globs.push((glob, index));
                }
            }
            routes.push(RouteRuntime {
                compiled: route.clone(),
                tiers,
                rotation: shared.rotation(&route.name),
            });
        }
        // most specific first; ties go to the route whose name sorts first
        globs.sort_by(|(a, ai), (b, bi)| {
            a.specificity_cmp(b)
                .then_with(|| routes[*ai].compiled.name.cmp(&routes[*bi].compiled.name))
        });
        shared.clients.retain(&used_clients);
        Self {
            generation,
            namespace: Arc::from(namespace),
            routes,
            accounts,
            clients: Directory::build(&compiled.clients),
            exact,
            globs,
        }
    }

    /// The route serving `model`: an exact name first, then the most
    /// specific glob.
    pub fn route_for(&self, model: &str) -> Option<&RouteRuntime> {
        if let Some(&i) = self.exact.get(model) {
            return self.routes.get(i);
        }
        self.globs
            .iter()
            .find(|(g, _)| g.matches(model))
            .and_then(|(_, i)| self.routes.get(*i))
    }

    /// The exact model names clients may ask for, sorted.
    pub fn model_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.exact.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

/// Smooth weighted round-robin (as in nginx): spreads heavy members out
/// instead of sending them runs of requests.
fn smooth_weighted(weights: &[u32]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut order = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        for (c, &w) in current.iter_mut().zip(weights) {
            *c += i64::from(w);
        }
        let Some((best, _)) = current
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
        else {
            break;
        };
        current[best] -= total;
        order.push(best);
    }
    order
}

/// The current snapshot, swapped atomically.
pub struct SnapshotStore {
    current: ArcSwap<Snapshot>,
}

impl SnapshotStore {
    /// Starts with `first`.
    pub fn new(first: Snapshot) -> Self {
        Self {
            current: ArcSwap::from_pointee(first),
        }
    }

    /// The snapshot for one request.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces the snapshot; requests holding the old one finish on it.
    pub fn swap(&self, next: Snapshot) {
        self.current.store(Arc::new(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_weighted_spreads_by_weight() {
        let order = smooth_weighted(&[3, 1]);
        assert_eq!(order.iter().filter(|&&i| i == 0).count(), 3);
        assert_eq!(order.len(), 4);
        assert_ne!(
            order,
            [0, 0, 0, 1],
            "the heavy member is interleaved, not sent a run"
        );
        assert_eq!(smooth_weighted(&[2, 1]), [0, 1, 0]);
        assert_eq!(smooth_weighted(&[1, 1, 1]), [0, 1, 2]);
    }
}
