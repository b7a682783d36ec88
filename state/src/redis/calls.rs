//! The script calls: each call to the store becomes one script
//! invocation with every key it touches in KEYS (from [`Keys`]) and its
//! values as one JSON argument with named fields (typed structs here), so a script and its
//! caller can only disagree by name, never by position.

use redis::{Script, ScriptInvocation};
use serde::Serialize;

use super::keys::Keys;
use super::outbox::{Group, Item, groups_json};
use crate::clock::DAY_MS;
use crate::{
    AdmitRequest, BREAKER_FAILURES, BREAKER_OPEN_MS, BUSY_RETRY_MS, Candidate, Completion, Outcome,
    SessionRef, WINDOW_MS, client_tokens, ms,
};
use llmpool_crds::table::CompiledLimits;

/// Numbers reach Lua as doubles: token counts are kept where they stay exact.
const LUA_EXACT: u64 = 1 << 53;

fn exact(v: u64) -> u64 {
    v.min(LUA_EXACT)
}

/// Limits as scripts take them (0: none).
#[derive(Serialize)]
struct Limits {
    rpm: u32,
    tpm: u64,
    maxc: u32,
    daily: u64,
}

impl From<&CompiledLimits> for Limits {
    fn from(l: &CompiledLimits) -> Self {
        Self {
            rpm: l.requests_per_minute.unwrap_or(0),
            tpm: exact(l.tokens_per_minute.unwrap_or(0)),
            maxc: l.max_concurrency.unwrap_or(0),
            daily: exact(l.daily_tokens.unwrap_or(0)),
        }
    }
}

/// admit.lua's ARGV[1].
#[derive(Serialize)]
struct AdmitArgs<'a> {
    now: u64,
    estimate: u64,
    lease_ttl: u64,
    least_busy: bool,
    session_ttl: u64,
    window: u64,
    busy: u64,
    day: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<ClientArgs>,
    cands: Vec<CandidateArgs<'a>>,
}

#[derive(Serialize)]
struct ClientArgs {
    first: bool,
    #[serde(flatten)]
    limits: Limits,
}

#[derive(Serialize)]
struct CandidateArgs<'a> {
    account: &'a str,
    tier: usize,
    project: bool,
    fp: &'a str,
    excluded: bool,
    #[serde(flatten)]
    limits: Limits,
}

/// complete.lua's ARGV[1].
#[derive(Serialize)]
struct CompleteArgs<'a> {
    now: u64,
    lease: u64,
    account: &'a str,
    fp: &'a str,
    outcome: &'static str,
    dur: u64,
    tokens: i64,
    reserved: u64,
    has_tpm: bool,
    has_daily: bool,
    session_ttl: u64,
    project: bool,
    client: bool,
    client_used: u64,
    breaker_failures: u32,
    breaker_open: u64,
    window: u64,
    day: u64,
    events: String,
}

/// The session's binding, or the unused slot.
fn session_key(keys: &Keys, session: Option<&SessionRef>) -> String {
    session.map_or_else(|| keys.none(), |s| keys.session(&s.key))
}

fn json(args: &impl Serialize) -> Vec<u8> {
    // plain structs of numbers, booleans and strings always serialize
    serde_json::to_vec(args).unwrap_or_default()
}

/// admit.lua for the candidates at `sent` (indexes into the request's),
/// carrying the completions `carried` in front.
pub(super) fn admit<'a>(
    script: &'a Script,
    keys: &Keys,
    req: &AdmitRequest<'_>,
    sent: &[usize],
    now: u64,
    carried: &[Group],
) -> ScriptInvocation<'a> {
    let mut inv = script.key(keys.seq());
    inv.key(session_key(keys, req.session));
    match req.client {
        Some(c) => inv.key(&keys.client(&c.name).windows(now)),
        None => {
            let none = keys.none();
            inv.key(&[&none, &none, &none, &none])
        }
    };
    let mut cands = Vec::with_capacity(sent.len());
    for &i in sent {
        let c = &req.candidates[i];
        let account = keys.account(&c.account);
        inv.key(&keys.cooldowns(c))
            .key(&account.windows(now))
            .key(account.cooldown_index());
        cands.push(CandidateArgs {
            account: &c.account,
            tier: c.tier,
            project: c.project.is_some(),
            fp: &c.fingerprint,
            excluded: req.excluded.contains(&i),
            limits: Limits::from(&c.limits),
        });
    }
    inv.arg(json(&AdmitArgs {
        now,
        estimate: exact(req.estimated_tokens),
        lease_ttl: ms(req.lease_ttl),
        least_busy: req.least_busy,
        session_ttl: req.session.map_or(0, |s| ms(s.ttl)),
        window: WINDOW_MS,
        busy: BUSY_RETRY_MS,
        day: DAY_MS,
        client: req.client.map(|c| ClientArgs {
            first: c.first_attempt,
            limits: Limits::from(&c.limits),
        }),
        cands,
    }));
    carry(&mut inv, carried);
    inv.arg(groups_json(carried));
    inv
}

