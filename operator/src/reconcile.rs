//! One namespace's reconcile: read its accounts, routes, clients and the
//! Secrets they reference, bring OAuth access tokens up to date, compile, write the
//! proxies' two objects when their content changed (server-side apply, one
//! field manager), delete them when the namespace has no accounts or routes
//! left, and bring every resource's status up to date, patching only what
//! changed. Idempotent: a second run on the same state makes no writes.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use llmpool_crds::objects::{self, HASH_ANNOTATION};
use llmpool_crds::{Inputs, LlmAccount, LlmClient, ModelRoute, compile};
use serde_json::json;

use crate::oauth::Refresher;
use crate::status;

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "llmpool-operator";

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The compiled table does not fit the objects.
    #[error(transparent)]
    Render(#[from] objects::RenderError),
}

impl Error {
    /// The variant's name, as a metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Render(_) => "render",
        }
    }
}

/// What one reconcile did.
#[derive(Debug, Default, PartialEq)]
pub struct Summary {
    /// The two objects were (re)written.
    pub objects_written: bool,
    /// The two objects were deleted.
    pub objects_deleted: bool,
    /// Status patches sent.
    pub statuses_patched: usize,
    /// Conditions that changed status, for Events.
    pub transitions: Vec<Transition>,
    /// The compiled table did not fit; the objects were left as they were.
    pub too_large: Option<String>,
    /// OAuth refreshes that succeeded and that failed.
    pub refreshes: (usize, usize),
    /// When an OAuth refresh (or retry) is next due, epoch ms.
    pub next_due_ms: Option<i64>,
}

/// A condition that changed status on one resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The resource.
    pub object: ObjectReference,
    /// The condition as it now stands.
    pub condition: Condition,
}

/// Reconciles namespaces for one release.
pub struct Reconciler {
    /// The API client.
    pub client: Client,
    /// The release name: objects are `<name>-credentials` and `<name>-routes`.
    pub name: String,
    /// OAuth access tokens.
    pub oauth: Refresher,
}

/// The transitions from `before` to `after` on `object`.
fn transitions(
    object: &ObjectReference,
    before: &[Condition],
    after: &[Condition],
) -> Vec<Transition> {
    after
        .iter()
        .filter(|c| {
            !before
                .iter()
                .any(|b| b.type_ == c.type_ && b.status == c.status)
        })
        .map(|c| Transition {
            object: object.clone(),
            condition: c.clone(),
        })
        .collect()
}

/// Secrets the accounts and clients reference, sorted.
pub fn referenced_secrets<'a>(
    accounts: impl IntoIterator<Item = &'a LlmAccount>,
    clients: impl IntoIterator<Item = &'a LlmClient>,
) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = clients
        .into_iter()
        .map(|c| c.spec.key_secret_ref.name.clone())
        .collect();
    for credentials in accounts
        .into_iter()
        .filter_map(|a| a.spec.credentials.as_ref())
    {
        if let Some(r) = &credentials.secret_ref {
            names.insert(r.name.clone());
        }
        if let Some(o) = &credentials.oauth {
            names.insert(o.refresh_token_ref.name.clone());
            if let Some(c) = &o.client_secret_ref {
                names.insert(c.name.clone());
            }
        }
    }
    names
}

