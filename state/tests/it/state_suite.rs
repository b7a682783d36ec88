//! One behaviour suite for every state store: each function is run against
//! the in-memory store and against a real redis-server (see main.rs), with a
//! manual clock driving both.

use std::time::Duration;

use llmpool_crds::table::CompiledLimits;
use llmpool_state::{
    Admission, AdmitRequest, Candidate, ClientCharge, ClientUsage, Clock, Completion, Lease,
    Outcome, SessionRef, StateStore,
};

const TTL: Duration = Duration::from_secs(600);

fn cand(account: &str, tier: usize, limits: CompiledLimits) -> Candidate {
    Candidate {
        account: account.into(),
        tier,
        model: "m".into(),
        project: None,
        limits,
        fingerprint: "fp1".into(),
    }
}

fn req<'a>(cands: &'a [Candidate], excluded: &'a [usize]) -> AdmitRequest<'a> {
    AdmitRequest {
        namespace: "ns",
        candidates: cands,
        excluded,
        least_busy: false,
        session: None,
        estimated_tokens: 10,
        lease_ttl: TTL,
        client: None,
    }
}

async fn admit(store: &dyn StateStore, r: &AdmitRequest<'_>) -> Result<Lease, Duration> {
    match store.admit(r).await.unwrap() {
        Admission::Admitted(l) => Ok(l),
        Admission::Unavailable { retry_after, .. } => Err(retry_after),
        Admission::ClientLimited { retry_after } => panic!("client limited for {retry_after:?}"),
    }
}

async fn finish(store: &dyn StateStore, c: &Candidate, lease: &Lease, outcome: Outcome) {
    let done = Completion {
        namespace: "ns",
        lease,
        candidate: c,
        outcome,
        tokens_used: None,
        session: None,
        client: None,
    };
    store.complete(&done).await.unwrap();
}

async fn cool(store: &dyn StateStore, c: &Candidate, lease: &Lease, secs: u64) {
    let outcome = Outcome::RateLimited {
        cooldown: Duration::from_secs(secs),
    };
    finish(store, c, lease, outcome).await;
}

fn ok() -> Outcome {
    Outcome::Success {
        exhausted_for: None,
    }
}

pub async fn requests_per_minute_is_a_sliding_window_exact_at_the_boundary(
    s: &dyn StateStore,
    clock: &Clock,
) {
    let limits = CompiledLimits {
        requests_per_minute: Some(2),
        ..Default::default()
    };
    let c = [cand("a", 0, limits)];
    admit(s, &req(&c, &[])).await.unwrap();
    clock.advance_ms(30000);
    admit(s, &req(&c, &[])).await.unwrap();
    assert_eq!(admit(s, &req(&c, &[])).await, Err(Duration::from_secs(30)));
    clock.advance_ms(29_999);
    assert!(
        admit(s, &req(&c, &[])).await.is_err(),
        "first request still inside the window"
    );
    clock.advance_ms(1);
    admit(s, &req(&c, &[])).await.unwrap();
    // and the window still holds two: the one from t=30s and the new one
    assert!(admit(s, &req(&c, &[])).await.is_err());
}

pub async fn max_concurrency_holds_and_leases_expire_on_their_own(
    s: &dyn StateStore,
    clock: &Clock,
) {
    let limits = CompiledLimits {
        max_concurrency: Some(1),
        ..Default::default()
    };
    let c = [cand("a", 0, limits)];
    let l = admit(s, &req(&c, &[])).await.unwrap();
    assert!(admit(s, &req(&c, &[])).await.is_err());
    finish(s, &c[0], &l, ok()).await;
    let _leaked = admit(s, &req(&c, &[])).await.unwrap();
    assert!(admit(s, &req(&c, &[])).await.is_err());
    clock.advance_ms(600_000);
    admit(s, &req(&c, &[]))
        .await
        .expect("an expired lease frees its slot");
}

pub async fn a_429_cools_the_account_model_pair_then_one_probe_goes_first(
    s: &dyn StateStore,
    clock: &Clock,
) {
    let c = [cand("a", 0, CompiledLimits::default())];
    let mut other_model = c[0].clone();
    other_model.model = "other".into();
    let l = admit(s, &req(&c, &[])).await.unwrap();
    cool(s, &c[0], &l, 10).await;
    assert_eq!(admit(s, &req(&c, &[])).await, Err(Duration::from_secs(10)));
    admit(s, &req(std::slice::from_ref(&other_model), &[]))
        .await
        .expect("other models unaffected");

    clock.advance_ms(10000);
    let probe = admit(s, &req(&c, &[])).await.unwrap();
    assert!(probe.probe);
    assert!(
        admit(s, &req(&c, &[])).await.is_err(),
        "only one probe at a time"
    );
    finish(s, &c[0], &probe, ok()).await;
    let a = admit(s, &req(&c, &[])).await.unwrap();
    let b = admit(s, &req(&c, &[])).await.unwrap();
    assert!(!a.probe && !b.probe, "full traffic after a good probe");
}

