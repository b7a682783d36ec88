//! The operator's side of the shared state: read each account's runtime
//! health and each client's usage for their status summaries, and clear an account's cooldowns when a
//! user asks for it. It connects like a proxy replica but writes no
//! heartbeat, so it never counts as a replica sharing the limits.

use std::time::Duration;

use redis::Script;

use super::calls;
use super::conn::{Conn, RedisConfig, connect};
use super::keys::Keys;
use crate::ClientUsage;

/// Runtime health of one account across all replicas.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountHealth {
    /// End of the longest cooldown on the account (any model), epoch ms.
    pub cooling_until_ms: Option<u64>,
    /// Blocked account-wide (bad credential or exhausted quota).
    pub blocked: bool,
    /// Class of the last failure (RateLimited, Unauthorized, UpstreamFailure)
    /// and when it happened, epoch ms; kept for a day.
    pub last_error: Option<(String, u64)>,
    /// Requests admitted in the last 60 s.
    pub requests_last_minute: u64,
}

/// Parses view.lua's reply for `n` accounts: in-flight count and health.
pub(super) fn rows(flat: &[redis::Value], n: usize) -> Option<Vec<(u64, AccountHealth)>> {
    const FIELDS: usize = 6;
    if flat.len() != n * FIELDS {
        return None;
    }
    let number = |v: &redis::Value| redis::from_redis_value::<u64>(v).unwrap_or(0);
    Some(
        flat.chunks(FIELDS)
            .map(|v| {
                let class = redis::from_redis_value::<String>(&v[3]).unwrap_or_default();
                let health = AccountHealth {
                    cooling_until_ms: Some(number(&v[1])).filter(|&t| t > 0),
                    blocked: number(&v[2]) == 1,
                    last_error: (!class.is_empty()).then(|| (class, number(&v[4]))),
                    requests_last_minute: number(&v[5]),
                };
                (number(&v[0]), health)
            })
            .collect(),
    )
}

/// Parses usage.lua's reply for `n` clients.
pub(super) fn usage_rows(flat: &[u64], n: usize) -> Option<Vec<ClientUsage>> {
    if flat.len() != n * 4 {
        return None;
    }
    Some(
        flat.chunks(4)
            .map(|c| ClientUsage {
                requests_last_minute: c[0],
                tokens_last_minute: c[1],
                tokens_today: c[2],
                in_flight: c[3],
            })
            .collect(),
    )
}

/// A connection for reading health and resetting accounts.
#[derive(Clone)]
pub struct RedisAdmin {
    conn: Conn,
    view: Script,
    reset: Script,
    usage: Script,
    call_timeout: Duration,
}

/// Redis did not answer (in time).
#[derive(Debug, thiserror::Error)]
#[error("shared state: {0}")]
pub struct AdminError(String);

impl RedisAdmin {
    /// Connects once; the connection reconnects by itself afterwards.
    pub async fn connect(config: &RedisConfig) -> Result<Self, AdminError> {
        let conn = connect(config)
            .await
            .map_err(|e| AdminError(e.to_string()))?;
        Ok(Self {
            conn,
            view: Script::new(include_str!("view.lua")),
            reset: Script::new(include_str!("reset.lua")),
            usage: Script::new(include_str!("usage.lua")),
            call_timeout: config.call_timeout.max(Duration::from_secs(1)),
        })
    }

    async fn call<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, AdminError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.call_timeout, conn.invoke(&invocation)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(AdminError(e.to_string())),
            Err(_) => Err(AdminError("timed out".to_owned())),
        }
    }

    /// Health of `accounts` in `namespace` at `now_ms`, in the same order.
    pub async fn health(
        &self,
        namespace: &str,
        accounts: &[String],
        now_ms: u64,
    ) -> Result<Vec<AccountHealth>, AdminError> {
        let names = accounts.iter().map(String::as_str);
        let inv = calls::view(&self.view, &Keys::new(namespace), names, now_ms);
        let flat: Vec<redis::Value> = self.call(inv).await?;
        let rows = rows(&flat, accounts.len())
            .ok_or_else(|| AdminError("unexpected health reply".to_owned()))?;
        Ok(rows.into_iter().map(|(_, health)| health).collect())
    }

    /// What `clients` of `namespace` used, in the same order.
    pub async fn client_usage(
        &self,
        namespace: &str,
        clients: &[String],
        now_ms: u64,
    ) -> Result<Vec<ClientUsage>, AdminError> {
        let names = clients.iter().map(String::as_str);
        let inv = calls::usage(&self.usage, &Keys::new(namespace), names, now_ms);
        let flat: Vec<u64> = self.call(inv).await?;
        usage_rows(&flat, clients.len())
            .ok_or_else(|| AdminError("unexpected usage reply".to_owned()))
    }

    /// Clears the cooldowns and circuit-breaker state of `account` and tells
    /// every replica; returns how many cooldowns were cleared. Cooldowns of
    /// the account's project are shared with other accounts and kept.
    pub async fn reset(&self, namespace: &str, account: &str) -> Result<u64, AdminError> {
        let keys = Keys::new(namespace);
        let index = keys.account(account).cooldown_index();
        let mut conn = self.conn.clone();
        let mut range = redis::cmd("ZRANGE");
        range.arg(&index).arg(0).arg(-1);
        let indexed: Vec<String> =
            match tokio::time::timeout(self.call_timeout, conn.command(&range)).await {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => return Err(AdminError(e.to_string())),
                Err(_) => return Err(AdminError("timed out".to_owned())),
            };
        self.call(calls::reset(&self.reset, &keys, account, indexed))
            .await
    }
}
