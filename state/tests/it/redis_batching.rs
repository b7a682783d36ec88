//! Completions ride with admissions: a request costs about one Redis call,
//! a replica's own admissions see its releases at once, other replicas see
//! them within the linger, outcomes that cool an account go at once, and a
//! completion whose answer was lost is applied exactly once.

use std::sync::Arc;
use std::time::Duration;

use llmpool_crds::table::CompiledLimits;
use llmpool_e2e::redis::RedisServer;
use llmpool_state::{
    Admission, AdmitRequest, Candidate, Clock, Completion, Lease, Outcome, RedisStore, StateStore,
};

use super::{START_MS, redis_config};

fn one_at_a_time() -> [Candidate; 1] {
    [Candidate {
        account: "a".into(),
        tier: 0,
        model: "m".into(),
        project: None,
        limits: CompiledLimits {
            max_concurrency: Some(1),
            daily_tokens: Some(1_000_000),
            ..Default::default()
        },
        fingerprint: "f".into(),
    }]
}

fn req(c: &[Candidate]) -> AdmitRequest<'_> {
    AdmitRequest {
        namespace: "ns",
        candidates: c,
        excluded: &[],
        least_busy: false,
        session: None,
        estimated_tokens: 10,
        lease_ttl: Duration::from_secs(600),
        client: None,
    }
}

async fn admitted(store: &dyn StateStore, c: &[Candidate]) -> Option<Lease> {
    match store.admit(&req(c)).await.unwrap() {
        Admission::Admitted(lease) => Some(lease),
        _ => None,
    }
}

async fn finish(store: &dyn StateStore, c: &Candidate, lease: &Lease, outcome: Outcome, used: u64) {
    let done = Completion {
        namespace: "ns",
        lease,
        candidate: c,
        outcome,
        tokens_used: Some(used),
        session: None,
        client: None,
    };
    store.complete(&done).await.unwrap();
}

async fn replica(server: &RedisServer, clock: &Clock, call_timeout: Duration) -> Arc<RedisStore> {
    let config = llmpool_state::RedisConfig {
        call_timeout,
        ..redis_config(server)
    };
    let store = RedisStore::start(config, clock.clone(), 10);
    assert!(store.connected(Duration::from_secs(10)).await);
    store
}

const OK: Outcome = Outcome::Success {
    exhausted_for: None,
};

#[tokio::test]
async fn a_request_costs_one_call_and_the_replica_sees_its_own_releases_at_once() {
    let server = RedisServer::start().unwrap();
    let clock = Clock::manual(START_MS);
    let store = replica(&server, &clock, Duration::from_secs(5)).await;
    let c = one_at_a_time();
    let before = server.script_calls();
    for i in 0..200 {
        // one in flight at most: each admission must see the last release
        let lease = admitted(&*store, &c)
            .await
            .unwrap_or_else(|| panic!("request {i} found its predecessor still in flight"));
        finish(&*store, &c[0], &lease, OK, 5).await;
    }
    let calls = server.script_calls() - before;
    assert!(calls <= 220, "{calls} Redis calls for 200 requests");

    // another replica sees the last release once the linger is over, with
    // no admission of the first replica to carry it
    let other = replica(&server, &clock, Duration::from_secs(5)).await;
    let start = std::time::Instant::now();
    while admitted(&*other, &c).await.is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the last release never reached Redis"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // and every reservation was reconciled: 200 requests that used 5 tokens
    let day = format!("llmpool:{{ns}}:acct:a:day:{}", START_MS / 86_400_000);
    assert_eq!(server.cli(&["GET", &day]), (200 * 5 + 10).to_string());
}

#[tokio::test]
async fn a_cooldown_reaches_every_replica_before_the_complete_call_returns() {
    let server = RedisServer::start().unwrap();
    let clock = Clock::manual(START_MS);
    let (one, two) = (
        replica(&server, &clock, Duration::from_secs(5)).await,
        replica(&server, &clock, Duration::from_secs(5)).await,
    );
    let c = [Candidate {
        limits: CompiledLimits::default(),
        ..one_at_a_time()[0].clone()
    }];
    let lease = admitted(&*one, &c).await.unwrap();
    let cooldown = Duration::from_secs(30);
    finish(&*one, &c[0], &lease, Outcome::RateLimited { cooldown }, 0).await;
    match two.admit(&req(&c)).await.unwrap() {
        Admission::Unavailable { retry_after, why } => {
            assert_eq!(retry_after, cooldown);
            assert_eq!(why.rate_limited, 1);
        }
        other => panic!("the other replica admitted: {other:?}"),
    }
}

#[tokio::test]
async fn a_completion_whose_answer_was_lost_is_applied_once() {
    let server = RedisServer::start().unwrap();
    let clock = Clock::manual(START_MS);
    let store = replica(&server, &clock, Duration::from_millis(300)).await;
    let c = one_at_a_time();
    // a failure elsewhere first, so Redis already has the script (a call
    // it did not know would be answered NOSCRIPT and never run)
    let warm = [Candidate {
        account: "w".into(),
        ..c[0].clone()
    }];
    let lease = admitted(&*store, &warm).await.unwrap();
    finish(&*store, &warm[0], &lease, Outcome::Failed, 0).await;
    let lease = admitted(&*store, &c).await.unwrap();
    // Redis holds every command for 1.5 s: the completion's call times out
    // on this side, and Redis runs it when the pause ends
    assert_eq!(server.cli(&["CLIENT", "PAUSE", "1500", "ALL"]), "OK");
    finish(&*store, &c[0], &lease, Outcome::Failed, 1000).await;
    assert!(store.degraded(), "the call got no answer");
    // the store sends the group again once Redis answers
    let start = std::time::Instant::now();
    while store.degraded() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "Redis never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.send_all().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let day = format!("llmpool:{{ns}}:acct:a:day:{}", START_MS / 86_400_000);
    assert_eq!(
        server.cli(&["GET", &day]),
        "1000",
        "reserved 10, used 1000: reconciled once"
    );
    assert_eq!(
        server.cli(&["GET", "llmpool:{ns}:acct:a:fails"]),
        "1",
        "one failure counted once"
    );
    assert!(
        admitted(&*store, &c).await.is_some(),
        "the lease was released"
    );
}