pub async fn a_failed_probe_lets_the_next_request_probe_and_a_429_probe_cools_again(
    s: &dyn StateStore,
    clock: &Clock,
) {
    let c = [cand("a", 0, CompiledLimits::default())];
    let l = admit(s, &req(&c, &[])).await.unwrap();
    cool(s, &c[0], &l, 5).await;
    clock.advance_ms(5000);
    let p = admit(s, &req(&c, &[])).await.unwrap();
    finish(s, &c[0], &p, Outcome::Failed).await;
    let p = admit(s, &req(&c, &[])).await.unwrap();
    assert!(p.probe);
    cool(s, &c[0], &p, 7).await;
    assert_eq!(admit(s, &req(&c, &[])).await, Err(Duration::from_secs(7)));
}

pub async fn projects_share_cooldowns(s: &dyn StateStore, _clock: &Clock) {
    let mut a = cand("a", 0, CompiledLimits::default());
    a.project = Some("org".into());
    let mut b = cand("b", 0, CompiledLimits::default());
    b.project = Some("org".into());
    let l = admit(s, &req(std::slice::from_ref(&a), &[])).await.unwrap();
    cool(s, &a, &l, 3).await;
    assert!(admit(s, &req(std::slice::from_ref(&b), &[])).await.is_err());
}

pub async fn an_account_block_lasts_until_the_credential_changes(
    s: &dyn StateStore,
    _clock: &Clock,
) {
    let c = [cand("a", 0, CompiledLimits::default())];
    let l = admit(s, &req(&c, &[])).await.unwrap();
    finish(
        s,
        &c[0],
        &l,
        Outcome::AccountBlocked {
            recheck: Duration::from_secs(3600),
        },
    )
    .await;
    assert!(admit(s, &req(&c, &[])).await.is_err());
    let views = s.view("ns", &["a".into()]).await.unwrap();
    assert!(views[0].blocked);
    let mut rotated = c[0].clone();
    rotated.fingerprint = "fp2".into();
    admit(s, &req(std::slice::from_ref(&rotated), &[]))
        .await
        .expect("new key, new chance");
}

pub async fn later_tiers_are_used_only_when_earlier_ones_are_full(
    s: &dyn StateStore,
    _clock: &Clock,
) {
    let one = CompiledLimits {
        max_concurrency: Some(1),
        ..Default::default()
    };
    let c = [cand("a", 0, one), cand("b", 1, CompiledLimits::default())];
    assert_eq!(admit(s, &req(&c, &[])).await.unwrap().index, 0);
    assert_eq!(admit(s, &req(&c, &[])).await.unwrap().index, 1);
    // excluded candidates are skipped but still count for the retry hint
    assert_eq!(admit(s, &req(&c, &[1])).await, Err(Duration::from_secs(1)));
}

pub async fn unavailable_names_the_earliest_time_any_candidate_frees_up(
    s: &dyn StateStore,
    _clock: &Clock,
) {
    let c = [
        cand("a", 0, CompiledLimits::default()),
        cand("b", 0, CompiledLimits::default()),
    ];
    let la = admit(s, &req(&c, &[])).await.unwrap();
    cool(s, &c[0], &la, 20).await;
    let lb = admit(s, &req(&c, &[])).await.unwrap();
    assert_eq!(lb.index, 1);
    finish(
        s,
        &c[1],
        &lb,
        Outcome::RateLimited {
            cooldown: Duration::from_secs(8),
        },
    )
    .await;
    assert_eq!(admit(s, &req(&c, &[])).await, Err(Duration::from_secs(8)));
}

