//! The Redis store: shared state for many replicas. Each trait call is at
//! most one Lua script (one round trip), loaded once and called by SHA
//! (redis-rs reloads it on NOSCRIPT); completions wait in [`outbox`] and
//! mostly ride along with the next admission, so a request costs about
//! one. Every key of a namespace carries the `{ns}` hash tag, so the
//! scripts run on Redis Cluster too.
//!
//! Every key is named in [`keys`] and every script call built in [`calls`].
//!
//! When Redis is down or slower than the per-call limit, the replica serves
//! on a local view (the in-memory store, each account's limits divided by
//! the number of live replicas), says so in /readyz and metrics, logs once
//! per change, and retries Redis at most once a second until it is back.

mod admin;
mod calls;
mod cold;
mod conn;
mod keys;
mod outbox;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use llmpool_crds::table::CompiledLimits;
use redis::Script;
use tokio::sync::OnceCell;

use super::clock::Clock;
use super::{
    AccountView, Admission, AdmitRequest, Candidate, ClientCharge, ClientUsage, Completion, Lease,
    MemoryStore, Outcome, StateError, StateStore, Unavailability,
};
pub use admin::{AccountHealth, AdminError, RedisAdmin};
use conn::Conn;
pub use conn::RedisConfig;
use keys::Keys;

/// How often a degraded replica lets a request try Redis again.
const RETRY_MS: u64 = 1_000;
/// How often a degraded replica's heartbeat probes Redis: it is what brings
/// the replica back, so requests need not wait on a dead Redis to find out.
const PROBE_MS: u64 = 200;
/// Heartbeat period, and how long a silent replica still counts.
const HEARTBEAT: Duration = Duration::from_secs(5);
const REPLICA_TTL_MS: u64 = 15_000;

/// Shared state in Redis, with a local fallback view.
pub struct RedisStore {
    conn: Arc<OnceCell<Conn>>,
    admit: Script,
    complete: Script,
    view: Script,
    usage: Script,
    clock: Clock,
    call_timeout: Duration,
    local: MemoryStore,
    replicas: Arc<AtomicU64>,
    fixed_replicas: Option<u64>,
    health: Arc<Health>,
    cold: Arc<cold::ColdCache>,
    outbox: outbox::Outbox,
}

/// Whether Redis answers, as seen by calls and by the heartbeat.
pub(super) struct Health {
    degraded: AtomicBool,
    retry_at: AtomicU64,
    clock: Clock,
}

impl Health {
    /// Records the result of a call; logs once per change of state.
    pub(super) fn mark(&self, result: Result<(), String>) {
        match result {
            Ok(()) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("shared state reachable again; back on Redis");
                }
            }
            Err(why) => {
                self.retry_at
                    .store(self.clock.now_ms() + RETRY_MS, Ordering::Relaxed);
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %why, "shared state unreachable; serving on this replica's local view");
                }
            }
        }
    }

    pub(super) fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// False while Redis is known down and not yet due for another try.
    fn worth_trying(&self) -> bool {
        !self.is_degraded() || self.clock.now_ms() >= self.retry_at.load(Ordering::Relaxed)
    }
}

impl RedisStore {
    /// Starts connecting in the background and returns at once: a replica
    /// whose Redis is down at start serves on its local view until it is up.
    pub fn start(config: RedisConfig, clock: Clock, max_sessions: usize) -> Arc<Self> {
        let store = Arc::new(Self {
            conn: Arc::new(OnceCell::new()),
            admit: Script::new(concat!(
                include_str!("complete_one.lua"),
                include_str!("admit.lua")
            )),
            complete: Script::new(concat!(
                include_str!("complete_one.lua"),
                include_str!("complete.lua")
            )),
            view: Script::new(include_str!("view.lua")),
            usage: Script::new(include_str!("usage.lua")),
            local: MemoryStore::new(max_sessions, clock.clone()),
            clock: clock.clone(),
            call_timeout: config.call_timeout,
            replicas: Arc::new(AtomicU64::new(1)),
            fixed_replicas: config.fallback_replicas,
            cold: Arc::new(cold::ColdCache::default()),
            outbox: outbox::Outbox::new(),
            health: Arc::new(Health {
                degraded: AtomicBool::new(false),
                retry_at: AtomicU64::new(0),
                clock: clock.clone(),
            }),
        });
        tokio::spawn(conn::follow_cooldowns(
            config.clone(),
            store.cold.clone(),
            store.clock.clone(),
        ));
        tokio::spawn(conn::connect_and_heartbeat(
            config,
            store.conn.clone(),
            store.replicas.clone(),
            store.health.clone(),
            store.clock.clone(),
        ));
        tokio::spawn(send_waiting_completions(Arc::downgrade(&store)));
        store
    }

