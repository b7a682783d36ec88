//! What several benches do the same way.

use std::time::Duration;

use llmpool_proxy::routing::Plan;
use llmpool_proxy::state::{Admission, AdmitRequest, Completion, MemoryStore, Outcome, StateStore};

/// One admission and its successful completion, as a request makes them.
pub fn admit_and_complete(rt: &tokio::runtime::Runtime, store: &MemoryStore, plan: &Plan<'_>) {
    rt.block_on(async {
        let req = AdmitRequest {
            namespace: "bench",
            candidates: &plan.candidates,
            excluded: &[],
            least_busy: false,
            session: None,
            estimated_tokens: 900,
            lease_ttl: Duration::from_secs(60),
            client: None,
        };
        let Ok(Admission::Admitted(lease)) = store.admit(&req).await else {
            panic!("no capacity")
        };
        let done = Completion {
            namespace: "bench",
            lease: &lease,
            candidate: &plan.candidates[lease.index],
            outcome: Outcome::Success {
                exhausted_for: None,
            },
            tokens_used: Some(700),
            session: None,
            client: None,
        };
        let _ = store.complete(&done).await;
    })
}
