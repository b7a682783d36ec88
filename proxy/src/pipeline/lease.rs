//! A lease on one account for one attempt, returned exactly once: explicitly
//! with the outcome, or — when the request is dropped (client gone) — from
//! `Drop`, as cancelled. Capacity never leaks and is never returned twice.

use std::sync::Arc;

use crate::app::App;
use crate::state::{Candidate, ClientCharge, Completion, Lease, Outcome, SessionRef};

/// What one attempt holds in the shared state.
#[derive(Clone)]
pub struct Held {
    /// Namespace of the snapshot.
    pub namespace: Arc<str>,
    /// The account's candidate.
    pub candidate: Candidate,
    /// The lease taken on it.
    pub lease: Lease,
    /// The session to bind when the attempt succeeds.
    pub session: Option<SessionRef>,
    /// The named client charged.
    pub client: Option<ClientCharge>,
}

/// Capacity held on one account.
pub struct LeaseGuard {
    app: Arc<App>,
    held: Held,
    open: bool,
}

impl LeaseGuard {
    /// Wraps a fresh lease and counts it in flight.
    pub fn new(app: Arc<App>, held: Held) -> Self {
        app.metrics
            .in_flight
            .with_label_values(&[&*held.candidate.account])
            .inc();
        Self {
            app,
            held,
            open: true,
        }
    }

    /// The account this lease is on.
    pub fn account(&self) -> &str {
        &self.held.candidate.account
    }

    /// The named client the attempt is charged to.
    pub fn client(&self) -> Option<&str> {
        self.held.client.as_ref().map(|c| &*c.name)
    }

    /// Returns the lease after a served answer: inline when the store takes
    /// it without a network wait, otherwise in the background so the
    /// client's answer does not wait for the shared store.
    pub async fn finish_served(self, outcome: Outcome, tokens_used: Option<u64>) {
        if self.app.store.completes_instantly(&outcome) {
            self.finish(outcome, tokens_used).await;
        } else if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(self.finish(outcome, tokens_used));
        }
    }

    /// Returns the lease with the attempt's outcome.
    pub async fn finish(mut self, outcome: Outcome, tokens_used: Option<u64>) {
        self.open = false;
        complete(&self.app, &self.held, outcome, tokens_used).await;
    }
}

async fn complete(app: &App, held: &Held, outcome: Outcome, tokens_used: Option<u64>) {
    let candidate = &held.candidate;
    app.metrics
        .in_flight
        .with_label_values(&[&*candidate.account])
        .dec();
    let reason = match &outcome {
        Outcome::RateLimited { .. } => Some("rate_limited"),
        Outcome::AccountBlocked { .. } => Some("blocked"),
        Outcome::Success {
            exhausted_for: Some(_),
        } => Some("exhausted"),
        _ => None,
    };
    if let Some(reason) = reason {
        app.metrics
            .cooldowns
            .with_label_values(&[&*candidate.account, reason])
            .inc();
    }
    let session = match outcome {
        Outcome::Success { .. } => held.session.as_ref(),
        _ => None,
    };
    let done = Completion {
        namespace: &held.namespace,
        lease: &held.lease,
        candidate,
        outcome,
        tokens_used,
        session,
        client: held.client.as_ref(),
    };
    if let Err(e) = app.store.complete(&done).await {
        tracing::warn!(account = %candidate.account, error = %e, "could not record an attempt's outcome");
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        let app = self.app.clone();
        let held = Held {
            session: None,
            ..self.held.clone()
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                complete(&app, &held, Outcome::Cancelled, None).await;
            });
        }
    }
}
