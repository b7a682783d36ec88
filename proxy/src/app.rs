//! The process-wide state every handler shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::clients::ClientKeys;
use crate::metrics::Metrics;
use crate::snapshot::{Shared, SnapshotStore};
use crate::state::StateStore;

/// Request limits and client keys.
pub struct Settings {
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Time for a whole request body to arrive.
    pub body_timeout: std::time::Duration,
    /// Deepest JSON nesting accepted.
    pub max_json_depth: usize,
    /// Most elements in any JSON array of a request.
    pub max_json_elements: usize,
    /// Streams relayed at once.
    pub max_streams: usize,
    /// What one upstream answer may make the gateway buffer.
    pub buffers: Buffers,
    /// The flat client key list (simple mode); LlmClients come with the
    /// configuration snapshot.
    pub client_keys: ClientKeys,
    /// How long the account of a stored response (Responses API) is kept.
    pub response_ttl: std::time::Duration,
}

/// Bounds on what one upstream answer may make the gateway hold in memory.
#[derive(Clone, Copy, Debug)]
pub struct Buffers {
    /// Largest non-streaming upstream response buffered.
    pub response: usize,
    /// Longest stream line or event buffered; a streamed answer holds at
    /// most this much plus one read (the relay reads the upstream only as
    /// fast as the client reads).
    pub stream_event: usize,
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
    auth: std::sync::atomic::AtomicU8,
}

/// How requests are authenticated under a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// No key required: anyone who reaches the gateway can use it.
    Open,
    /// The flat key list only (simple mode).
    Keys,
    /// LlmClients (and the flat list, when set).
    Clients,
}

impl AuthMode {
    /// The name /readyz shows.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Open => "open",
            AuthMode::Keys => "keys",
            AuthMode::Clients => "clients",
        }
    }
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
            auth: std::sync::atomic::AtomicU8::new(u8::MAX),
        }
    }

    /// How requests are authenticated under the current configuration.
    pub fn auth_mode(&self) -> AuthMode {
        if self.snapshots.load().clients.enforced() {
            AuthMode::Clients
        } else if self.settings.client_keys.enabled() {
            AuthMode::Keys
        } else {
            AuthMode::Open
        }
    }

    /// Logs the authentication mode when a configuration changes it; an
    /// open gateway is a warning.
    pub fn note_auth_mode(&self) {
        let mode = self.auth_mode();
        if self.auth.swap(mode as u8, Ordering::Relaxed) == mode as u8 {
            return;
        }
        match mode {
            AuthMode::Open => tracing::warn!(
                "no client keys: the gateway is open to anyone who can reach it (set --api-keys-file or create an LlmClient)"
            ),
            AuthMode::Keys => tracing::info!("client keys required (flat key list)"),
            AuthMode::Clients => {
                tracing::info!("client keys required (LlmClients and any flat key list)")
            }
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
