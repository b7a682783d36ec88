//! A lease on one account for one attempt, returned exactly once: explicitly
//! with the outcome, or — when the request is dropped (client gone) — from
//! `Drop`, as cancelled. Capacity never leaks and is never returned twice.

use std::sync::Arc;

use crate::app::App;
use crate::state::{Candidate, Completion, Lease, Outcome, SessionRef};

/// Capacity held on one account.
pub struct LeaseGuard {
    app: Arc<App>,
    namespace: Arc<str>,
    candidate: Candidate,
    lease: Lease,
    session: Option<SessionRef>,
    open: bool,
}

impl LeaseGuard {
    /// Wraps a fresh lease and counts it in flight.
    pub fn new(
        app: Arc<App>,
        namespace: Arc<str>,
        candidate: Candidate,
        lease: Lease,
        session: Option<SessionRef>,
    ) -> Self {
        app.metrics
            .in_flight
            .with_label_values(&[&*candidate.account])
            .inc();
        Self {
            app,
            namespace,
            candidate,
            lease,
            session,
            open: true,
        }
    }

    /// The account this lease is on.
    pub fn account(&self) -> &str {
        &self.candidate.account
    }

    /// Returns the lease after a served answer: inline when the store costs
    /// nothing to call, otherwise in the background so the client's answer
    /// does not wait for the shared store.
    pub async fn finish_served(self, outcome: Outcome, tokens_used: Option<u64>) {
        if self.app.store.completes_instantly() {
            self.finish(outcome, tokens_used).await;
        } else if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(self.finish(outcome, tokens_used));
        }
    }

    /// Returns the lease with the attempt's outcome.
    pub async fn finish(mut self, outcome: Outcome, tokens_used: Option<u64>) {
        self.open = false;
        complete(
            &self.app,
            &self.namespace,
            &self.candidate,
            &self.lease,
            self.session.as_ref(),
            outcome,
            tokens_used,
        )
        .await;
    }
}

async fn complete(
    app: &App,
    namespace: &str,
    candidate: &Candidate,
    lease: &Lease,
    session: Option<&SessionRef>,
    outcome: Outcome,
    tokens_used: Option<u64>,
) {
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
        Outcome::Success { .. } => session,
        _ => None,
    };
    let done = Completion {
        namespace,
        lease,
        candidate,
        outcome,
        tokens_used,
        session,
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
        let namespace = self.namespace.clone();
        let candidate = self.candidate.clone();
        let lease = self.lease.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                complete(
                    &app,
                    &namespace,
                    &candidate,
                    &lease,
                    None,
                    Outcome::Cancelled,
                    None,
                )
                .await;
            });
        }
    }
}