    /// How long an outcome waits for an admission to carry it before it is
    /// sent in a call of its own (default 10 ms).
    /// Longer: fewer calls at a low rate; other replicas see releases later.
    pub fn set_outcome_linger(&self, linger: Duration) {
        self.outbox.set_linger(linger);
    }

    /// Sends what waits in `namespace` (up to one call's worth); what gets
    /// no answer waits again. True when a call delivered.
    async fn send_waiting(&self, namespace: &str) -> bool {
        let groups = self
            .outbox
            .take(&Keys::new(namespace), namespace, outbox::PER_CALL);
        if groups.is_empty() {
            return false;
        }
        let inv = calls::complete(&self.complete, &groups);
        match self.call::<i64>(inv).await {
            Some(_) => {
                self.outbox.delivered();
                true
            }
            None => {
                self.outbox.give_back(namespace, groups);
                false
            }
        }
    }

    /// Waits until the first connection is made (tests and startup checks).
    pub async fn connected(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, async {
            while self.conn.get().is_none() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .is_ok()
    }

    /// The connection, unless Redis is known down and not due for a retry.
    fn usable(&self) -> Option<Conn> {
        self.reachable().then(|| self.conn.get().cloned()).flatten()
    }

    /// Whether a call would be tried now.
    fn reachable(&self) -> bool {
        self.conn.get().is_some() && self.health.worth_trying()
    }

    /// Runs one script call under the per-call limit.
    async fn call<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Option<T> {
        let mut conn = self.usable()?;
        self.guarded(async move { conn.invoke::<T>(&invocation).await })
            .await
    }

    /// Runs one plain command under the per-call limit.
    async fn command<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Option<T> {
        let mut conn = self.usable()?;
        self.guarded(async move { conn.command::<T>(&cmd).await })
            .await
    }

    /// Waits for one Redis answer under the per-call limit and records
    /// whether Redis answered.
    async fn guarded<T>(
        &self,
        answer: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        let result = match tokio::time::timeout(self.call_timeout, answer).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "no answer within {} ms",
                self.call_timeout.as_millis()
            )),
        };
        match result {
            Ok(v) => {
                self.health.mark(Ok(()));
                Some(v)
            }
            Err(why) => {
                self.health.mark(Err(why));
                None
            }
        }
    }

    /// How many replicas share the limits while Redis is away.
    fn sharers(&self) -> u64 {
        self.fixed_replicas
            .unwrap_or_else(|| self.replicas.load(Ordering::Relaxed))
            .max(1)
    }

    /// Candidates with each limit shared out over the live replicas.
    fn local_share(&self, candidates: &[Candidate]) -> Vec<Candidate> {
        let n = self.sharers();
        candidates
            .iter()
            .map(|c| Candidate {
                limits: share(&c.limits, n),
                ..c.clone()
            })
            .collect()
    }
}

/// Sends completions no admission carried within the linger, and
/// resends what got no answer, until the store is dropped.
async fn send_waiting_completions(store: Weak<RedisStore>) {
    loop {
        let Some(s) = store.upgrade() else { return };
        let (due, any) = s.outbox.due();
        if !any {
            // nothing waits: sleep until something is queued (or now and
            // then, to notice the store is gone)
            let _ = tokio::time::timeout(Duration::from_secs(1), s.outbox.queued()).await;
            continue;
        }
        for namespace in due {
            s.send_waiting(&namespace).await;
        }
        let linger = s.outbox.linger();
        drop(s);
        tokio::time::sleep(linger).await;
    }
}

