//! The in-memory store: one process's view, used in local mode and as the
//! reference behaviour for the shared store. One mutex, never held across an
//! `.await`; every operation is a short, bounded critical section.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use super::by_name::ByName;
use super::clock::{Clock, DAY_MS};
use super::{
    AccountView, Admission, AdmitRequest, BREAKER_FAILURES, BREAKER_OPEN_MS, BUSY_RETRY_MS,
    Candidate, Cause, ClientUsage, Completion, Lease, Outcome, StateError, StateStore,
    Unavailability, WINDOW_MS, client_tokens, ms,
};
use llmpool_crds::table::CompiledLimits;

/// A client's windows keep every token record.
const CLIENT_TRACK: Track = Track {
    tokens: true,
    daily: true,
};

/// In-process state store.
pub struct MemoryStore {
    inner: Mutex<Inner>,
    max_sessions: usize,
    clock: Clock,
}

#[derive(Default)]
struct Inner {
    next_lease: u64,
    accounts: ByName<AccountState>,
    /// Client windows, kept like an account's.
    clients: ByName<AccountState>,
    cooldowns: HashMap<String, Cooldown>,
    sessions: HashMap<String, Binding>,
}

#[derive(Default)]
struct AccountState {
    /// Lease id -> expiry.
    leases: HashMap<u64, u64>,
    requests: VecDeque<u64>,
    tokens: VecDeque<TokenEntry>,
    day: u64,
    day_tokens: u64,
    /// Consecutive failed attempts (reset by a success).
    failures: u32,
}

/// Which token records a window keeps: an account keeps those its limits
/// need, a client keeps all (its status shows them).
#[derive(Clone, Copy)]
struct Track {
    tokens: bool,
    daily: bool,
}

impl Track {
    /// What an account with `limits` keeps.
    fn of(limits: &CompiledLimits) -> Self {
        Self {
            tokens: limits.tokens_per_minute.is_some(),
            daily: limits.daily_tokens.is_some(),
        }
    }
}

impl AccountState {
    /// Drops what left the windows; returns how long until `limits` admit
    /// one more request of `estimate` tokens (None: now).
    fn wait(&mut self, limits: &CompiledLimits, estimate: u64, now: u64) -> Option<u64> {
        self.leases.retain(|_, expires| *expires > now);
        let horizon = now.checked_sub(WINDOW_MS);
        let expired = |at: u64| horizon.is_some_and(|h| at <= h);
        while self.requests.front().is_some_and(|&at| expired(at)) {
            self.requests.pop_front();
        }
        while self.tokens.front().is_some_and(|e| expired(e.at)) {
            self.tokens.pop_front();
        }
        self.roll_day(now);
        if let Some(max) = limits.max_concurrency
            && self.leases.len() >= max as usize
        {
            return Some(BUSY_RETRY_MS);
        }
        if let Some(rpm) = limits.requests_per_minute
            && self.requests.len() >= rpm as usize
        {
            let oldest = self.requests.front().copied().unwrap_or(now);
            return Some((oldest + WINDOW_MS).saturating_sub(now));
        }
        if let Some(tpm) = limits.tokens_per_minute {
            let used = self.window_tokens();
            if used > 0 && used.saturating_add(estimate) > tpm {
                let oldest = self.tokens.front().map(|e| e.at).unwrap_or(now);
                return Some((oldest + WINDOW_MS).saturating_sub(now));
            }
        }
        if let Some(daily) = limits.daily_tokens
            && self.day_tokens > 0
            && self.day_tokens.saturating_add(estimate) > daily
        {
            return Some(DAY_MS - now % DAY_MS);
        }
        None
    }

    fn roll_day(&mut self, now: u64) {
        let today = now / DAY_MS;
        if self.day != today {
            self.day = today;
            self.day_tokens = 0;
        }
    }

    fn window_tokens(&self) -> u64 {
        self.tokens
            .iter()
            .fold(0u64, |sum, e| sum.saturating_add(e.tokens))
    }

    /// Takes capacity for lease `id` (a request counted only when `count`).
    fn take(&mut self, id: u64, estimate: u64, expires: u64, now: u64, count: bool, track: Track) {
        self.leases.insert(id, expires);
        if count {
            self.requests.push_back(now);
        }
        if track.tokens {
            self.tokens.push_back(TokenEntry {
                at: now,
                tokens: estimate,
                lease: id,
            });
        }
        if track.daily {
            self.roll_day(now);
            self.day_tokens = self.day_tokens.saturating_add(estimate);
        }
    }

