//! Rotation, cooldowns, the attempt budget and the commit point.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;

#[tokio::test]
async fn a_429_rotates_and_the_account_is_skipped_until_retry_after() {
    let accounts = [
        ("a", "a?status=429&retry_after=2&times=1", ""),
        ("b", "b", ""),
    ];
    let env = Env::start(&accounts, &one_tier(&["a", "b"], "round-robin", "")).await;
    // whichever account comes first, the client gets an answer
    for _ in 0..6 {
        assert_eq!(env.served_by("gpt-test").await, "b");
    }
    assert_eq!(env.count("a"), 1, "a was cooled after its 429 and skipped");
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let mut labels = Vec::new();
    for _ in 0..4 {
        labels.push(env.served_by("gpt-test").await);
    }
    assert!(
        labels.contains(&"a".to_owned()),
        "a takes traffic again after Retry-After: {labels:?}"
    );
    assert_eq!(
        env.count("a"),
        1 + labels.iter().filter(|l| *l == "a").count() as u64
    );
}

#[tokio::test]
async fn no_retry_once_the_first_byte_reached_the_client() {
    let accounts = [
        ("a", "a?fault=cut&after=2&chunks=4", "  priority: 0\n"),
        ("b", "b", "  priority: 1\n"),
    ];
    let env = Env::start(&accounts, &one_tier(&["a", "b"], "fill-first", "")).await;
    let r = env.chat(&chat_body("gpt-test", true)).await;
    assert_eq!(r.status(), 200);
    let (content, payloads) = read_stream(r).await;
    assert_eq!(content, "mock reply", "the content sent before the cut");
    let last: Value = serde_json::from_str(payloads.last().unwrap()).unwrap();
    assert_eq!(openai_error(&last)["code"], "upstream_stream_error");
    assert_eq!(env.count("b"), 0, "no retry after the first byte");
    assert_eq!(env.count("a"), 1);
}

#[tokio::test]
async fn the_attempt_budget_holds() {
    let accounts = [
        ("a", "a?status=500", ""),
        ("b", "b?status=500", ""),
        ("c", "c?status=503", ""),
        ("d", "d?status=500", ""),
        ("e", "e?status=500", ""),
    ];
    let env = Env::start(
        &accounts,
        &one_tier(
            &["a", "b", "c", "d", "e"],
            "round-robin",
            "  retry: {maxAttempts: 3}\n",
        ),
    )
    .await;
    let (status, body) = env.ask("gpt-test").await;
    let message = openai_error(&body)["message"].as_str().unwrap().to_owned();
    // an overloaded last account (503) is passed on as 503, anything else as 502
    let expected = if message.contains("HTTP 503") {
        503
    } else {
        502
    };
    assert_eq!(status, expected, "{body}");
    assert!(message.contains("after 3 attempt(s)"), "{message}");
    assert_eq!(
        env.mock.stats.total(),
        3,
        "exactly maxAttempts upstream calls"
    );
}

#[tokio::test]
async fn resets_hangs_empty_streams_and_error_events_rotate_before_commit() {
    let accounts = [
        ("a", "a?fault=reset", "  priority: 0\n"),
        ("b", "b?fault=hang", "  priority: 1\n"),
        ("c", "c?fault=empty", "  priority: 2\n"),
        ("d", "d?fault=error_event", "  priority: 3\n"),
        ("e", "e", "  priority: 4\n"),
    ];
    let spec = one_tier(
        &["a", "b", "c", "d", "e"],
        "fill-first",
        "  retry: {maxAttempts: 5, firstByteTimeout: 700ms}\n",
    );
    let env = Env::start(&accounts, &spec).await;
    let r = env.chat(&chat_body("gpt-test", true)).await;
    assert_eq!(r.status(), 200);
    let (content, _) = read_stream(r).await;
    assert_eq!(content, "mock reply from e");
    for label in ["a", "b", "c", "d", "e"] {
        assert_eq!(env.count(label), 1, "{label}");
    }
}

#[tokio::test]
async fn all_accounts_cooling_gives_429_with_the_earliest_retry_after() {
    let accounts = [
        ("a", "a?status=429&retry_after=30", ""),
        ("b", "b?status=429&retry_after=20", ""),
    ];
    let env = Env::start(&accounts, &one_tier(&["a", "b"], "round-robin", "")).await;
    let r = env.chat(&chat_body("gpt-test", false)).await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    openai_error(&body);
    let r = env.chat(&chat_body("gpt-test", false)).await;
    assert_eq!(r.status(), 429);
    let retry = retry_after_secs(&r);
    assert!(
        (19..=20).contains(&retry),
        "earliest is b's 20 s, got {retry}"
    );
    assert_eq!(
        env.mock.stats.total(),
        2,
        "cooled accounts are not called again"
    );
}

