//! `LlmClient`: one team's key to the gateway, what it may call and how much.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::account::{Limits, SecretKeyRef};

/// A client key of the gateway. Once one LlmClient exists in a namespace,
/// every request to that namespace's gateway must carry a known key; each
/// key is held to its own model list and limits across all replicas.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "llmpool.dev",
    version = "v1alpha1",
    kind = "LlmClient",
    plural = "llmclients",
    shortname = "llmc",
    namespaced,
    status = "LlmClientStatus",
    printcolumn = r#"{"name":"Models","type":"string","jsonPath":".spec.models"}"#,
    printcolumn = r#"{"name":"RPM","type":"integer","jsonPath":".spec.limits.requestsPerMinute"}"#,
    printcolumn = r#"{"name":"TPM","type":"integer","jsonPath":".spec.limits.tokensPerMinute"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","jsonPath":".spec.expiresAt"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Req-1m","type":"integer","jsonPath":".status.usage.requestsLastMinute"}"#,
    printcolumn = r#"{"name":"Tokens-Today","type":"integer","jsonPath":".status.usage.tokensToday"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LlmClientSpec {
    /// The key in a Secret of this namespace that clients send (as a Bearer
    /// token, x-api-key, x-goog-api-key or ?key=). The gateway keeps only
    /// its SHA-256 digest.
    pub key_secret_ref: SecretKeyRef,
    /// Model names or globs (`gpt-4o*`) this key may ask for. Empty means
    /// every route of the namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Limits on this key across all replicas: requests and tokens per
    /// sliding minute, tokens per UTC day, requests in flight.
    #[serde(default)]
    pub limits: Limits,
    /// RFC 3339 time after which the key is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub expires_at: Option<String>,
    /// A disabled key is refused; requests in flight finish.
    #[serde(default)]
    pub disabled: bool,
}

/// Observed state of an LlmClient, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LlmClientStatus {
    /// Ready condition: the key is resolved and accepted by the proxies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Periodic summary of use from the shared state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ClientUsage>,
}

/// What a client used, across all replicas.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientUsage {
    /// Requests admitted in the last minute.
    #[serde(default)]
    pub requests_last_minute: i64,
    /// Tokens in the last minute.
    #[serde(default)]
    pub tokens_last_minute: i64,
    /// Tokens this UTC day.
    #[serde(default)]
    pub tokens_today: i64,
    /// Requests in flight.
    #[serde(default)]
    pub in_flight: i64,
}