pub async fn sessions_stick_to_their_account_and_rebind_on_failover(
    s: &dyn StateStore,
    _clock: &Clock,
) {
    let one = CompiledLimits {
        max_concurrency: Some(1),
        ..Default::default()
    };
    let c = [cand("a", 0, one), cand("b", 0, one)];
    let session = SessionRef {
        key: "k".into(),
        ttl: Duration::from_secs(60),
    };
    let mut r = req(&c, &[]);
    r.session = Some(&session);
    // bind the session to b
    let done_b = Lease {
        id: 0,
        index: 1,
        probe: false,
        reserved_tokens: 0,
        fallback: false,
        session_hit: false,
    };
    let bind = Completion {
        namespace: "ns",
        lease: &done_b,
        candidate: &c[1],
        outcome: ok(),
        tokens_used: None,
        session: Some(&session),
        client: None,
    };
    s.complete(&bind).await.unwrap();
    let l = admit(s, &r).await.unwrap();
    assert_eq!(l.index, 1, "bound account preferred over strategy order");
    assert!(l.session_hit, "served by its bound account: a hit");
    // b is now full: the session fails over to a and is rebound there
    let l2 = admit(s, &r).await.unwrap();
    assert_eq!(l2.index, 0);
    assert!(!l2.session_hit, "moved to another account: not a hit");
    let rebind = Completion {
        namespace: "ns",
        lease: &l2,
        candidate: &c[0],
        outcome: ok(),
        tokens_used: None,
        session: Some(&session),
        client: None,
    };
    s.complete(&rebind).await.unwrap();
    finish(s, &c[1], &l, ok()).await;
    assert_eq!(
        admit(s, &r).await.unwrap().index,
        0,
        "no ping-pong back to b"
    );
}

pub async fn least_busy_picks_the_account_with_fewest_in_flight(
    s: &dyn StateStore,
    _clock: &Clock,
) {
    let c = [
        cand("a", 0, CompiledLimits::default()),
        cand("b", 0, CompiledLimits::default()),
    ];
    let mut r = req(&c, &[]);
    r.least_busy = true;
    assert_eq!(admit(s, &r).await.unwrap().index, 0);
    assert_eq!(admit(s, &r).await.unwrap().index, 1);
    let third = admit(s, &r).await.unwrap();
    assert_eq!(third.index, 0);
    assert_eq!(
        s.view("ns", &["a".into(), "b".into()]).await.unwrap()[0].in_flight,
        2
    );
}

pub async fn token_windows_reserve_then_reconcile_with_real_usage(
    s: &dyn StateStore,
    _clock: &Clock,
) {
    let limits = CompiledLimits {
        tokens_per_minute: Some(100),
        ..Default::default()
    };
    let c = [cand("a", 0, limits)];
    let mut r = req(&c, &[]);
    r.estimated_tokens = 60;
    let l = admit(s, &r).await.unwrap();
    assert!(admit(s, &r).await.is_err(), "60 reserved + 60 > 100");
    let done = Completion {
        namespace: "ns",
        lease: &l,
        candidate: &c[0],
        outcome: ok(),
        tokens_used: Some(20),
        session: None,
        client: None,
    };
    s.complete(&done).await.unwrap();
    admit(s, &r).await.expect("20 used + 60 fits");
}

pub async fn consecutive_failures_open_the_circuit_and_one_probe_closes_it(
    s: &dyn StateStore,
    clock: &Clock,
) {
    let c = [cand("a", 0, CompiledLimits::default())];
    let fail_once = || async {
        let l = admit(s, &req(&c, &[])).await.unwrap();
        finish(s, &c[0], &l, Outcome::Failed).await;
    };
    // a success in between resets the count
    for _ in 0..4 {
        fail_once().await;
    }
    let l = admit(s, &req(&c, &[])).await.unwrap();
    finish(s, &c[0], &l, ok()).await;
    for _ in 0..4 {
        fail_once().await;
    }
    assert!(
        admit(s, &req(&c, &[])).await.is_ok(),
        "4 failures in a row keep it closed"
    );
    // the 5th in a row (the admission above counted as none yet) opens it
    let l = admit(s, &req(&c, &[])).await.unwrap();
    finish(s, &c[0], &l, Outcome::Failed).await;
    assert_eq!(admit(s, &req(&c, &[])).await, Err(Duration::from_secs(30)));
    assert!(
        s.view("ns", &["a".into()]).await.unwrap()[0]
            .cooling_for
            .is_some()
    );

    // half-open: one probe; its failure opens it again
    clock.advance_ms(30_000);
    let probe = admit(s, &req(&c, &[])).await.unwrap();
    assert!(probe.probe);
    assert!(
        admit(s, &req(&c, &[])).await.is_err(),
        "one probe at a time, for every replica"
    );
    finish(s, &c[0], &probe, Outcome::Failed).await;
    assert_eq!(admit(s, &req(&c, &[])).await, Err(Duration::from_secs(30)));

    // a good probe closes it
    clock.advance_ms(30_000);
    let probe = admit(s, &req(&c, &[])).await.unwrap();
    finish(s, &c[0], &probe, ok()).await;
    let a = admit(s, &req(&c, &[])).await.unwrap();
    let b = admit(s, &req(&c, &[])).await.unwrap();
    assert!(!a.probe && !b.probe);
}