impl Reconciler {
    /// Reconciles namespace `ns`, with `now` as the time of changed
    /// conditions and OAuth refreshes.
    pub async fn reconcile(&self, ns: &str, now: Time) -> Result<Summary, Error> {
        let name = self.name.as_str();
        let client = &self.client;
        let account_api = Api::<LlmAccount>::namespaced(client.clone(), ns);
        let route_api = Api::<ModelRoute>::namespaced(client.clone(), ns);
        let secret_api = Api::<Secret>::namespaced(client.clone(), ns);
        let configmap_api = Api::<ConfigMap>::namespaced(client.clone(), ns);
        let accounts = account_api.list(&ListParams::default()).await?.items;
        let routes = route_api.list(&ListParams::default()).await?.items;
        let client_api = Api::<LlmClient>::namespaced(client.clone(), ns);
        let clients = client_api.list(&ListParams::default()).await?.items;
        let mut summary = Summary::default();

        if accounts.is_empty() && routes.is_empty() && clients.is_empty() {
            let gone = DeleteParams::default();
            for result in [
                configmap_api
                    .delete(&objects::routes_name(name), &gone)
                    .await
                    .map(|_| ()),
                secret_api
                    .delete(&objects::credentials_name(name), &gone)
                    .await
                    .map(|_| ()),
            ] {
                match result {
                    Ok(()) => summary.objects_deleted = true,
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            self.oauth.forget_namespace(ns);
            return Ok(summary);
        }

        let mut secrets = Vec::new();
        for secret in referenced_secrets(&accounts, &clients) {
            if let Some(s) = secret_api.get_opt(&secret).await? {
                secrets.push(s);
            }
        }
        let configmap_now = configmap_api.get_opt(&objects::routes_name(name)).await?;
        let secret_now = secret_api.get_opt(&objects::credentials_name(name)).await?;

        let now_ms = now.0.as_millisecond();
        let round = self
            .oauth
            .round(ns, &accounts, &secrets, secret_now.as_ref(), now_ms)
            .await;
        for (at, value) in &round.rotated {
            let patch = json!({"data": {&at.key: BASE64.encode(value)}});
            secret_api
                .patch(&at.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        summary.next_due_ms = round.next_due_ms;
        summary.refreshes = (
            round.refreshed.iter().filter(|(_, e)| e.is_none()).count(),
            round.refreshed.iter().filter(|(_, e)| e.is_some()).count(),
        );

        let compiled = compile(&Inputs {
            accounts: &accounts,
            routes: &routes,
            clients: &clients,
            secrets: &secrets,
            oauth_tokens: &round.tokens,
        });
        match objects::render(
            name,
            ns,
            &compiled.table,
            &compiled.credentials,
            &compiled.clients,
        ) {
            Ok(rendered) => {
                // compare what is there, not only the hash: a Secret deleted
                // or edited by hand is put back
                let in_place = configmap_now.is_some_and(|c| {
                    c.annotations().get(HASH_ANNOTATION) == Some(&rendered.hash)
                        && c.data == rendered.configmap.data
                }) && secret_now.is_some_and(|s| {
                    s.annotations().get(HASH_ANNOTATION) == Some(&rendered.hash)
                        && s.data == rendered.secret.data
                });
                if !in_place {
                    let apply = PatchParams::apply(FIELD_MANAGER).force();
                    secret_api
                        .patch(
                            &objects::credentials_name(name),
                            &apply,
                            &Patch::Apply(&rendered.secret),
                        )
                        .await?;
                    configmap_api
                        .patch(
                            &objects::routes_name(name),
                            &apply,
                            &Patch::Apply(&rendered.configmap),
                        )
                        .await?;
                    summary.objects_written = true;
                }
            }
            // the proxies keep the last objects that fit; every resource says why
            Err(e @ objects::RenderError::TooLarge { .. }) => {
                summary.too_large = Some(e.to_string())
            }
            Err(e) => return Err(e.into()),
        }

        let blocked = summary.too_large.as_deref();
        for account in &accounts {
            let account_name = account.name_any();
            let oauth = round.status.get(&account_name);
            let wanted = status::account_conditions(&compiled, &account_name, oauth, blocked);
            let shown = account.status.clone().unwrap_or_default();
            let generation = account.metadata.generation;
            let merged = status::merge(&shown.conditions, &wanted, generation, now.clone());
            if merged != shown.conditions
                || shown.observed_generation != generation
                || shown.oauth.as_ref() != oauth
            {
                let patch = json!({"status": {"conditions": merged, "observedGeneration": generation, "oauth": oauth}});
                account_api
                    .patch_status(
                        &account_name,
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
                summary.statuses_patched += 1;
                summary.transitions.extend(transitions(
                    &account.object_ref(&()),
                    &shown.conditions,
                    &merged,
                ));
            }
        }
        for route in &routes {
            let (wanted, tiers) = status::route_conditions(&compiled, &route.name_any(), blocked);
            let shown = route.status.clone().unwrap_or_default();
            let generation = route.metadata.generation;
            let merged = status::merge(&shown.conditions, &wanted, generation, now.clone());
            if merged != shown.conditions
                || shown.observed_generation != generation
                || shown.tier_accounts != tiers
            {
                let targets = tiers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                let patch = json!({"status": {
                    "conditions": merged, "observedGeneration": generation, "tierAccounts": tiers, "targets": targets
                }});
                route_api
                    .patch_status(
                        &route.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
                summary.statuses_patched += 1;
                summary.transitions.extend(transitions(
                    &route.object_ref(&()),
                    &shown.conditions,
                    &merged,
                ));
            }
        }
        for llmc in &clients {
            let wanted = status::client_conditions(&compiled, &llmc.name_any(), blocked);
            let shown = llmc.status.clone().unwrap_or_default();
            let generation = llmc.metadata.generation;
            let merged = status::merge(&shown.conditions, &wanted, generation, now.clone());
            if merged != shown.conditions || shown.observed_generation != generation {
                let patch =
                    json!({"status": {"conditions": merged, "observedGeneration": generation}});
                client_api
                    .patch_status(
                        &llmc.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
                summary.statuses_patched += 1;
                summary.transitions.extend(transitions(
                    &llmc.object_ref(&()),
                    &shown.conditions,
                    &merged,
                ));
            }
        }
        Ok(summary)
    }
}

#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod tests;