/// A success or a cancel waits for an admission to carry it; what other
/// replicas must learn at once (a cooldown, a failure) is sent at once.
fn routine(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Success {
            exhausted_for: None
        } | Outcome::Cancelled
    )
}

/// One replica's share of `limits` among `n`.
fn share(limits: &CompiledLimits, n: u64) -> CompiledLimits {
    let share32 =
        |v: Option<u32>| v.map(|x| u32::try_from(u64::from(x).div_ceil(n)).unwrap_or(x).max(1));
    let share64 = |v: Option<u64>| v.map(|x| x.div_ceil(n).max(1));
    CompiledLimits {
        requests_per_minute: share32(limits.requests_per_minute),
        max_concurrency: share32(limits.max_concurrency),
        tokens_per_minute: share64(limits.tokens_per_minute),
        daily_tokens: share64(limits.daily_tokens),
    }
}

#[async_trait]
impl StateStore for RedisStore {
    async fn admit(&self, req: &AdmitRequest<'_>) -> Result<Admission, StateError> {
        let keys = Keys::new(req.namespace);
        let now = self.clock.now_ms();
        // candidates known cold from pub/sub are not sent to Redis at all
        let mut sent = Vec::with_capacity(req.candidates.len());
        let mut cold_wait: Option<u64> = None;
        let mut why = Unavailability::default();
        for (i, c) in req.candidates.iter().enumerate() {
            match self.cold.wait(&keys, c, now) {
                Some((w, cause)) => {
                    cold_wait = Some(cold_wait.map_or(w, |x| x.min(w)));
                    why.count(cause);
                }
                None => sent.push(i),
            }
        }
        if sent.is_empty() {
            return Ok(Admission::Unavailable {
                retry_after: Duration::from_millis(cold_wait.unwrap_or(1).max(1)),
                why,
            });
        }
        let carried = if self.reachable() {
            self.outbox.take(&keys, req.namespace, outbox::CARRY)
        } else {
            Vec::new()
        };
        let inv = calls::admit(&self.admit, &keys, req, &sent, now, &carried);
        let reply = self.call::<Vec<i64>>(inv).await;
        if reply.is_none() {
            self.outbox.give_back(req.namespace, carried);
        } else if !carried.is_empty() {
            self.outbox.delivered();
        }
        if let Some(reply) = reply {
            return Ok(match reply.as_slice() {
                [1, index, id, probe, hit] => Admission::Admitted(Lease {
                    id: id.unsigned_abs(),
                    index: sent[usize::try_from(*index).unwrap_or(0).min(sent.len() - 1)],
                    probe: *probe == 1,
                    reserved_tokens: req.estimated_tokens,
                    fallback: false,
                    session_hit: *hit == 1,
                }),
                [2, retry_ms, ..] => Admission::ClientLimited {
                    retry_after: Duration::from_millis(retry_ms.unsigned_abs().max(1)),
                },
                [0, retry_ms, counts @ ..] => {
                    let wait = cold_wait
                        .map_or(retry_ms.unsigned_abs(), |w| w.min(retry_ms.unsigned_abs()));
                    let n = |i: usize| counts.get(i).map_or(0, |v| u32::try_from(*v).unwrap_or(0));
                    why.rate_limited += n(0);
                    why.failing += n(1);
                    why.blocked += n(2);
                    why.at_limit += n(3);
                    why.tried += n(4);
                    Admission::Unavailable {
                        retry_after: Duration::from_millis(wait.max(1)),
                        why,
                    }
                }
                _ => {
                    return Err(StateError::Unavailable(
                        "unexpected admission reply".to_owned(),
                    ));
                }
            });
        }
        let shared = self.local_share(req.candidates);
        let client = req.client.map(|c| ClientCharge {
            limits: share(&c.limits, self.sharers()),
            ..c.clone()
        });
        let local = AdmitRequest {
            candidates: &shared,
            client: client.as_ref(),
            ..req.clone()
        };
        let mut admission = self.local.admit(&local).await?;
        if let Admission::Admitted(lease) = &mut admission {
            lease.fallback = true;
        }
        Ok(admission)
    }

