//! Pooled HTTP clients, one per (account, egress proxy, connect timeout),
//! kept across snapshot swaps so keep-alive connections survive reloads.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Identifies a client: two snapshots asking for the same key share it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// Account name (each account has its own connection pool).
    pub account: String,
    /// Egress proxy, if any.
    pub egress_proxy: Option<String>,
    /// Connect time limit.
    pub connect_timeout_ms: u64,
}

/// A client, or why the account cannot be called (an unusable egress proxy
/// fails requests: there is never a silent direct connection).
pub type ClientResult = Result<reqwest::Client, String>;

/// The long-lived set of clients.
#[derive(Default)]
pub struct ClientPool {
    clients: Mutex<HashMap<ClientKey, ClientResult>>,
}

impl ClientPool {
    /// Returns the client for `key`, building it on first use.
    pub fn get(&self, key: &ClientKey) -> ClientResult {
        let mut map = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(key.clone()).or_insert_with(|| build(key)).clone()
    }

    /// Drops clients no longer referenced by the current configuration.
    pub fn retain(&self, keep: &[ClientKey]) {
        let mut map = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|k, _| keep.contains(k));
    }
}

fn build(key: &ClientKey) -> ClientResult {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(key.connect_timeout_ms))
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .tcp_keepalive(Duration::from_secs(30))
        // a redirect could take the request and its key to another host
        .redirect(reqwest::redirect::Policy::none())
        // never pick up HTTP_PROXY and friends from the environment: the
        // account's egressProxy is the only proxy, by design
        .no_proxy();
    if let Some(proxy) = &key.egress_proxy {
        let proxy =
            reqwest::Proxy::all(proxy).map_err(|e| format!("egress proxy is unusable: {e}"))?;
        builder = builder.proxy(proxy);
    }
    builder
        .build()
        .map_err(|e| format!("HTTP client could not be built: {e}"))
}
