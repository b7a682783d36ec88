//! Cluster mode: watch exactly the operator's two objects by name —
//! ConfigMap `<name>-routes` and Secret `<name>-credentials` — with a
//! `metadata.name` field selector, so the proxy's Role can be limited to
//! those `resourceNames`. A snapshot is built only from a consistent pair
//! (same content hash); anything else keeps the last good snapshot.

use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use llmpool_crds::Compiled;
use llmpool_crds::objects::{self, ReadError};

use crate::app::App;
use crate::snapshot::Snapshot;

enum Change {
    Routes(Option<ConfigMap>),
    Credentials(Option<Secret>),
}

fn changes<K>(
    api: Api<K>,
    object: &str,
    wrap: fn(Option<K>) -> Change,
) -> impl futures_util::Stream<Item = Change> + Send + use<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={object}"));
    let object = object.to_owned();
    watcher::watcher(api, config).default_backoff().filter_map(move |event| {
        let change = match event {
            Ok(Event::Apply(o) | Event::InitApply(o)) => Some(wrap(Some(o))),
            Ok(Event::Delete(_)) => {
                tracing::warn!(object = %object, "watched object deleted; keeping the last good configuration");
                Some(wrap(None))
            }
            Ok(Event::Init | Event::InitDone) => None,
            Err(e) => {
                tracing::warn!(object = %object, error = %e, "watch failed; retrying, still serving the last good configuration");
                None
            }
        };
        std::future::ready(change)
    })
}

/// Watches the pair and swaps in every consistent, valid change. Runs until
/// the process ends.
pub async fn watch(app: Arc<App>, client: Client, namespace: String, name: String) {
    let routes = changes(
        Api::<ConfigMap>::namespaced(client.clone(), &namespace),
        &objects::routes_name(&name),
        Change::Routes,
    );
    let credentials = changes(
        Api::<Secret>::namespaced(client, &namespace),
        &objects::credentials_name(&name),
        Change::Credentials,
    );
    let mut events = futures_util::stream::select(routes.boxed(), credentials.boxed());
    let (mut configmap, mut secret) = (None, None);
    let mut served_hash = String::new();
    let mut generation = app.snapshots.load().generation;
    while let Some(change) = events.next().await {
        match change {
            Change::Routes(c) => configmap = c,
            Change::Credentials(s) => secret = s,
        }
        let (Some(cm), Some(sec)) = (&configmap, &secret) else {
            continue;
        };
        match objects::read(cm, sec) {
            Ok(contents) if contents.hash == served_hash => {}
            Ok(contents) => {
                generation += 1;
                let hash = contents.hash;
                let compiled = Compiled {
                    table: contents.table,
                    credentials: contents.credentials,
                    clients: contents.clients,
                    diagnostics: Vec::new(),
                };
                app.snapshots.swap(Snapshot::build(
                    &compiled,
                    &namespace,
                    generation,
                    &app.shared,
                ));
                app.mark_loaded();
                app.metrics.reloads.with_label_values(&["applied"]).inc();
                app.note_auth_mode();
                app.metrics
                    .config_generation
                    .set(i64::try_from(generation).unwrap_or(i64::MAX));
                tracing::info!(generation, hash = %hash, routes = compiled.table.routes.len(), "configuration loaded from the cluster");
                served_hash = hash;
            }
            Err(ReadError::Inconsistent { .. }) => {
                tracing::debug!("routes and credentials differ in version; waiting for the other");
            }
            Err(e) => {
                app.metrics.reloads.with_label_values(&["rejected"]).inc();
                tracing::warn!(error = %e, "cluster configuration rejected; keeping the last good one");
            }
        }
    }
}
