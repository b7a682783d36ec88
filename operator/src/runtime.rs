//! What the proxies see at run time, brought to the resources: a periodic
//! health summary per account and usage summary per client read from the
//! shared Redis (written only when it changed, at most once per interval),
//! and the reset-cooldown annotation, acted on once per new value.

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Client, Resource, ResourceExt};
use llmpool_crds::account::AccountHealth;
use llmpool_crds::client::ClientUsage;
use llmpool_crds::{LlmAccount, LlmClient};
use llmpool_state::{AdminError, RedisAdmin};
use serde_json::json;

use crate::events::Events;

/// The annotation that asks for an account's cooldowns to be cleared.
pub const RESET_ANNOTATION: &str = "llmpool.dev/reset-cooldown";

/// Why a runtime step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Redis failed.
    #[error(transparent)]
    State(#[from] AdminError),
    /// Redis is configured but not reached yet.
    #[error("shared state: not connected yet")]
    NotConnected,
}

/// The operator's access to the shared state.
#[derive(Clone, Default)]
pub enum Shared {
    /// No --redis: health is not summarised and resets cannot be done.
    #[default]
    Off,
    /// Connecting in the background (Redis may be down at start).
    Connecting(std::sync::Arc<tokio::sync::OnceCell<RedisAdmin>>),
}

impl Shared {
    /// Connects in the background, retrying every few seconds, so an
    /// operator whose Redis is down still reconciles.
    pub fn connect(config: llmpool_state::RedisConfig) -> Self {
        let cell = std::sync::Arc::new(tokio::sync::OnceCell::new());
        let slot = cell.clone();
        tokio::spawn(async move {
            let mut logged = false;
            loop {
                match RedisAdmin::connect(&config).await {
                    Ok(admin) => {
                        tracing::info!("connected to the shared Redis");
                        let _ = slot.set(admin);
                        return;
                    }
                    Err(e) if !logged => {
                        tracing::warn!(error = %e, "cannot reach the shared Redis yet; retrying");
                        logged = true;
                    }
                    Err(_) => {}
                }
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            }
        });
        Shared::Connecting(cell)
    }

    /// The connection, once made.
    pub fn get(&self) -> Option<&RedisAdmin> {
        match self {
            Shared::Off => None,
            Shared::Connecting(cell) => cell.get(),
        }
    }

    /// Whether --redis was given.
    pub fn configured(&self) -> bool {
        matches!(self, Shared::Connecting(_))
    }
}

fn rfc3339(ms: u64) -> Option<String> {
    let ms = i64::try_from(ms).ok()?;
    Timestamp::from_millisecond(ms).ok().map(|t| t.to_string())
}

/// An account's health as its status shows it.
pub fn summary(
    account: &LlmAccount,
    seen: &llmpool_state::AccountHealth,
    now_ms: u64,
) -> AccountHealth {
    let cooling = seen.cooling_until_ms.filter(|&t| t > now_ms);
    let state = if account.spec.disabled {
        "Disabled"
    } else if seen.blocked {
        "Unauthorized"
    } else if cooling.is_some() {
        "CoolingDown"
    } else {
        "Available"
    };
    AccountHealth {
        state: Some(state.to_owned()),
        cooling_down_until: cooling.and_then(rfc3339),
        last_error_class: seen.last_error.as_ref().map(|(class, _)| class.clone()),
        requests_last_minute: Some(i64::try_from(seen.requests_last_minute).unwrap_or(i64::MAX)),
    }
}

