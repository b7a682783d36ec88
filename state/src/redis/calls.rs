//! The script calls: each request to the store becomes one script
//! invocation with every key it touches in KEYS (from [`Keys`]) and its
//! values as one JSON argument with named fields, so a script and its
//! caller can only disagree by name, never by position.

use redis::{Script, ScriptInvocation};
use serde_json::{Value, json};

use super::keys::Keys;
use crate::clock::DAY_MS;
use crate::{
    AdmitRequest, BREAKER_FAILURES, BREAKER_OPEN_MS, BUSY_RETRY_MS, Candidate, Completion, Outcome,
    WINDOW_MS, client_tokens, ms,
};
use llmpool_crds::table::CompiledLimits;

/// Numbers reach Lua as doubles: token counts are kept where they stay exact.
const LUA_EXACT: u64 = 1 << 53;

fn exact(v: u64) -> u64 {
    v.min(LUA_EXACT)
}

/// A limit as scripts take it (0: none).
fn limits(l: &CompiledLimits) -> Value {
    json!({
        "rpm": l.requests_per_minute.unwrap_or(0),
        "tpm": exact(l.tokens_per_minute.unwrap_or(0)),
        "maxc": l.max_concurrency.unwrap_or(0),
        "daily": exact(l.daily_tokens.unwrap_or(0)),
    })
}

fn merge(mut base: Value, more: Value) -> Value {
    if let (Some(b), Value::Object(m)) = (base.as_object_mut(), more) {
        b.extend(m);
    }
    base
}

/// admit.lua for the candidates at `sent` (indexes into the request's).
pub(super) fn admit<'a>(
    script: &'a Script,
    keys: &Keys,
    req: &AdmitRequest<'_>,
    sent: &[usize],
    now: u64,
) -> ScriptInvocation<'a> {
    let mut inv = script.key(keys.seq());
    inv.key(match req.session {
        Some(s) => keys.session(&s.key),
        None => keys.none(),
    });
    match req.client {
        Some(c) => inv.key(&keys.client(&c.name).windows(now)),
        None => inv.key(&[keys.none(), keys.none(), keys.none(), keys.none()]),
    };
    let mut cands = Vec::with_capacity(sent.len());
    for &i in sent {
        let c = &req.candidates[i];
        let account = keys.account(&c.account);
        inv.key(&keys.cooldowns(c))
            .key(&account.windows(now))
            .key(account.cooldown_index());
        cands.push(merge(
            json!({
                "account": &*c.account,
                "tier": c.tier,
                "project": c.project.is_some(),
                "fp": &*c.fingerprint,
                "excluded": req.excluded.contains(&i),
            }),
            limits(&c.limits),
        ));
    }
    let mut args = json!({
        "now": now,
        "estimate": exact(req.estimated_tokens),
        "lease_ttl": ms(req.lease_ttl),
        "least_busy": req.least_busy,
        "session_ttl": req.session.map_or(0, |s| ms(s.ttl)),
        "window": WINDOW_MS,
        "busy": BUSY_RETRY_MS,
        "day": DAY_MS,
        "cands": cands,
    });
    if let Some(c) = req.client {
        args["client"] = merge(json!({"first": c.first_attempt}), limits(&c.limits));
    }
    inv.arg(args.to_string());
    inv
}

/// complete.lua.
pub(super) fn complete<'a>(
    script: &'a Script,
    keys: &Keys,
    done: &Completion<'_>,
    now: u64,
) -> ScriptInvocation<'a> {
    let (outcome, duration) = match &done.outcome {
        Outcome::Success { exhausted_for } => ("ok", exhausted_for.map_or(0, ms)),
        Outcome::RateLimited { cooldown } => ("rl", ms(*cooldown)),
        Outcome::AccountBlocked { recheck } => ("blk", ms(*recheck)),
        Outcome::Failed => ("fail", 0),
        Outcome::Cancelled => ("cancel", 0),
    };
    let c: &Candidate = done.candidate;
    let account = keys.account(&c.account);
    let mut inv = script.key(keys.seq());
    inv.key(match done.session {
        Some(s) => keys.session(&s.key),
        None => keys.none(),
    })
    .key(account.leases())
    .key(account.tokens())
    .key(account.day(now))
    .key(account.cooldown_index())
    .key(account.fails())
    .key(account.last())
    .key(&keys.cooldowns(c));
    match done.client {
        Some(client) => {
            let k = keys.client(&client.name);
            inv.key(k.leases()).key(k.tokens()).key(k.day(now))
        }
        None => inv.key(&[keys.none(), keys.none(), keys.none()]),
    };
    let tokens = done
        .tokens_used
        .map_or(-1, |t| i64::try_from(exact(t)).unwrap_or(i64::MAX));
    let args = json!({
        "now": now,
        "lease": done.lease.id,
        "account": &*c.account,
        "fp": &*c.fingerprint,
        "outcome": outcome,
        "dur": duration,
        "tokens": tokens,
        "reserved": exact(done.lease.reserved_tokens),
        "has_tpm": c.limits.tokens_per_minute.is_some(),
        "has_daily": c.limits.daily_tokens.is_some(),
        "session_ttl": done.session.map_or(0, |s| ms(s.ttl)),
        "project": c.project.is_some(),
        "client": done.client.is_some(),
        "client_used": exact(client_tokens(done)),
        "breaker_failures": BREAKER_FAILURES,
        "breaker_open": BREAKER_OPEN_MS,
        "window": WINDOW_MS,
        "day": DAY_MS,
        "events": keys.events(),
    });
    inv.arg(args.to_string());
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
