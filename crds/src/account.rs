//! `LlmAccount`: one upstream credential and the limits it must be held to.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One upstream provider account. The gateway spreads requests over accounts,
/// holds each to its limits, and rotates away from an account that is rate
/// limited, failing or out of quota.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "llmpool.dev",
    version = "v1alpha1",
    kind = "LlmAccount",
    plural = "llmaccounts",
    shortname = "llma",
    namespaced,
    status = "LlmAccountStatus",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.health.state"}"#,
    printcolumn = r#"{"name":"Cooling-Until","type":"string","priority":0,"jsonPath":".status.health.coolingDownUntil"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.provider != 'openai-compatible' || has(self.baseUrl)",
     "message": "openai-compatible accounts need a baseUrl"},
    {"rule": "self.provider == 'openai-compatible' || has(self.credentials)",
     "message": "openai, anthropic and gemini accounts need credentials"}
]))]
pub struct LlmAccountSpec {
    /// Which API the account speaks: openai, anthropic, gemini, or
    /// openai-compatible (any server that speaks the OpenAI API at baseUrl).
    pub provider: Provider,
    /// Root URL the provider's own SDK takes. Defaults per provider:
    /// https://api.openai.com/v1 (the gateway appends /chat/completions),
    /// https://api.anthropic.com (appends /v1/messages),
    /// https://generativelanguage.googleapis.com (appends /v1beta/models/...).
    /// Required for openai-compatible. Plain http is allowed (in-cluster model
    /// servers) but reported as a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Extra HTTP headers sent upstream with every request of this account
    /// (for example OpenAI-Organization). Not for secrets: use credentials.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Where the account's key comes from. Optional only for
    /// openai-compatible servers that need no key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
    /// Upstream model names or globs (`gpt-4o*`) this account serves. Empty
    /// means every model a route sends it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Accounts with the same projectId share cooldowns, because providers
    /// enforce quota per project or organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// Limits the gateway enforces for this account across all replicas.
    #[serde(default)]
    pub limits: Limits,
    /// Lower numbers are used first by the fill-first strategy.
    #[serde(default)]
    pub priority: i32,
    /// Share of traffic inside a tier for round-robin (default 1).
    #[serde(default = "default_weight")]
    #[schemars(range(min = 1, max = 1000))]
    pub weight: i64,
    /// A disabled account takes no new requests; requests in flight finish.
    #[serde(default)]
    pub disabled: bool,
    /// Outbound HTTP(S) proxy for this account's upstream calls
    /// (http://host:port). If it is unusable, requests fail: there is never a
    /// silent direct connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_proxy: Option<String>,
}

fn default_weight() -> i64 {
    1
}

/// The upstream API an account speaks.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// api.openai.com.
    Openai,
    /// api.anthropic.com (Messages API).
    Anthropic,
    /// Google's Generative Language API.
    Gemini,
    /// Any server speaking the OpenAI API (vLLM, Ollama, LiteLLM, Azure-style gateways).
    OpenaiCompatible,
}

impl Provider {
    /// The name used in YAML, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
            Provider::OpenaiCompatible => "openai-compatible",
        }
    }

    /// The base URL used when an account gives none.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Provider::Openai => Some("https://api.openai.com/v1"),
            Provider::Anthropic => Some("https://api.anthropic.com"),
            Provider::Gemini => Some("https://generativelanguage.googleapis.com"),
            Provider::OpenaiCompatible => None,
        }
    }
}

/// Where an account's credential comes from: exactly one of secretRef or oauth.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.secretRef) != has(self.oauth)", "message": "set exactly one of secretRef and oauth"}
]))]
pub struct Credentials {
    /// A key in a Secret of the account's namespace holding the API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// An OAuth client whose access token the operator refreshes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthCredentials>,
}

/// A key inside a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// OAuth refresh-token credentials; the operator exchanges the refresh token
/// for access tokens before they expire.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuthCredentials {
    /// Token endpoint (https) that accepts grant_type=refresh_token.
    pub token_url: String,
    /// OAuth client id.
    pub client_id: String,
    /// Secret key holding the client secret, for confidential clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<SecretKeyRef>,
    /// Secret key holding the refresh token.
    pub refresh_token_ref: SecretKeyRef,
    /// Scopes to request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// Per-account limits, enforced by the gateway before the provider has to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Requests admitted in any sliding 60-second window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub requests_per_minute: Option<i64>,
    /// Tokens (prompt estimate plus max output, reconciled with real usage)
    /// in any sliding 60-second window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tokens_per_minute: Option<i64>,
    /// Requests in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_concurrency: Option<i64>,
    /// Tokens per UTC day; the account rests once it is used up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub daily_tokens: Option<i64>,
}

/// Observed state of an LlmAccount, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LlmAccountStatus {
    /// Ready, CredentialsResolved and Refreshing conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Periodic summary of runtime health from the shared state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<AccountHealth>,
    /// Access-token refresh state of an OAuth account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthStatus>,
    /// The last `llmpool.dev/reset-cooldown` annotation value acted on; a
    /// new value clears the account's cooldowns once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_reset: Option<String>,
}

/// Where an OAuth account's access token stands. Never holds a token.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuthStatus {
    /// RFC 3339 time the current access token expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// RFC 3339 time of the last successful refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh: Option<String>,
    /// Refresh failures since the last success.
    #[serde(default)]
    pub failures: i32,
    /// RFC 3339 time of the next refresh attempt after a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<String>,
    /// Why the last refresh failed (HTTP status and the endpoint's error code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Runtime health of an account as the proxies see it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountHealth {
    /// Available, CoolingDown, Unauthorized or Disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// RFC 3339 time the current cooldown ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooling_down_until: Option<String>,
    /// Class of the last upstream failure (RateLimited, ServerError, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_class: Option<String>,
    /// Requests admitted in the last minute across all replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_last_minute: Option<i64>,
}
