//! The compiled form the proxy consumes: the operator writes it into the
//! `<name>-routes` ConfigMap (no secrets) and local mode builds it from files.
//! Every default is resolved here so the proxy never re-derives policy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::account::Provider;
use crate::route::{FailureClass, Strategy};

/// Everything the data plane needs except the credentials themselves.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteTable {
    /// Usable accounts by name.
    pub accounts: BTreeMap<String, CompiledAccount>,
    /// Routes sorted by name, including those that cannot serve (ready=false).
    pub routes: Vec<CompiledRoute>,
}

/// One usable account.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CompiledAccount {
    /// LlmAccount name.
    pub name: String,
    /// Upstream API.
    pub provider: Provider,
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// Extra headers for every upstream request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Upstream model globs this account serves; empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Cooldown-sharing group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// Limits; absent = unlimited.
    #[serde(default)]
    pub limits: CompiledLimits,
    /// fill-first order.
    pub priority: i32,
    /// round-robin share.
    pub weight: u32,
    /// Takes no new requests.
    pub disabled: bool,
    /// Outbound proxy URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_proxy: Option<String>,
    /// Whether the credentials Secret holds a key for this account (under the
    /// account's name). False only for keyless openai-compatible servers.
    pub has_credential: bool,
    /// Fingerprint of the credential (a truncated SHA-256, never the secret):
    /// an account-wide block (401/403) lasts until this changes.
    pub credential_fingerprint: String,
}

/// Limits with absent meaning unlimited.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CompiledLimits {
    /// Sliding 60 s window of admitted requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// Sliding 60 s window of tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    /// In-flight requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Tokens per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_tokens: Option<u64>,
}

/// The client keys the proxies accept. It travels in the credentials
/// Secret (never the ConfigMap), and holds only digests of the keys.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClientTable {
    /// True as soon as one LlmClient exists, even one that cannot be used:
    /// then every request must carry a known key.
    pub enforced: bool,
    /// Usable clients, sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<CompiledClient>,
}

/// One client key with its rules.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CompiledClient {
    /// LlmClient name (metrics and status use it; requests never choose it).
    pub name: String,
    /// Lower-case hex SHA-256 of the key.
    pub key_sha256: String,
    /// Allowed model names or globs; empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Limits; absent = unlimited.
    #[serde(default)]
    pub limits: CompiledLimits,
    /// Refused from this time (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    /// Refused.
    #[serde(default)]
    pub disabled: bool,
}

/// One route with every default filled in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CompiledRoute {
    /// ModelRoute name.
    pub name: String,
    /// Valid patterns (invalid and duplicate ones are dropped and reported).
    pub models: Vec<String>,
    /// Load-spreading strategy.
    pub strategy: Strategy,
    /// Tiers in priority order, each listing usable accounts sorted by name.
    pub tiers: Vec<CompiledTier>,
    /// Session affinity.
    pub session: SessionPolicy,
    /// Retries and time limits.
    pub retry: RetryPolicy,
    /// Cooldowns.
    pub cooldown: CooldownPolicy,
    /// False when no tier has a usable account; the reason is in `problems`.
    pub ready: bool,
    /// Human-readable reasons the route is degraded or not ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// A tier: usable accounts and the upstream model override.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CompiledTier {
    /// Account names, sorted.
    pub accounts: Vec<String>,
    /// Upstream model name; absent = the requested one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// Session affinity.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SessionPolicy {
    /// Lower-case header name carrying the session key.
    pub header: String,
    /// Sliding binding lifetime in milliseconds.
    pub ttl_ms: u64,
}

/// Retries and time limits.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Upstream attempts per request, the first included.
    pub max_attempts: u32,
    /// One whole attempt, streaming included.
    pub per_try_timeout_ms: u64,
    /// Until the first content arrives.
    pub first_byte_timeout_ms: u64,
    /// From a request's arrival to its first content, all attempts together.
    #[serde(default = "defaults::request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Silence between two stream events once content has started.
    #[serde(default = "defaults::stream_idle_timeout_ms")]
    pub stream_idle_timeout_ms: u64,
    /// TCP/TLS connect.
    pub connect_timeout_ms: u64,
    /// Failure classes that move to another account.
    pub rotate_on: Vec<FailureClass>,
}

/// Cooldowns.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CooldownPolicy {
    /// After a 429 without a retry hint.
    pub default_ms: u64,
    /// Cap on any hint.
    pub max_ms: u64,
}

/// Defaults applied by compile().
pub mod defaults {
    /// Session header.
    pub const SESSION_HEADER: &str = "x-session-id";
    /// Session TTL.
    pub const SESSION_TTL_MS: u64 = 3_600_000;
    /// Attempts per request.
    pub const MAX_ATTEMPTS: u32 = 3;
    /// Per-try time limit.
    pub const PER_TRY_TIMEOUT_MS: u64 = 600_000;
    /// First-byte time limit.
    pub const FIRST_BYTE_TIMEOUT_MS: u64 = 60_000;
    /// Request time limit (to the first content, all attempts).
    pub const REQUEST_TIMEOUT_MS: u64 = 120_000;
    /// The request limit of a table written before it existed.
    pub fn request_timeout_ms() -> u64 {
        REQUEST_TIMEOUT_MS
    }
    /// Stream idle time limit.
    pub const STREAM_IDLE_TIMEOUT_MS: u64 = 60_000;
    /// The stream idle limit of a table written before it existed.
    pub fn stream_idle_timeout_ms() -> u64 {
        STREAM_IDLE_TIMEOUT_MS
    }
    /// Connect time limit.
    pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
    /// Cooldown after a hint-less 429.
    pub const COOLDOWN_MS: u64 = 30_000;
    /// Cooldown cap.
    pub const COOLDOWN_MAX_MS: u64 = 3_600_000;
}