pub async fn a_session_is_bound_when_admitted_so_the_next_turn_cannot_race(
    s: &dyn StateStore,
    _clock: &Clock,
) {
    let a = cand("a", 0, CompiledLimits::default());
    let b = cand("b", 0, CompiledLimits::default());
    let session = SessionRef {
        key: "conv".into(),
        ttl: Duration::from_secs(60),
    };
    let first_order = [a.clone(), b.clone()];
    let mut r = req(&first_order, &[]);
    r.session = Some(&session);
    let first = admit(s, &r).await.unwrap();
    assert_eq!(first.index, 0);
    // the first turn has not completed; round-robin now puts b first
    let second_order = [b, a];
    let mut r = req(&second_order, &[]);
    r.session = Some(&session);
    assert_eq!(
        admit(s, &r).await.unwrap().index,
        1,
        "the session stays on a"
    );
}

pub async fn stored_responses_are_found_on_their_account_until_they_expire(
    store: &dyn StateStore,
    clock: &Clock,
) {
    let ttl = Duration::from_millis(300);
    store.bind_response("ns", "resp_1", "a", ttl).await.unwrap();
    store.bind_response("ns", "resp_2", "b", ttl).await.unwrap();
    assert_eq!(
        store
            .response_account("ns", "resp_1")
            .await
            .unwrap()
            .as_deref(),
        Some("a")
    );
    assert_eq!(
        store
            .response_account("ns", "resp_2")
            .await
            .unwrap()
            .as_deref(),
        Some("b")
    );
    assert_eq!(
        store.response_account("other", "resp_1").await.unwrap(),
        None,
        "namespaces are apart"
    );
    assert_eq!(store.response_account("ns", "resp_3").await.unwrap(), None);
    // expiry: the manual clock for memory, real time for Redis's own TTL
    clock.advance_ms(400);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.response_account("ns", "resp_1").await.unwrap(), None);
}

fn charge(limits: CompiledLimits, first_attempt: bool) -> ClientCharge {
    ClientCharge {
        name: "team-a".into(),
        limits,
        first_attempt,
    }
}

/// Admits one attempt for the client: the lease, or whether the client
/// (`Ok`) or the accounts (`Err`) refused it.
async fn admit_for(
    store: &dyn StateStore,
    cands: &[Candidate],
    client: &ClientCharge,
    estimate: u64,
) -> Result<Lease, Result<Duration, Duration>> {
    let mut r = req(cands, &[]);
    r.client = Some(client);
    r.estimated_tokens = estimate;
    match store.admit(&r).await.unwrap() {
        Admission::Admitted(l) => Ok(l),
        Admission::ClientLimited { retry_after } => Err(Ok(retry_after)),
        Admission::Unavailable { retry_after, .. } => Err(Err(retry_after)),
    }
}

async fn finish_for(
    store: &dyn StateStore,
    c: &Candidate,
    lease: &Lease,
    client: &ClientCharge,
    outcome: Outcome,
    used: Option<u64>,
) {
    let done = Completion {
        namespace: "ns",
        lease,
        candidate: c,
        outcome,
        tokens_used: used,
        session: None,
        client: Some(client),
    };
    store.complete(&done).await.unwrap();
}

async fn usage(store: &dyn StateStore) -> ClientUsage {
    store.client_usage("ns", &["team-a".into()]).await.unwrap()[0].clone()
}

pub async fn a_client_over_its_request_window_is_refused_without_touching_accounts(
    s: &dyn StateStore,
    clock: &Clock,
) {
    let limits = CompiledLimits {
        requests_per_minute: Some(2),
        ..Default::default()
    };
    let c = [cand("a", 0, CompiledLimits::default())];
    let first = charge(limits, true);
    for _ in 0..2 {
        let l = admit_for(s, &c, &first, 10).await.unwrap();
        finish_for(s, &c[0], &l, &first, ok(), Some(5)).await;
    }
    clock.advance_ms(10_000);
    assert_eq!(
        admit_for(s, &c, &first, 10).await.unwrap_err(),
        Ok(Duration::from_secs(50)),
        "the client's oldest request leaves the window in 50 s"
    );
    let before = s.view("ns", &["a".into()]).await.unwrap();
    assert_eq!(before[0].in_flight, 0, "a refused request takes no lease");
    // a retry of an admitted request is never refused by the client's limits
    let retry = charge(limits, false);
    let l = admit_for(s, &c, &retry, 10).await.unwrap();
    finish_for(s, &c[0], &l, &retry, ok(), Some(5)).await;
    assert_eq!(
        usage(s).await.requests_last_minute,
        2,
        "retries are not requests"
    );
    // another client is not held to team-a's window
    let other = ClientCharge {
        name: "team-b".into(),
        ..first.clone()
    };
    admit_for(s, &c, &other, 10).await.unwrap();
    clock.advance_ms(50_000);
    admit_for(s, &c, &first, 10).await.unwrap();
}