/// Writes each account's health where it changed; returns the patches sent.
pub async fn health(
    client: &Client,
    admin: &RedisAdmin,
    ns: &str,
    accounts: &[LlmAccount],
    now_ms: u64,
) -> Result<usize, Error> {
    if accounts.is_empty() {
        return Ok(0);
    }
    let names: Vec<String> = accounts.iter().map(ResourceExt::name_any).collect();
    let seen = admin.health(ns, &names, now_ms).await?;
    let api = Api::<LlmAccount>::namespaced(client.clone(), ns);
    let mut patched = 0;
    for (account, seen) in accounts.iter().zip(&seen) {
        let wanted = summary(account, seen, now_ms);
        let shown = account.status.as_ref().and_then(|s| s.health.as_ref());
        if shown != Some(&wanted) {
            let patch = json!({"status": {"health": wanted}});
            api.patch_status(
                &account.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
            patched += 1;
        }
    }
    Ok(patched)
}

/// A client's usage as its status shows it.
pub fn usage(seen: &llmpool_state::ClientUsage) -> ClientUsage {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    ClientUsage {
        requests_last_minute: n(seen.requests_last_minute),
        tokens_last_minute: n(seen.tokens_last_minute),
        tokens_today: n(seen.tokens_today),
        in_flight: n(seen.in_flight),
    }
}

/// Writes each client's usage where it changed; returns the patches sent.
pub async fn client_usage(
    client: &Client,
    admin: &RedisAdmin,
    ns: &str,
    clients: &[LlmClient],
    now_ms: u64,
) -> Result<usize, Error> {
    if clients.is_empty() {
        return Ok(0);
    }
    let names: Vec<String> = clients.iter().map(ResourceExt::name_any).collect();
    let seen = admin.client_usage(ns, &names, now_ms).await?;
    let api = Api::<LlmClient>::namespaced(client.clone(), ns);
    let mut patched = 0;
    for (llmc, seen) in clients.iter().zip(&seen) {
        let wanted = usage(seen);
        if llmc.status.as_ref().and_then(|s| s.usage.as_ref()) != Some(&wanted) {
            let patch = json!({"status": {"usage": wanted}});
            api.patch_status(
                &llmc.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
            patched += 1;
        }
    }
    Ok(patched)
}

/// Acts on new reset-cooldown annotation values; returns the resets done.
pub async fn resets(
    client: &Client,
    shared: &Shared,
    events: &Events,
    ns: &str,
    accounts: &[LlmAccount],
) -> Result<usize, Error> {
    let api = Api::<LlmAccount>::namespaced(client.clone(), ns);
    let mut done = 0;
    for account in accounts {
        let Some(asked) = account.annotations().get(RESET_ANNOTATION) else {
            continue;
        };
        let handled = account
            .status
            .as_ref()
            .and_then(|s| s.cooldown_reset.as_ref());
        if handled == Some(asked) {
            continue;
        }
        let name = account.name_any();
        if shared.configured() && shared.get().is_none() {
            return Err(Error::NotConnected);
        }
        let event = match shared.get() {
            Some(admin) => {
                let cleared = admin.reset(ns, &name).await?;
                tracing::info!(namespace = ns, account = %name, cleared, "cooldowns reset on request");
                done += 1;
                Event {
                    type_: EventType::Normal,
                    reason: "CooldownReset".to_owned(),
                    note: Some(format!("cleared {cleared} cooldown(s) and the circuit breaker; every proxy replica admits the account again")),
                    action: "ResetCooldown".to_owned(),
                    secondary: None,
                }
            }
            None => Event {
                type_: EventType::Warning,
                reason: "CooldownResetUnavailable".to_owned(),
                note: Some("the operator runs without --redis, so it cannot reach the shared state: restart the proxies or wait for the cooldown".to_owned()),
                action: "ResetCooldown".to_owned(),
                secondary: None,
            },
        };
        let patch = json!({"status": {"cooldownReset": asked}});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        events.note(&account.object_ref(&()), event).await;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn account(disabled: bool) -> LlmAccount {
        serde_json::from_value(json!({
            "apiVersion": "llmpool.dev/v1alpha1", "kind": "LlmAccount",
            "metadata": {"name": "a", "namespace": "ns"},
            "spec": {"provider": "openai", "disabled": disabled}
        }))
        .unwrap()
    }

    fn annotated(value: &str, handled: Option<&str>) -> LlmAccount {
        let mut a = account(false);
        a.metadata.annotations = Some([(RESET_ANNOTATION.to_owned(), value.to_owned())].into());
        if let Some(h) = handled {
            a.status = Some(llmpool_crds::account::LlmAccountStatus {
                cooldown_reset: Some(h.to_owned()),
                ..Default::default()
            });
        }
        a
    }

    #[tokio::test]
    async fn without_redis_a_reset_is_answered_with_a_warning_once_per_value() {
        use crate::testing::{call, serve};
        let (service, handle) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        let client = Client::new(service, "ns");
        let calls = vec![
            call(
                "PATCH",
                "/apis/llmpool.dev/v1alpha1/namespaces/ns/llmaccounts/a/status",
                200,
                serde_json::to_value(account(false)).unwrap(),
            ),
            call(
                "POST",
                "/apis/events.k8s.io/v1/namespaces/ns/events",
                201,
                json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "eventTime": "2026-01-01T00:00:00.000000Z"}),
            ),
        ];
        let server = tokio::spawn(serve(handle, calls));
        let events = Events::new(client.clone(), "op");
        let accounts = [annotated("1", None), annotated("0", Some("0"))];
        let done = resets(&client, &Shared::Off, &events, "ns", &accounts)
            .await
            .unwrap();
        assert_eq!(done, 0, "nothing could be reset");
        let seen = server.await.unwrap();
        assert_eq!(seen[0].1["status"]["cooldownReset"], "1");
        assert_eq!(seen[1].1["type"], "Warning");
        assert_eq!(seen[1].1["reason"], "CooldownResetUnavailable");
    }

    #[test]
    fn the_summary_names_the_state_a_user_should_see() {
        let cooling = llmpool_state::AccountHealth {
            cooling_until_ms: Some(NOW + 90_000),
            last_error: Some(("RateLimited".to_owned(), NOW - 1000)),
            requests_last_minute: 42,
            ..Default::default()
        };
        let s = summary(&account(false), &cooling, NOW);
        assert_eq!(s.state.as_deref(), Some("CoolingDown"));
        assert_eq!(
            s.cooling_down_until.as_deref(),
            Some("2023-11-14T22:14:50Z")
        );
        assert_eq!(s.last_error_class.as_deref(), Some("RateLimited"));
        assert_eq!(s.requests_last_minute, Some(42));
        // a cooldown already over is not shown
        let s = summary(&account(false), &cooling, NOW + 90_000);
        assert_eq!(
            (s.state.as_deref(), s.cooling_down_until),
            (Some("Available"), None)
        );
        let blocked = llmpool_state::AccountHealth {
            blocked: true,
            ..Default::default()
        };
        assert_eq!(
            summary(&account(false), &blocked, NOW).state.as_deref(),
            Some("Unauthorized")
        );
        assert_eq!(
            summary(&account(true), &blocked, NOW).state.as_deref(),
            Some("Disabled")
        );
    }
}
