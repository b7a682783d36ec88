//! Long-lived shared state: cooldowns, rate windows, in-flight leases and
//! session bindings. It lives outside the configuration snapshot, so a reload
//! never resets it.
//!
//! The trait is shaped for a shared store: a request costs one `admit` call
//! (check and take capacity atomically, read and refresh the session) and one
//! `complete` call (release, reconcile usage, record the outcome), which a
//! shared store may batch and send with a later admission.

mod by_name;
mod clock;
mod memory;
mod redis;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use llmpool_crds::table::CompiledLimits;

pub use clock::Clock;
pub use memory::MemoryStore;
pub use redis::{AccountHealth, AdminError, RedisAdmin, RedisConfig, RedisStore};

/// Rate windows are sliding 60-second windows.
pub(crate) const WINDOW_MS: u64 = 60_000;
/// Consecutive failed attempts (5xx, connect errors, timeouts, broken
/// streams) that open an account's circuit breaker.
pub const BREAKER_FAILURES: u32 = 5;
/// How long an open breaker keeps the account out before one probe.
pub const BREAKER_OPEN_MS: u64 = 30_000;
/// Retry hint when an account is full and no time can be named (concurrency).
pub(crate) const BUSY_RETRY_MS: u64 = 1_000;

/// A duration in whole milliseconds.
pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One account a request may go to, in strategy order.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Account name.
    pub account: Arc<str>,
    /// Tier index; lower tiers are tried first.
    pub tier: usize,
    /// Upstream model name: rate-limit cooldowns are per (account, model).
    pub model: Arc<str>,
    /// Accounts sharing a project share cooldowns.
    pub project: Option<Arc<str>>,
    /// Limits to enforce.
    pub limits: CompiledLimits,
    /// Fingerprint of the current credential.
    pub fingerprint: Arc<str>,
}

/// The client a request is charged to. Its limits are checked once per
/// request, on the first admission, in the same step as the account's; each
/// attempt then holds a client lease and a token reservation like an
/// account's, so in-flight and token counts stay exact across retries.
#[derive(Clone, Debug)]
pub struct ClientCharge {
    /// LlmClient name.
    pub name: Arc<str>,
    /// The client's limits.
    pub limits: CompiledLimits,
    /// The request's first admission: check the limits and count a request.
    pub first_attempt: bool,
}

/// What a client used, across replicas.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientUsage {
    /// Requests admitted in the last minute.
    pub requests_last_minute: u64,
    /// Tokens in the last minute (reservations until reconciled).
    pub tokens_last_minute: u64,
    /// Tokens this UTC day.
    pub tokens_today: u64,
    /// Requests in flight.
    pub in_flight: u64,
}

/// The tokens an attempt charges its client: the real use when known, the
/// reservation for an answer whose use was not reported, nothing for an
/// attempt that failed (the client is not billed for the gateway's retries).
pub(crate) fn client_tokens(done: &Completion<'_>) -> u64 {
    match (&done.outcome, done.tokens_used) {
        (_, Some(used)) => used,
        (Outcome::Success { .. }, None) => done.lease.reserved_tokens,
        _ => 0,
    }
}

/// A session key and its sliding lifetime.
#[derive(Clone, Debug)]
pub struct SessionRef {
    /// Opaque key.
    pub key: String,
    /// Sliding lifetime.
    pub ttl: Duration,
}

/// An admission request.
#[derive(Clone, Debug)]
pub struct AdmitRequest<'a> {
    /// Namespace, the key prefix of every record.
    pub namespace: &'a str,
    /// All candidates in strategy order.
    pub candidates: &'a [Candidate],
    /// Indexes into `candidates` already tried by this request.
    pub excluded: &'a [usize],
    /// Inside a tier, prefer the account with the fewest requests in flight.
    pub least_busy: bool,
    /// Keep the session on its bound account when that is possible.
    pub session: Option<&'a SessionRef>,
    /// Tokens to reserve against token windows.
    pub estimated_tokens: u64,
    /// A lease not completed within this time is released by itself.
    pub lease_ttl: Duration,
    /// The client charged, when the request carries a client key.
    pub client: Option<&'a ClientCharge>,
}

/// The answer to an admission request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Capacity was taken on `candidates[index]`.
    Admitted(Lease),
    /// Nothing is available; the earliest time something frees up, and
    /// why each candidate was out.
    Unavailable {
        /// How long until a candidate may be available again.
        retry_after: Duration,
        /// What kept the candidates out, counted per candidate.
        why: Unavailability,
    },
    /// The client is over one of its own limits; no account was touched.
    ClientLimited {
        /// How long until the client's windows admit the request.
        retry_after: Duration,
    },
}

/// What kept the candidates of a refused admission out, one cause per
/// candidate (the one that holds it out longest), so a client is told the
/// real reason: rate limits, failures or credentials.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unavailability {
    /// Cooling down after a 429 or an exhausted budget (per model or project).
    pub rate_limited: u32,
    /// Circuit open after repeated failures (errors, timeouts, broken streams).
    pub failing: u32,
    /// Blocked account-wide: credentials refused or quota exhausted.
    pub blocked: u32,
    /// At one of its limits (requests, tokens, concurrency) or waiting for
    /// a probe in flight.
    pub at_limit: u32,
    /// Already tried by this request.
    pub tried: u32,
}

