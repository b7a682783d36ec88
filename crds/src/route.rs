//! `ModelRoute`: which model names clients may ask for, and which accounts serve them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Regex every duration field must match: one or more `<number><unit>` with
/// unit ms, s, m or h (`500ms`, `30s`, `1m30s`, `1h`).
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

/// Model names clients may ask for, and the tiers of accounts that serve them.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "llmpool.dev",
    version = "v1alpha1",
    kind = "ModelRoute",
    plural = "modelroutes",
    shortname = "mroute",
    namespaced,
    status = "ModelRouteStatus",
    printcolumn = r#"{"name":"Models","type":"string","jsonPath":".spec.models"}"#,
    printcolumn = r#"{"name":"Targets","type":"string","jsonPath":".status.targets"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ModelRouteSpec {
    /// Model names clients ask for: exact names and globs with any number of
    /// `*` (`claude-*`, `a*b*c`). An exact name beats any glob; among globs
    /// the one with more literal characters wins, then the one with fewer
    /// `*`, then the route whose name sorts first.
    #[schemars(length(min = 1))]
    pub models: Vec<String>,
    /// Tiers of accounts in priority order. A later tier is a fallback, used
    /// only when no account of an earlier tier has capacity.
    #[schemars(length(min = 1, max = 16))]
    pub targets: Vec<TargetTier>,
    /// How a tier's accounts share the load.
    #[serde(default)]
    pub strategy: Strategy,
    /// Session affinity, used by the sticky strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionSpec>,
    /// Retry and timeout policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    /// Cooldown policy after rate limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<CooldownSpec>,
}

/// One tier of a route: the accounts it may use and the upstream model name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetTier {
    /// The accounts of this tier, by name and/or label selector.
    pub accounts: AccountSelector,
    /// Upstream model name sent to these accounts; default: the model the
    /// client asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// Accounts picked by name, by label selector, or both (the union).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(has(self.names) && size(self.names) > 0) || has(self.selector)",
     "message": "name accounts or give a label selector"}
]))]
pub struct AccountSelector {
    /// LlmAccount names in the route's namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Label selector over LlmAccounts in the route's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// How requests are spread over the accounts of a tier.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Rotate through accounts in proportion to their weight.
    #[default]
    RoundRobin,
    /// The account with the fewest requests in flight.
    LeastBusy,
    /// The lowest priority number with capacity, until it runs out.
    FillFirst,
    /// Keep a session on one account while it has capacity, so the
    /// provider's prompt cache stays warm; new sessions go round-robin.
    Sticky,
}

impl Strategy {
    /// The name used in YAML, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round-robin",
            Strategy::LeastBusy => "least-busy",
            Strategy::FillFirst => "fill-first",
            Strategy::Sticky => "sticky",
        }
    }
}

/// Session affinity settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionSpec {
    /// Request header carrying the session key (default x-session-id). When
    /// absent the key is OpenAI prompt_cache_key or user, Anthropic
    /// metadata.user_id, else a hash of the system prompt and first user turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// How long an idle session stays bound (sliding; default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub ttl: Option<String>,
}

/// Retry and timeout policy for one request.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetrySpec {
    /// Upstream attempts per request, the first included (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 20))]
    pub max_attempts: Option<i64>,
    /// Time limit for one whole attempt, streaming included (default 10m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub per_try_timeout: Option<String>,
    /// Time limit until the upstream's first content arrives (default 60s);
    /// up to then a failed attempt moves to another account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub first_byte_timeout: Option<String>,
    /// Time limit from a request's arrival to its first content, all
    /// attempts together (default 2m): no attempt starts or waits past it,
    /// and the client gets a 504 once it is spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub request_timeout: Option<String>,
    /// Longest silence between two events of a stream once its content has
    /// started (default 60s); past it the stream ends with the protocol's
    /// error event instead of waiting out the per-try limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub stream_idle_timeout: Option<String>,
    /// TCP/TLS connect time limit (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub connect_timeout: Option<String>,
    /// Failure classes that move a request to another account (default: all
    /// of them). An unlisted class is returned to the client as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_on: Option<Vec<FailureClass>>,
}

/// Classes of upstream failure.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FailureClass {
    /// HTTP 429.
    RateLimited,
    /// HTTP 5xx other than 529.
    ServerError,
    /// HTTP 529 and other "service overloaded" answers.
    Overloaded,
    /// The connection could not be made or was reset.
    Connect,
    /// A connect, first-byte or per-try time limit passed.
    Timeout,
    /// HTTP 401/403 or an exhausted quota: the account is marked bad.
    Auth,
}

/// Cooldown policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.default) || !has(self.max) || duration(self.default) <= duration(self.max)",
     "message": "cooldown.default must not be longer than cooldown.max"}
]))]
pub struct CooldownSpec {
    /// Cooldown after a 429 that carries no retry hint (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub default: Option<String>,
    /// Longest cooldown any hint can cause (default 1h), so a bogus reset
    /// time cannot lock an account out for days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub max: Option<String>,
}

/// Observed state of a ModelRoute, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelRouteStatus {
    /// Ready condition with the reason a route cannot serve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Usable accounts per tier, in tier order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tier_accounts: Vec<i32>,
    /// Usable accounts per tier for kubectl, comma separated ("2,1").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<String>,
}
