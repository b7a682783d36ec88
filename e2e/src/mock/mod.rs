//! A mock LLM provider speaking the OpenAI, Anthropic and Gemini wire
//! formats, scripted per API key
//! (see [`behaviour`]), counting what it receives so tests can assert
//! behaviour at the upstream: which account was called, how often, how many
//! at once, with which model.

mod anthropic;
pub mod behaviour;
mod extra;
mod gemini;
mod openai;
pub mod reply;
mod responses;
mod server;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

pub use behaviour::{Behaviour, Fault};
pub use server::serve;

/// What the mock saw for one key label.
#[derive(Clone, Debug, Default)]
pub struct KeyStats {
    /// Requests received.
    pub requests: u64,
    /// Requests being answered now.
    pub in_flight: u64,
    /// Most requests answered at once.
    pub max_in_flight: u64,
    /// The `model` of the last request.
    pub last_model: Option<String>,
    /// Arrival times.
    pub arrivals: Vec<Instant>,
    /// The body of the last request.
    pub last_body: Option<serde_json::Value>,
}

/// Shared counters of one mock server.
#[derive(Default)]
pub struct Stats {
    by_label: Mutex<HashMap<String, KeyStats>>,
    /// Stored responses (Responses API): id -> label that created it.
    stored: Mutex<HashMap<String, String>>,
}

impl Stats {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, KeyStats>> {
        self.by_label.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records an arrival; returns the request's 1-based number for its key.
    fn arrive(&self, key: &str, label: &str, model: Option<String>) -> u64 {
        let mut map = self.lock();
        // count per full key too, so `times=N` applies per key
        let n = {
            let s = map.entry(format!("key:{key}")).or_default();
            s.requests += 1;
            s.requests
        };
        let s = map.entry(label.to_owned()).or_default();
        s.requests += 1;
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        s.last_model = model;
        s.arrivals.push(Instant::now());
        n
    }

    fn record_body(&self, label: &str, body: &serde_json::Value) {
        if let Some(s) = self.lock().get_mut(label) {
            s.last_body = Some(body.clone());
        }
    }

    /// Stores a response created by `label`; returns its id.
    fn store_response(&self, label: &str) -> String {
        let mut stored = self.stored.lock().unwrap_or_else(PoisonError::into_inner);
        let id = format!("resp_{label}_{}", stored.len());
        stored.insert(id.clone(), label.to_owned());
        id
    }

    /// Which label created a stored response.
    fn stored_by(&self, id: &str) -> Option<String> {
        self.stored
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    fn leave(&self, label: &str) {
        if let Some(s) = self.lock().get_mut(label) {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
    }

    /// Counters of one label (zeroes if never seen).
    pub fn get(&self, label: &str) -> KeyStats {
        self.lock().get(label).cloned().unwrap_or_default()
    }

    /// Requests per label, for labels seen so far.
    pub fn requests(&self) -> HashMap<String, u64> {
        self.lock()
            .iter()
            .filter(|(k, _)| !k.starts_with("key:"))
            .map(|(k, v)| (k.clone(), v.requests))
            .collect()
    }

    /// Total requests over all labels.
    pub fn total(&self) -> u64 {
        self.requests().values().sum()
    }
}

/// A running mock provider.
pub struct MockProvider {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it saw.
    pub stats: Arc<Stats>,
    task: tokio::task::JoinHandle<()>,
}

impl MockProvider {
    /// Starts a mock on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(Stats::default());
        let task = tokio::spawn(serve(listener, stats.clone()));
        Ok(Self { addr, stats, task })
    }

    /// The base URL an OpenAI LlmAccount uses (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The base URL an Anthropic or Gemini LlmAccount uses (`http://127.0.0.1:PORT`).
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Guard that marks a request finished when the response is done or dropped.
pub(crate) struct InFlight {
    stats: Arc<Stats>,
    label: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.stats.leave(&self.label);
    }
}