    async fn complete(&self, done: &Completion<'_>) -> Result<(), StateError> {
        // the local view learns every cooldown, so a replica that loses Redis
        // still knows which accounts are cold
        let remember = matches!(
            done.outcome,
            Outcome::RateLimited { .. } | Outcome::AccountBlocked { .. }
        );
        if done.lease.fallback || remember {
            self.local.complete(done).await?;
        }
        if done.lease.fallback {
            return Ok(());
        }
        let keys = Keys::new(done.namespace);
        let item = calls::completion(&keys, done, self.clock.now_ms());
        self.outbox.push(done.namespace, item);
        if !routine(&done.outcome) {
            self.send_waiting(done.namespace).await;
        }
        Ok(())
    }

    fn completes_instantly(&self, outcome: &Outcome) -> bool {
        routine(outcome)
    }

    async fn view(
        &self,
        namespace: &str,
        accounts: &[Arc<str>],
    ) -> Result<Vec<AccountView>, StateError> {
        // what this replica finished is part of what it shows
        self.send_waiting(namespace).await;
        let now = self.clock.now_ms();
        let names = accounts.iter().map(|a| &**a);
        let inv = calls::view(&self.view, &Keys::new(namespace), names, now);
        let flat = self.call::<Vec<redis::Value>>(inv).await;
        match flat.and_then(|f| admin::rows(&f, accounts.len())) {
            Some(rows) => Ok(rows
                .into_iter()
                .map(|(in_flight, health)| AccountView {
                    in_flight,
                    cooling_for: health
                        .cooling_until_ms
                        .map(|until| Duration::from_millis(until.saturating_sub(now))),
                    blocked: health.blocked,
                })
                .collect()),
            None => self.local.view(namespace, accounts).await,
        }
    }

    async fn bind_response(
        &self,
        namespace: &str,
        response_id: &str,
        account: &str,
        ttl: Duration,
    ) -> Result<(), StateError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(Keys::new(namespace).response(response_id))
            .arg(account)
            .arg("PX")
            .arg(super::ms(ttl).max(1));
        if self.command::<()>(cmd).await.is_none() {
            // Redis is away: keep it locally so this replica still knows
            return self
                .local
                .bind_response(namespace, response_id, account, ttl)
                .await;
        }
        Ok(())
    }

    async fn response_account(
        &self,
        namespace: &str,
        response_id: &str,
    ) -> Result<Option<String>, StateError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(Keys::new(namespace).response(response_id));
        match self.command::<Option<String>>(cmd).await {
            Some(Some(account)) => Ok(Some(account)),
            _ => self.local.response_account(namespace, response_id).await,
        }
    }

    async fn client_usage(
        &self,
        namespace: &str,
        clients: &[Arc<str>],
    ) -> Result<Vec<ClientUsage>, StateError> {
        self.send_waiting(namespace).await;
        let now = self.clock.now_ms();
        let names = clients.iter().map(|c| &**c);
        let inv = calls::usage(&self.usage, &Keys::new(namespace), names, now);
        match self
            .call::<Vec<u64>>(inv)
            .await
            .and_then(|flat| admin::usage_rows(&flat, clients.len()))
        {
            Some(rows) => Ok(rows),
            _ => self.local.client_usage(namespace, clients).await,
        }
    }

    async fn send_all(&self) {
        for namespace in self.outbox.namespaces() {
            // call after call until nothing waits or Redis does not answer
            while self.send_waiting(&namespace).await {}
        }
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn degraded(&self) -> bool {
        self.health.is_degraded() || self.conn.get().is_none()
    }
}