    /// Releases lease `id` and replaces its reservation with `used` tokens.
    fn settle(&mut self, id: u64, reserved: u64, used: Option<u64>, track: Track) {
        self.leases.remove(&id);
        let Some(used) = used else { return };
        if track.tokens
            && let Some(e) = self.tokens.iter_mut().find(|e| e.lease == id)
        {
            e.tokens = used;
        }
        if track.daily {
            self.day_tokens = self
                .day_tokens
                .saturating_sub(reserved)
                .saturating_add(used);
        }
    }
}

struct TokenEntry {
    at: u64,
    tokens: u64,
    lease: u64,
}

struct Cooldown {
    until: u64,
    /// After `until`, one probe must succeed before full traffic resumes.
    probe_after: bool,
    /// Account-wide blocks hold only while the credential is unchanged.
    fingerprint: Option<Arc<str>>,
    /// Probe lease id and its expiry.
    probe: Option<(u64, u64)>,
}

struct Binding {
    account: Arc<str>,
    expires: u64,
}

enum Check {
    Available {
        probe_scopes: Vec<String>,
    },
    /// Blocked for this many milliseconds, for this reason.
    Blocked(u64, Cause),
}

impl MemoryStore {
    /// A store that keeps at most `max_sessions` session bindings.
    pub fn new(max_sessions: usize, clock: Clock) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_sessions: max_sessions.max(1),
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The cooldown records that apply to a candidate: account-wide, (account,
/// model), and (project, model).
/// Indexes into `scopes()`.
const ACCOUNT: usize = 0;
const MODEL: usize = 1;
const BREAKER: usize = 2;
const PROJECT: usize = 3;

/// The cooldown records that apply to a candidate: account-wide, (account,
/// model), the account's circuit breaker, and (project, model).
fn scopes(ns: &str, c: &Candidate) -> Vec<String> {
    let mut v = vec![
        format!("a/{ns}/{}", c.account),
        format!("m/{ns}/{}/{}", c.account, c.model),
        format!("b/{ns}/{}", c.account),
    ];
    if let Some(p) = &c.project {
        v.push(format!("p/{ns}/{p}/{}", c.model));
    }
    v
}

impl Inner {
    fn check(&mut self, ns: &str, c: &Candidate, estimate: u64, now: u64) -> Check {
        let mut probe_scopes = Vec::new();
        let mut wait = 0;
        let mut cause = Cause::AtLimit;
        // nothing cooling anywhere (the usual case): no scope keys to build
        let scopes = if self.cooldowns.is_empty() {
            Vec::new()
        } else {
            scopes(ns, c)
        };
        for (i, scope) in scopes.into_iter().enumerate() {
            let Some(cd) = self.cooldowns.get_mut(&scope) else {
                continue;
            };
            if cd.fingerprint.as_ref().is_some_and(|f| *f != c.fingerprint) {
                // the credential changed: the block no longer applies
                self.cooldowns.remove(&scope);
                continue;
            }
            let left = if now < cd.until {
                cd.until - now
            } else if cd.probe_after {
                match cd.probe {
                    Some((_, expires)) if expires > now => BUSY_RETRY_MS,
                    _ => {
                        probe_scopes.push(scope);
                        0
                    }
                }
            } else {
                self.cooldowns.remove(&scope);
                0
            };
            if left > wait {
                wait = left;
                cause = Cause::of_scope(i);
            }
        }
        if wait > 0 {
            return Check::Blocked(wait, cause);
        }

        let acct = self.accounts.get_or_default(ns, &c.account);
        match acct.wait(&c.limits, estimate, now) {
            Some(wait) => Check::Blocked(wait, Cause::AtLimit),
            None => Check::Available { probe_scopes },
        }
    }

    fn take(&mut self, ns: &str, c: &Candidate, estimate: u64, lease_ttl: u64, now: u64) -> u64 {
        self.next_lease += 1;
        let id = self.next_lease;
        let acct = self.accounts.get_or_default(ns, &c.account);
        let track = Track::of(&c.limits);
        acct.take(id, estimate, now + lease_ttl, now, true, track);
        id
    }

    fn bound_account(&mut self, ns: &str, key: &str, now: u64) -> Option<Arc<str>> {
        let full = format!("{ns}/{key}");
        match self.sessions.get(&full) {
            Some(b) if b.expires > now => Some(b.account.clone()),
            Some(_) => {
                self.sessions.remove(&full);
                None
            }
            None => None,
        }
    }

    fn bind(&mut self, ns: &str, key: &str, account: Arc<str>, expires: u64, max: usize, now: u64) {
        let full = format!("{ns}/{key}");
        if !self.sessions.contains_key(&full) && self.sessions.len() >= max {
            self.sessions.retain(|_, b| b.expires > now);
            if self.sessions.len() >= max {
                // still full of live sessions: drop the oldest tenth
                let mut by_age: Vec<(u64, String)> = self
                    .sessions
                    .iter()
                    .map(|(k, b)| (b.expires, k.clone()))
                    .collect();
                by_age.sort();
                for (_, k) in by_age.into_iter().take(max / 10 + 1) {
                    self.sessions.remove(&k);
                }
            }
        }
        self.sessions.insert(full, Binding { account, expires });
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn admit(&self, req: &AdmitRequest<'_>) -> Result<Admission, StateError> {
        let now = self.clock.now_ms();
        let lease_ttl = ms(req.lease_ttl);
        let ns = req.namespace;
        let mut inner = self.lock();
        if let Some(client) = req.client.filter(|c| c.first_attempt) {
            let state = inner.clients.get_or_default(ns, &client.name);
            if let Some(wait) = state.wait(&client.limits, req.estimated_tokens, now) {
                return Ok(Admission::ClientLimited {
                    retry_after: Duration::from_millis(wait.max(1)),
                });
            }
        }
        let bound = match req.session {
            Some(s) => inner.bound_account(ns, &s.key, now),
            None => None,
        };
        let mut earliest: Option<u64> = None;
        let mut why = Unavailability::default();
        let mut start = 0;
        while start < req.candidates.len() {
            let tier = req.candidates[start].tier;
            let end = req.candidates[start..]
                .iter()
                .position(|c| c.tier != tier)
                .map_or(req.candidates.len(), |n| start + n);
            // in plan order, the first available candidate is the pick
            // unless a session or least-busy may prefer another: stop there
            let first_wins = !req.least_busy && bound.is_none();
            let mut available = Vec::new();
            for idx in start..end {
                let c = &req.candidates[idx];
                match inner.check(ns, c, req.estimated_tokens, now) {
                    Check::Available { .. } if req.excluded.contains(&idx) => {
                        earliest = Some(earliest.map_or(BUSY_RETRY_MS, |e| e.min(BUSY_RETRY_MS)));
                        why.count(Cause::Tried);
                    }
                    Check::Available { probe_scopes } => {
                        available.push((idx, probe_scopes));
                        if first_wins {
                            break;
                        }
                    }
                    Check::Blocked(wait, cause) => {
                        earliest = Some(earliest.map_or(wait, |e| e.min(wait)));
                        why.count(cause);
                    }
                }
            }
            if !available.is_empty() {
                if req.least_busy {
                    let busy = |idx: usize| {
                        let account = &req.candidates[idx].account;
                        inner
                            .accounts
                            .get(ns, account)
                            .map_or(0, |a| a.leases.len())
                    };
                    available.sort_by_key(|(idx, _)| busy(*idx));
                }
                let pick = bound
                    .as_ref()
                    .and_then(|b| {
                        available
                            .iter()
                            .position(|(idx, _)| req.candidates[*idx].account == *b)
                    })
                    .unwrap_or(0);
                let (index, probe_scopes) = available.swap_remove(pick);
                let c = &req.candidates[index];
                let session_hit = bound.as_ref().is_some_and(|b| *b == c.account);
                let id = inner.take(ns, c, req.estimated_tokens, lease_ttl, now);
                if let Some(client) = req.client {
                    let state = inner.clients.get_or_default(ns, &client.name);
                    let (estimate, expires) = (req.estimated_tokens, now + lease_ttl);
                    state.take(
                        id,
                        estimate,
                        expires,
                        now,
                        client.first_attempt,
                        CLIENT_TRACK,
                    );
                }
                for scope in &probe_scopes {
                    if let Some(cd) = inner.cooldowns.get_mut(scope) {
                        cd.probe = Some((id, now + lease_ttl));
                    }
                }
                // bind (or slide) the session to the account taking it now, in
                // the same step: the conversation's next turn cannot race a
                // later write, and a failover rebinds on the next attempt
                if let Some(s) = req.session {
                    let account = c.account.clone();
                    inner.bind(ns, &s.key, account, now + ms(s.ttl), self.max_sessions, now);
                }
                return Ok(Admission::Admitted(Lease {
                    id,
                    index,
                    probe: !probe_scopes.is_empty(),
                    reserved_tokens: req.estimated_tokens,
                    fallback: false,
                    session_hit,
                }));
            }
            start = end;
        }
        Ok(Admission::Unavailable {
            retry_after: Duration::from_millis(earliest.unwrap_or(BUSY_RETRY_MS).max(1)),
            why,
        })
    }

    async fn complete(&self, done: &Completion<'_>) -> Result<(), StateError> {
        let now = self.clock.now_ms();
        let ns = done.namespace;
        let c = done.candidate;
        let lease = done.lease;
        let mut inner = self.lock();
        let track = Track::of(&c.limits);
        if let Some(acct) = inner.accounts.get_mut(ns, &c.account) {
            acct.settle(lease.id, lease.reserved_tokens, done.tokens_used, track);
        }
        if let Some(client) = done.client
            && let Some(state) = inner.clients.get_mut(ns, &client.name)
        {
            let used = client_tokens(done);
            state.settle(lease.id, lease.reserved_tokens, Some(used), CLIENT_TRACK);
        }
        // a success with nothing cooling anywhere (the usual case) has no
        // cooldown to clear: no scope keys to build
        let quiet = inner.cooldowns.is_empty()
            && matches!(
                done.outcome,
                Outcome::Success {
                    exhausted_for: None
                }
            );
        let scopes = if quiet { Vec::new() } else { scopes(ns, c) };
        match &done.outcome {
            Outcome::Success { exhausted_for } => {
                if let Some(acct) = inner.accounts.get_mut(ns, &c.account) {
                    acct.failures = 0;
                }
                for scope in &scopes {
                    let passed = inner.cooldowns.get(scope).is_some_and(|cd| {
                        cd.until <= now
                            && cd
                                .probe
                                .is_none_or(|(id, exp)| id == lease.id || exp <= now)
                    });
                    if passed {
                        inner.cooldowns.remove(scope);
                    }
                }
                if let Some(rest) = exhausted_for {
                    set_cooldown(&mut inner, &scopes[MODEL], now + ms(*rest), false, None);
                }
                if let Some(s) = done.session {
                    inner.bind(
                        ns,
                        &s.key,
                        c.account.clone(),
                        now + ms(s.ttl),
                        self.max_sessions,
                        now,
                    );
                }
            }
            Outcome::RateLimited { cooldown } => {
                for scope in [Some(&scopes[MODEL]), scopes.get(PROJECT)]
                    .into_iter()
                    .flatten()
                {
                    set_cooldown(&mut inner, scope, now + ms(*cooldown), true, None);
                }
            }
            Outcome::AccountBlocked { recheck } => {
                let fp = Some(c.fingerprint.clone());
                set_cooldown(&mut inner, &scopes[ACCOUNT], now + ms(*recheck), true, fp);
            }
            Outcome::Failed | Outcome::Cancelled => {
                let breaker_probe = inner
                    .cooldowns
                    .get(&scopes[BREAKER])
                    .is_some_and(|cd| cd.probe.is_some_and(|(id, _)| id == lease.id));
                for scope in &scopes {
                    if let Some(cd) = inner.cooldowns.get_mut(scope)
                        && cd.probe.is_some_and(|(id, _)| id == lease.id)
                    {
                        cd.probe = None;
                    }
                }
                if done.outcome == Outcome::Failed {
                    let acct = inner.accounts.get_or_default(ns, &c.account);
                    acct.failures += 1;
                    if breaker_probe || acct.failures >= BREAKER_FAILURES {
                        acct.failures = 0;
                        set_cooldown(
                            &mut inner,
                            &scopes[BREAKER],
                            now + BREAKER_OPEN_MS,
                            true,
                            None,
                        );
                    }
                }
            }
        }
        Ok(())
    }

    async fn view(
        &self,
        namespace: &str,
        accounts: &[Arc<str>],
    ) -> Result<Vec<AccountView>, StateError> {
        let now = self.clock.now_ms();
        let inner = self.lock();
        Ok(accounts
            .iter()
            .map(|name| {
                let in_flight = inner.accounts.get(namespace, name).map_or(0, |a| {
                    a.leases.values().filter(|e| **e > now).count() as u64
                });
                let account_wide = format!("a/{namespace}/{name}");
                let breaker = format!("b/{namespace}/{name}");
                let per_model = format!("m/{namespace}/{name}/");
                let mut cooling: Option<u64> = None;
                let mut blocked = false;
                for (k, cd) in &inner.cooldowns {
                    if cd.until > now
                        && (*k == account_wide || *k == breaker || k.starts_with(&per_model))
                    {
                        let left = cd.until - now;
                        cooling = Some(cooling.map_or(left, |c| c.max(left)));
                        blocked |= *k == account_wide;
                    }
                }
                AccountView {
                    in_flight,
                    cooling_for: cooling.map(Duration::from_millis),
                    blocked,
                }
            })
            .collect())
    }

    async fn bind_response(
        &self,
        namespace: &str,
        response_id: &str,
        account: &str,
        ttl: Duration,
    ) -> Result<(), StateError> {
        let now = self.clock.now_ms();
        let key = format!("resp:{response_id}");
        let expires = now.saturating_add(ms(ttl));
        let max = self.max_sessions;
        self.lock()
            .bind(namespace, &key, Arc::from(account), expires, max, now);
        Ok(())
    }

    async fn response_account(
        &self,
        namespace: &str,
        response_id: &str,
    ) -> Result<Option<String>, StateError> {
        let now = self.clock.now_ms();
        let key = format!("resp:{response_id}");
        Ok(self
            .lock()
            .bound_account(namespace, &key, now)
            .map(|a| a.to_string()))
    }

    async fn client_usage(
        &self,
        namespace: &str,
        clients: &[Arc<str>],
    ) -> Result<Vec<ClientUsage>, StateError> {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        Ok(clients
            .iter()
            .map(|name| match inner.clients.get_mut(namespace, name) {
                Some(state) => {
                    state.wait(&CompiledLimits::default(), 0, now);
                    ClientUsage {
                        requests_last_minute: state.requests.len() as u64,
                        tokens_last_minute: state.window_tokens(),
                        tokens_today: state.day_tokens,
                        in_flight: state.leases.len() as u64,
                    }
                }
                None => ClientUsage::default(),
            })
            .collect())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn completes_instantly(&self, _outcome: &Outcome) -> bool {
        true
    }
}

/// Sets or extends a cooldown; a shorter new hint never shortens a longer one.
fn set_cooldown(
    inner: &mut Inner,
    scope: &str,
    until: u64,
    probe_after: bool,
    fingerprint: Option<Arc<str>>,
) {
    match inner.cooldowns.get_mut(scope) {
        Some(cd) if cd.until >= until && cd.fingerprint == fingerprint => {
            cd.probe = None;
            cd.probe_after |= probe_after;
        }
        _ => {
            inner.cooldowns.insert(
                scope.to_owned(),
                Cooldown {
                    until,
                    probe_after,
                    fingerprint,
                    probe: None,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SessionRef;

    #[tokio::test]
    async fn session_bindings_are_bounded() {
        let store = MemoryStore::new(10, Clock::manual(0));
        let candidate = Candidate {
            account: "a".into(),
            tier: 0,
            model: "m".into(),
            project: None,
            limits: llmpool_crds::table::CompiledLimits::default(),
            fingerprint: "f".into(),
        };
        for i in 0..50 {
            let session = SessionRef {
                key: format!("k{i}"),
                ttl: Duration::from_secs(60),
            };
            let lease = Lease {
                id: i,
                index: 0,
                probe: false,
                reserved_tokens: 0,
                fallback: false,
                session_hit: false,
            };
            let done = Completion {
                namespace: "ns",
                lease: &lease,
                candidate: &candidate,
                outcome: Outcome::Success {
                    exhausted_for: None,
                },
                tokens_used: None,
                session: Some(&session),
                client: None,
            };
            store.complete(&done).await.unwrap();
        }
        assert!(store.lock().sessions.len() <= 10);
    }
}
