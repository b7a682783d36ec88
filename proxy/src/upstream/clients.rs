//! Pooled HTTP clients, one per (account, egress proxy, connect timeout),
//! kept across snapshot swaps so keep-alive connections survive reloads.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::client::Client;

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
pub type ClientResult = Result<Client, String>;

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
    Client::new(
        Duration::from_millis(key.connect_timeout_ms),
        key.egress_proxy.as_deref(),
    )
}