/// One candidate's reason for being out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    RateLimited,
    Failing,
    Blocked,
    AtLimit,
    Tried,
}

impl Cause {
    /// The cause of a cooldown scope, by its index (account-wide, model,
    /// breaker, project).
    pub(crate) fn of_scope(index: usize) -> Self {
        match index {
            0 => Cause::Blocked,
            2 => Cause::Failing,
            _ => Cause::RateLimited,
        }
    }
}

impl Unavailability {
    pub(crate) fn count(&mut self, cause: Cause) {
        let slot = match cause {
            Cause::RateLimited => &mut self.rate_limited,
            Cause::Failing => &mut self.failing,
            Cause::Blocked => &mut self.blocked,
            Cause::AtLimit => &mut self.at_limit,
            Cause::Tried => &mut self.tried,
        };
        *slot += 1;
    }
}

/// Capacity taken on one account for one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Unique per store.
    pub id: u64,
    /// Index of the chosen candidate.
    pub index: usize,
    /// This attempt is the one probe after a cooldown.
    pub probe: bool,
    /// Tokens reserved.
    pub reserved_tokens: u64,
    /// Taken on a replica's local view while the shared store was down.
    pub fallback: bool,
    /// The request's session was already bound to this account (a sticky
    /// hit; false for new or moved sessions and requests without one).
    pub session_hit: bool,
}

/// How an attempt ended, as far as shared state cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Served. `exhausted_for` is set when the provider said the account's
    /// remaining budget is zero until the given reset.
    Success {
        /// Rest the (account, model) pair this long.
        exhausted_for: Option<Duration>,
    },
    /// HTTP 429: cool the (account, model) and (project, model) pairs.
    RateLimited {
        /// How long.
        cooldown: Duration,
    },
    /// 401/403/exhausted quota: block the whole account until its credential
    /// changes, re-probing after `recheck`.
    AccountBlocked {
        /// When to probe again with the same credential.
        recheck: Duration,
    },
    /// 5xx, connect errors, timeouts, broken streams.
    Failed,
    /// The client went away or the attempt was abandoned: release only.
    Cancelled,
}

/// The end of an attempt.
#[derive(Clone, Debug)]
pub struct Completion<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// The lease being returned.
    pub lease: &'a Lease,
    /// The candidate it was taken on.
    pub candidate: &'a Candidate,
    /// What happened.
    pub outcome: Outcome,
    /// Tokens really used, when known.
    pub tokens_used: Option<u64>,
    /// Bind this session to the account that served.
    pub session: Option<&'a SessionRef>,
    /// The client the attempt was charged to.
    pub client: Option<&'a ClientCharge>,
}

/// What metrics and status show about one account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountView {
    /// Requests in flight.
    pub in_flight: u64,
    /// Time left on the longest cooldown touching the account (any model).
    pub cooling_for: Option<Duration>,
    /// Blocked account-wide (bad credentials or quota).
    pub blocked: bool,
}

/// A failure of the store itself (never of an account).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The shared store did not answer in time or at all.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
}

/// The shared-state store.
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// Picks the first available candidate (in strategy order, tier by tier;
    /// the session's bound account first within its tier), takes capacity on
    /// it and binds the session to it, or says when something frees up.
    async fn admit(&self, req: &AdmitRequest<'_>) -> Result<Admission, StateError>;

    /// Releases a lease and records the outcome and usage.
    async fn complete(&self, done: &Completion<'_>) -> Result<(), StateError>;

    /// Current view of the named accounts, for metrics and status.
    async fn view(
        &self,
        namespace: &str,
        accounts: &[Arc<str>],
    ) -> Result<Vec<AccountView>, StateError>;

    /// Records that `account` created the stored response `response_id`
    /// (OpenAI Responses API), for `ttl`: later requests naming it as
    /// `previous_response_id` must go to that account.
    async fn bind_response(
        &self,
        namespace: &str,
        response_id: &str,
        account: &str,
        ttl: Duration,
    ) -> Result<(), StateError>;

    /// The account that created a stored response, if still known.
    async fn response_account(
        &self,
        namespace: &str,
        response_id: &str,
    ) -> Result<Option<String>, StateError>;

    /// What each named client used (requests, tokens, in flight).
    async fn client_usage(
        &self,
        namespace: &str,
        clients: &[Arc<str>],
    ) -> Result<Vec<ClientUsage>, StateError>;

    /// Sends whatever waits to be recorded (a shared store's batched
    /// completions), before the process exits.
    async fn send_all(&self) {}

    /// A short name for /readyz and logs ("memory", "redis").
    fn kind(&self) -> &'static str;

    /// Whether `complete` with this outcome returns without waiting on the
    /// network: then the pipeline records it before answering, so a
    /// client's next request always sees its previous one released.
    /// Otherwise the completion is sent after the answer, off the response
    /// path.
    fn completes_instantly(&self, _outcome: &Outcome) -> bool {
        false
    }

    /// True while a shared store is unreachable and the replica serves on
    /// its local view.
    fn degraded(&self) -> bool {
        false
    }
}
