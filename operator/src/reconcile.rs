//! One namespace's reconcile: read its accounts, routes and the Secrets they
//! reference, compile, write the proxies' two objects when their content
//! hash changed (server-side apply, one field manager), delete them when the
//! namespace has no accounts or routes left, and bring every resource's
//! status up to date, patching only what changed. Idempotent: a second run
//! on the same state makes no writes.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use llmpool_crds::objects::{self, HASH_ANNOTATION};
use llmpool_crds::{Inputs, LlmAccount, ModelRoute, compile};
use serde_json::json;

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
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// The two objects were (re)written.
    pub objects_written: bool,
    /// The two objects were deleted.
    pub objects_deleted: bool,
    /// Status patches sent.
    pub statuses_patched: usize,
}

/// Secrets the accounts reference, sorted.
fn referenced_secrets(accounts: &[LlmAccount]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for credentials in accounts.iter().filter_map(|a| a.spec.credentials.as_ref()) {
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

/// Reconciles namespace `ns` for the release `name`, with `now` as the
/// transition time of changed conditions.
pub async fn reconcile_namespace(
    client: &Client,
    name: &str,
    ns: &str,
    now: Time,
) -> Result<Summary, Error> {
    let account_api = Api::<LlmAccount>::namespaced(client.clone(), ns);
    let route_api = Api::<ModelRoute>::namespaced(client.clone(), ns);
    let secret_api = Api::<Secret>::namespaced(client.clone(), ns);
    let configmap_api = Api::<ConfigMap>::namespaced(client.clone(), ns);
    let accounts = account_api.list(&ListParams::default()).await?.items;
    let routes = route_api.list(&ListParams::default()).await?.items;
    let mut summary = Summary::default();

    if accounts.is_empty() && routes.is_empty() {
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
        return Ok(summary);
    }

    let mut secrets = Vec::new();
    for secret in referenced_secrets(&accounts) {
        if let Some(s) = secret_api.get_opt(&secret).await? {
            secrets.push(s);
        }
    }
    let tokens = BTreeMap::new();
    let compiled = compile(&Inputs {
        accounts: &accounts,
        routes: &routes,
        secrets: &secrets,
        oauth_tokens: &tokens,
    });
    let rendered = objects::render(name, ns, &compiled.table, &compiled.credentials)?;
    // compare what is there, not only the hash: a Secret deleted or edited
    // by hand is put back
    let configmap_now = configmap_api.get_opt(&objects::routes_name(name)).await?;
    let secret_now = secret_api.get_opt(&objects::credentials_name(name)).await?;
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

    for account in &accounts {
        let wanted = status::account_conditions(&compiled, &account.name_any());
        let existing = account
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let observed = account.status.as_ref().and_then(|s| s.observed_generation);
        let generation = account.metadata.generation;
        let merged = status::merge(&existing, &wanted, generation, now.clone());
        if merged != existing || observed != generation {
            let patch = json!({"status": {"conditions": merged, "observedGeneration": generation}});
            account_api
                .patch_status(
                    &account.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
            summary.statuses_patched += 1;
        }
    }
    for route in &routes {
        let (wanted, tiers) = status::route_conditions(&compiled, &route.name_any());
        let existing = route
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let observed = route.status.as_ref().and_then(|s| s.observed_generation);
        let shown_tiers = route
            .status
            .as_ref()
            .map(|s| s.tier_accounts.clone())
            .unwrap_or_default();
        let generation = route.metadata.generation;
        let merged = status::merge(&existing, &wanted, generation, now.clone());
        if merged != existing || observed != generation || shown_tiers != tiers {
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
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests;