#[tokio::test]
async fn a_zero_remaining_header_rests_the_account_until_its_reset() {
    let accounts = [
        ("a", "a?remaining=0&reset=1500ms", "  priority: 0\n"),
        ("b", "b", "  priority: 1\n"),
    ];
    let env = Env::start(&accounts, &one_tier(&["a", "b"], "fill-first", "")).await;
    assert_eq!(env.served_by("gpt-test").await, "a");
    // the rest is recorded just after the answer; wait until it shows
    let resting = |m: String| {
        m.lines()
            .find(|l| l.starts_with("llmpool_account_cooldown_seconds{account=\"a\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .is_some_and(|v| v > 0.0)
    };
    eventually("a rests", || async { resting(env.metrics().await) }).await;
    assert_eq!(
        env.served_by("gpt-test").await,
        "b",
        "a said it had nothing left"
    );
    eventually("a's reset passes", || async {
        !resting(env.metrics().await)
    })
    .await;
    assert_eq!(env.served_by("gpt-test").await, "a");
}

#[tokio::test]
async fn auth_failures_block_the_account_and_never_echo_the_upstream_body() {
    let accounts = [
        ("a", "a?status=401", "  priority: 0\n"),
        ("b", "b", "  priority: 1\n"),
    ];
    let env = Env::start(&accounts, &one_tier(&["a", "b"], "fill-first", "")).await;
    for _ in 0..3 {
        assert_eq!(env.served_by("gpt-test").await, "b");
    }
    assert_eq!(env.count("a"), 1, "a is blocked after its 401");

    let alone = Env::start(
        &[("a", "a?status=403", "")],
        &one_tier(&["a"], "fill-first", "  retry: {rotateOn: [serverError]}\n"),
    )
    .await;
    let (status, body) = alone.ask("gpt-test").await;
    assert_eq!(status, 502);
    let message = openai_error(&body)["message"].as_str().unwrap();
    assert!(message.contains("account a was refused"), "{message}");
    assert!(
        !message.contains("(mock)"),
        "upstream auth bodies are not passed on: {message}"
    );
}

#[tokio::test]
async fn request_errors_are_passed_on_without_rotating() {
    let accounts = [
        ("a", "a?status=400", "  priority: 0\n"),
        ("b", "b", "  priority: 1\n"),
    ];
    let env = Env::start(&accounts, &one_tier(&["a", "b"], "fill-first", "")).await;
    let (status, body) = env.ask("gpt-test").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["message"], "Bad request (mock).");
    assert_eq!(env.count("b"), 0);
}

#[tokio::test]
async fn a_first_byte_delay_past_the_limit_rotates() {
    let accounts = [
        ("slow", "slow?first_byte_ms=3000", "  priority: 0\n"),
        ("b", "b", "  priority: 1\n"),
    ];
    let spec = one_tier(
        &["slow", "b"],
        "fill-first",
        "  retry: {firstByteTimeout: 500ms}\n",
    );
    let env = Env::start(&accounts, &spec).await;
    let started = std::time::Instant::now();
    let r = env.chat(&chat_body("gpt-test", true)).await;
    let (content, _) = read_stream(r).await;
    assert_eq!(content, "mock reply from b");
    assert_eq!(env.count("slow"), 1);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "did not wait for the slow account"
    );
}

#[tokio::test]
async fn cooldowns_are_capped_so_a_bogus_hint_cannot_lock_an_account_out() {
    let accounts = [
        (
            "a",
            "a?status=429&retry_after=86400&times=1",
            "  priority: 0\n",
        ),
        ("b", "b", "  priority: 1\n"),
    ];
    let env = Env::start(
        &accounts,
        &one_tier(
            &["a", "b"],
            "fill-first",
            "  cooldown: {default: 1s, max: 1s}\n",
        ),
    )
    .await;
    assert_eq!(env.served_by("gpt-test").await, "b");
    assert_eq!(env.served_by("gpt-test").await, "b");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        env.served_by("gpt-test").await,
        "a",
        "back after the 1 s cap, not a day"
    );
}

#[tokio::test]
async fn an_account_blocked_for_its_credentials_returns_when_the_key_changes() {
    let accounts = [
        ("a", "a?status=401", "  priority: 0\n"),
        ("b", "b", "  priority: 1\n"),
    ];
    let spec = one_tier(&["a", "b"], "fill-first", "");
    let env = Env::start(&accounts, &spec).await;
    assert_eq!(env.served_by("gpt-test").await, "b");
    assert_eq!(env.served_by("gpt-test").await, "b");
    assert_eq!(env.count("a"), 1);
    // the operator of the gateway fixes a's key
    write_config(
        &env.dir,
        &env.mock,
        &[("a", "a", "  priority: 0\n"), ("b", "b", "  priority: 1\n")],
        &spec,
    );
    env.wait_for_metric("llmpool_config_reloads_total{result=\"applied\"} 1")
        .await;
    assert_eq!(env.served_by("gpt-test").await, "a");
}
