//! The operator's view of the shared state: health read back from what the
//! proxies recorded, and a reset that every replica sees.

use std::sync::Arc;
use std::time::Duration;

use llmpool_crds::table::CompiledLimits;
use llmpool_e2e::redis::RedisServer;
use llmpool_state::{
    Admission, AdmitRequest, Candidate, Clock, Completion, Outcome, RedisAdmin, RedisStore,
    StateStore,
};

use super::{START_MS, redis_store};

fn candidate(account: &str) -> Candidate {
    Candidate {
        account: account.into(),
        tier: 0,
        model: "m".into(),
        project: None,
        limits: CompiledLimits::default(),
        fingerprint: "fp".into(),
    }
}

async fn attempt(store: &dyn StateStore, c: &[Candidate], outcome: Outcome) -> bool {
    let req = AdmitRequest {
        namespace: "ns",
        candidates: c,
        excluded: &[],
        least_busy: false,
        session: None,
        estimated_tokens: 1,
        lease_ttl: Duration::from_secs(60),
        client: None,
    };
    let Admission::Admitted(lease) = store.admit(&req).await.unwrap() else {
        return false;
    };
    let done = Completion {
        namespace: "ns",
        lease: &lease,
        candidate: &c[lease.index],
        outcome,
        tokens_used: None,
        session: None,
        client: None,
    };
    store.complete(&done).await.unwrap();
    true
}

/// A Redis server, a replica's store on a manual clock, and the admin view.
async fn start() -> (RedisServer, Clock, Arc<RedisStore>, RedisAdmin) {
    let server = RedisServer::start().unwrap();
    let clock = Clock::manual(START_MS);
    let store = redis_store(&server, &clock);
    assert!(store.connected(Duration::from_secs(10)).await);
    let admin = RedisAdmin::connect(&super::redis_config(&server))
        .await
        .unwrap();
    (server, clock, store, admin)
}

/// Whether the replica admits `c` within a second (its cache hears of a
/// reset over pub/sub).
async fn admitted_soon(store: &dyn StateStore, c: &[Candidate]) -> bool {
    for _ in 0..50 {
        let ok = Outcome::Success {
            exhausted_for: None,
        };
        if attempt(store, c, ok).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn health_shows_cooldowns_errors_and_traffic_and_reset_clears_them_everywhere() {
    let (_server, clock, store, admin) = start().await;
    let hot = [candidate("hot")];
    let calm = [candidate("calm")];
    let ok = Outcome::Success {
        exhausted_for: None,
    };

    for _ in 0..3 {
        assert!(attempt(&*store, &calm, ok.clone()).await);
    }
    let cooldown = Outcome::RateLimited {
        cooldown: Duration::from_secs(120),
    };
    assert!(attempt(&*store, &hot, cooldown).await);
    let names = ["hot".to_owned(), "calm".to_owned(), "unused".to_owned()];
    let health = admin.health("ns", &names, clock.now_ms()).await.unwrap();
    assert_eq!(health[0].cooling_until_ms, Some(START_MS + 120_000));
    assert_eq!(
        health[0].last_error,
        Some(("RateLimited".to_owned(), START_MS))
    );
    assert_eq!(health[0].requests_last_minute, 1);
    assert_eq!(health[1].cooling_until_ms, None);
    assert_eq!(health[1].last_error, None);
    assert_eq!(health[1].requests_last_minute, 3);
    assert_eq!(health[2], Default::default());
    // a proxy's /metrics reads the same script
    let view = store
        .view("ns", &["hot".into(), "calm".into()])
        .await
        .unwrap();
    assert_eq!(view[0].cooling_for, Some(Duration::from_secs(120)));
    assert_eq!((view[1].cooling_for, view[1].in_flight), (None, 0));
    // another namespace's accounts of the same name are separate
    let elsewhere = admin.health("other", &names, clock.now_ms()).await.unwrap();
    assert_eq!(elsewhere[0], Default::default());

    // the pub/sub cache makes the replica skip the cold account without Redis
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!attempt(&*store, &hot, ok.clone()).await, "cooling down");

    assert_eq!(admin.reset("ns", "hot").await.unwrap(), 1);
    let after = admin.health("ns", &names, clock.now_ms()).await.unwrap();
    assert_eq!(after[0].cooling_until_ms, None);
    // the replica's cache hears of the reset and admits again
    assert!(
        admitted_soon(&*store, &hot).await,
        "the reset reached the replica"
    );

    // one minute later the traffic count has rolled off
    clock.advance_ms(61_000);
    let later = admin.health("ns", &names, clock.now_ms()).await.unwrap();
    assert_eq!(later[1].requests_last_minute, 0);
}

#[tokio::test]
async fn reset_opens_a_tripped_circuit_breaker() {
    let (_server, clock, store, admin) = start().await;
    let c = [candidate("flaky")];
    for _ in 0..llmpool_state::BREAKER_FAILURES {
        assert!(attempt(&*store, &c, Outcome::Failed).await);
    }
    let names = ["flaky".to_owned()];
    let health = admin.health("ns", &names, clock.now_ms()).await.unwrap();
    assert_eq!(health[0].last_error.as_ref().unwrap().0, "UpstreamFailure");
    assert!(health[0].cooling_until_ms.is_some(), "the breaker is open");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!attempt(&*store, &c, Outcome::Failed).await);
    assert_eq!(admin.reset("ns", "flaky").await.unwrap(), 1);
    assert!(admitted_soon(&*store, &c).await);
}
