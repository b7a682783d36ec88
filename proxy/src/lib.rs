//! The llmpool data plane. One endpoint for many LLM provider accounts:
//! authenticate, parse, route, then per attempt select, translate, call and
//! account. Module by pipeline stage:
//!
//! - [`listen`]: client connections and their limits
//! - [`ingress`]: HTTP handlers per client API, health, readiness, metrics
//! - [`clients`]: client keys (LlmClients and the flat list) and their rules
//! - [`protocol`]: wire formats (pure, no I/O)
//! - [`routing`]: route match and strategy order
//! - [`state`]: shared state (cooldowns, windows, leases, sessions), re-exported
//!   from `llmpool-state`, which the operator uses too
//! - [`upstream`]: provider clients (hosts, paths, auth) and failure mapping
//! - [`pipeline`]: the attempt loop and stream relay
//! - [`config`]: sources of configuration snapshots
//! - [`logline`]: the JSON shape of a log line, with the request id
//! - [`logwriter`]: log output, batched off the request path

pub mod app;
pub mod cli;
pub mod clients;
pub mod config;
pub mod error;
pub mod ingress;
pub mod listen;
pub mod logline;
pub mod logwriter;
pub mod metrics;
pub mod pipeline;
pub mod protocol;
pub mod routing;
pub mod server;
pub mod snapshot;
pub use llmpool_state as state;
pub mod upstream;
