//! llmpool-operator: reconciles LlmAccounts and ModelRoutes into the one
//! Secret and one ConfigMap per namespace that the proxies watch.
//!
//! - [`controller`]: watches, the per-namespace queue, resync and backoff
//! - [`reconcile`]: one namespace's reconcile
//! - [`status`]: the conditions each resource should show
//! - [`oauth`]: access-token refresh with per-account backoff
//! - [`runtime`]: health from the shared state, cooldown resets
//! - [`events`]: Kubernetes Events on condition changes
//! - [`leader`]: Lease leader election
//! - [`serve`]: running it all from the command line's settings
//! - [`metrics`], [`cli`]

pub mod cli;
pub mod controller;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod oauth;
pub mod reconcile;
pub mod runtime;
pub mod serve;
pub mod status;
#[cfg(test)]
mod testing;
