//! The process-wide state every handler shares.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

use crate::metrics::Metrics;
use crate::snapshot::{Shared, SnapshotStore};
use crate::state::StateStore;

/// Request limits and client keys.
pub struct Settings {
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted.
    pub max_json_depth: usize,
    /// Largest non-streaming upstream response buffered.
    pub max_response_bytes: usize,
    /// Client keys; empty = no client authentication.
    pub client_keys: ClientKeys,
    /// How long the account of a stored response (Responses API) is kept.
    pub response_ttl: std::time::Duration,
}

/// Client API keys, kept only as SHA-256 digests.
#[derive(Default)]
pub struct ClientKeys(HashSet<[u8; 32]>);

impl ClientKeys {
    /// Builds the set from plain keys (blank entries ignored).
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        Self(
            keys.into_iter()
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| Sha256::digest(k.as_bytes()).into())
                .collect(),
        )
    }

    /// Whether client authentication is on.
    pub fn enabled(&self) -> bool {
        !self.0.is_empty()
    }

    /// Whether `key` is one of the configured keys.
    pub fn accepts(&self, key: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        self.0.contains(&digest)
    }
}

/// Everything shared by the handlers of one process.
pub struct App {
    /// The current configuration.
    pub snapshots: SnapshotStore,
    /// Long-lived pieces snapshots borrow (clients, rotations).
    pub shared: Shared,
    /// Shared state.
    pub store: Arc<dyn StateStore>,
    /// Metrics.
    pub metrics: Metrics,
    /// Limits and keys.
    pub settings: Settings,
    draining: AtomicBool,
    loaded: AtomicBool,
}

impl App {
    /// Assembles the app.
    pub fn new(
        snapshots: SnapshotStore,
        shared: Shared,
        store: Arc<dyn StateStore>,
        metrics: Metrics,
        settings: Settings,
    ) -> Self {
        Self {
            snapshots,
            shared,
            store,
            metrics,
            settings,
            draining: AtomicBool::new(false),
            loaded: AtomicBool::new(false),
        }
    }

    /// Marks the process as shutting down: /readyz turns false.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Records that a real configuration is being served.
    pub fn mark_loaded(&self) {
        self.loaded.store(true, Ordering::Relaxed);
    }

    /// Whether a configuration has been loaded (cluster mode starts empty).
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Relaxed)
    }

    /// Whether the process is shutting down.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}