pub async fn client_tokens_and_concurrency_hold_and_failed_attempts_are_not_charged(
    s: &dyn StateStore,
    _clock: &Clock,
) {
    let limits = CompiledLimits {
        tokens_per_minute: Some(100),
        max_concurrency: Some(1),
        ..Default::default()
    };
    let c = [cand("a", 0, CompiledLimits::default())];
    let first = charge(limits, true);
    let l = admit_for(s, &c, &first, 60).await.unwrap();
    assert_eq!(
        admit_for(s, &c, &first, 10).await.unwrap_err(),
        Ok(Duration::from_secs(1)),
        "one request in flight is the client's limit"
    );
    assert_eq!(usage(s).await.in_flight, 1);
    // the attempt fails; its reservation is given back
    finish_for(s, &c[0], &l, &first, Outcome::Failed, None).await;
    let u = usage(s).await;
    assert_eq!(
        (u.in_flight, u.tokens_last_minute, u.tokens_today),
        (0, 0, 0)
    );
    let l = admit_for(s, &c, &first, 60).await.unwrap();
    finish_for(s, &c[0], &l, &first, ok(), Some(70)).await;
    let u = usage(s).await;
    assert_eq!((u.tokens_last_minute, u.tokens_today), (70, 70));
    assert!(
        matches!(admit_for(s, &c, &first, 40).await, Err(Ok(_))),
        "70 used + 40 > 100 tokens per minute"
    );
    admit_for(s, &c, &first, 30).await.expect("70 + 30 fits");
}

pub async fn a_client_daily_budget_holds_until_the_next_utc_day(s: &dyn StateStore, clock: &Clock) {
    let limits = CompiledLimits {
        daily_tokens: Some(1_000),
        ..Default::default()
    };
    let c = [cand("a", 0, CompiledLimits::default())];
    let first = charge(limits, true);
    let l = admit_for(s, &c, &first, 100).await.unwrap();
    finish_for(s, &c[0], &l, &first, ok(), Some(950)).await;
    let wait = admit_for(s, &c, &first, 100).await.unwrap_err();
    let to_midnight = 86_400_000 - crate::START_MS % 86_400_000;
    assert_eq!(wait, Ok(Duration::from_millis(to_midnight)));
    clock.advance_ms(to_midnight - 1);
    assert!(admit_for(s, &c, &first, 100).await.is_err(), "still today");
    clock.advance_ms(1);
    admit_for(s, &c, &first, 100).await.expect("a new day");
}

pub async fn an_unavailable_answer_says_why_each_account_is_out(
    s: &dyn StateStore,
    _clock: &Clock,
) {
    let one_rpm = CompiledLimits {
        requests_per_minute: Some(1),
        ..Default::default()
    };
    let c = [
        cand("cooling", 0, CompiledLimits::default()),
        cand("failing", 0, CompiledLimits::default()),
        cand("blocked", 0, CompiledLimits::default()),
        cand("full", 0, one_rpm),
        cand("tried", 0, CompiledLimits::default()),
    ];
    let only = |i: usize| {
        let excluded: Vec<usize> = (0..c.len()).filter(|&j| j != i).collect();
        excluded
    };
    for i in 0..4 {
        let excluded = only(i);
        let lease = admit(s, &req(&c, &excluded)).await.unwrap();
        match i {
            0 => cool(s, &c[0], &lease, 60).await,
            1 => {
                finish(s, &c[1], &lease, Outcome::Failed).await;
                for _ in 1..llmpool_state::BREAKER_FAILURES {
                    let l = admit(s, &req(&c, &excluded)).await.unwrap();
                    finish(s, &c[1], &l, Outcome::Failed).await;
                }
            }
            2 => {
                let blocked = Outcome::AccountBlocked {
                    recheck: Duration::from_secs(60),
                };
                finish(s, &c[2], &lease, blocked).await;
            }
            _ => finish(s, &c[3], &lease, ok()).await,
        }
    }
    match s.admit(&req(&c, &[4])).await.unwrap() {
        Admission::Unavailable { why, .. } => {
            let expected = llmpool_state::Unavailability {
                rate_limited: 1,
                failing: 1,
                blocked: 1,
                at_limit: 1,
                tried: 1,
            };
            assert_eq!(why, expected);
        }
        other => panic!("{other:?}"),
    }
}