/// One completion as complete_one.lua takes it.
pub(super) fn completion(keys: &Keys, done: &Completion<'_>, now: u64) -> Item {
    let (outcome, duration) = match &done.outcome {
        Outcome::Success { exhausted_for } => ("ok", exhausted_for.map_or(0, ms)),
        Outcome::RateLimited { cooldown } => ("rl", ms(*cooldown)),
        Outcome::AccountBlocked { recheck } => ("blk", ms(*recheck)),
        Outcome::Failed => ("fail", 0),
        Outcome::Cancelled => ("cancel", 0),
    };
    let c: &Candidate = done.candidate;
    let account = keys.account(&c.account);
    let mut k = Vec::with_capacity(14);
    k.push(session_key(keys, done.session));
    k.extend([
        account.leases(),
        account.tokens(),
        account.day(now),
        account.cooldown_index(),
        account.fails(),
        account.last(),
    ]);
    k.extend(keys.cooldowns(c));
    match done.client {
        Some(client) => {
            let r = keys.client(&client.name);
            k.extend([r.leases(), r.tokens(), r.day(now)]);
        }
        None => k.extend(std::iter::repeat_n(keys.none(), 3)),
    }
    let args = json(&CompleteArgs {
        now,
        lease: done.lease.id,
        account: &c.account,
        fp: &c.fingerprint,
        outcome,
        dur: duration,
        tokens: done
            .tokens_used
            .map_or(-1, |t| i64::try_from(exact(t)).unwrap_or(i64::MAX)),
        reserved: exact(done.lease.reserved_tokens),
        has_tpm: c.limits.tokens_per_minute.is_some(),
        has_daily: c.limits.daily_tokens.is_some(),
        session_ttl: done.session.map_or(0, |s| ms(s.ttl)),
        project: c.project.is_some(),
        client: done.client.is_some(),
        client_used: exact(client_tokens(done)),
        breaker_failures: BREAKER_FAILURES,
        breaker_open: BREAKER_OPEN_MS,
        window: WINDOW_MS,
        day: DAY_MS,
        events: keys.events(),
    });
    Item {
        keys: k,
        // plain structs of numbers, booleans and strings are UTF-8 JSON
        args: String::from_utf8(args).unwrap_or_default(),
    }
}

/// Appends `groups` as KEYS (marker, then each completion's) to `inv`.
fn carry(inv: &mut ScriptInvocation<'_>, groups: &[Group]) {
    for g in groups {
        inv.key(&g.marker);
        for item in &g.items {
            inv.key(&item.keys);
        }
    }
}

/// complete.lua for `groups` (at least one).
pub(super) fn complete<'a>(script: &'a Script, groups: &[Group]) -> ScriptInvocation<'a> {
    let mut inv = script.prepare_invoke();
    carry(&mut inv, groups);
    inv.arg(groups_json(groups));
    inv
}

/// view.lua for `accounts`.
pub(super) fn view<'a>(
    script: &'a Script,
    keys: &Keys,
    accounts: impl IntoIterator<Item = &'a str>,
    now: u64,
) -> ScriptInvocation<'a> {
    let mut inv = script.key(keys.seq());
    for name in accounts {
        let a = keys.account(name);
        inv.key(a.leases())
            .key(a.cooldown_index())
            .key(keys.account_wide(name)[0].clone())
            .key(a.last())
            .key(a.requests());
    }
    inv.arg(now).arg(WINDOW_MS);
    inv
}

/// usage.lua for `clients`.
pub(super) fn usage<'a>(
    script: &'a Script,
    keys: &Keys,
    clients: impl IntoIterator<Item = &'a str>,
    now: u64,
) -> ScriptInvocation<'a> {
    let mut inv = script.key(keys.seq());
    for name in clients {
        inv.key(&keys.client(name).windows(now));
    }
    inv.arg(now).arg(WINDOW_MS);
    inv
}

/// reset.lua for `account`, whose cooldown index listed `indexed`.
pub(super) fn reset<'a>(
    script: &'a Script,
    keys: &Keys,
    account: &str,
    indexed: Vec<String>,
) -> ScriptInvocation<'a> {
    let a = keys.account(account);
    let wide = keys.account_wide(account);
    let mut inv = script.key(a.cooldown_index());
    inv.key(a.fails()).key(&wide);
    for key in indexed {
        if !wide.contains(&key) {
            inv.key(key);
        }
    }
    inv.arg(keys.events());
    inv
}

#[cfg(test)]
mod tests {
    /// Every key a script touches comes in KEYS: no script builds a name.
    #[test]
    fn scripts_name_no_keys_of_their_own() {
        for (name, source) in [
            ("admit", include_str!("admit.lua")),
            ("complete", include_str!("complete.lua")),
            ("complete_one", include_str!("complete_one.lua")),
            ("view", include_str!("view.lua")),
            ("usage", include_str!("usage.lua")),
            ("reset", include_str!("reset.lua")),
        ] {
            let code: String = source
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n");
            for built in ["prefix", "llmpool:", "'acct:", "'cd:", "'client:", "'ss:"] {
                assert!(
                    !code.contains(built),
                    "{name}.lua builds a key with {built}"
                );
            }
        }
    }
}
