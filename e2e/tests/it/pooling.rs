//! Account pooling inside a tier: strategies and limits, seen at the mock.

use std::collections::HashMap;

use futures_util::future::join_all;
use serde_json::Value;

use crate::common::*;

#[tokio::test]
async fn completions_pass_through_with_only_the_model_rewritten() {
    let spec = "  models: [gpt-test]\n  targets:\n    - accounts: {names: [a]}\n      model: upstream-model\n";
    let env = Env::start(&[("a", "a", "")], spec).await;
    let (status, body) = env.ask("gpt-test").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(reply_label(&body), "a");
    // the upstream saw the tier's model; the body came back untouched
    assert_eq!(
        env.mock.stats.get("a").last_model.as_deref(),
        Some("upstream-model")
    );
    assert_eq!(body["model"], "upstream-model");
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn streams_pass_through_to_done() {
    let env = Env::start(
        &[("a", "a?chunks=4", "")],
        &one_tier(&["a"], "round-robin", ""),
    )
    .await;
    let r = env.chat(&chat_body("gpt-test", true)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let (content, payloads) = read_stream(r).await;
    assert_eq!(content, "mock reply from a");
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn round_robin_follows_weights() {
    let accounts = [("a", "a", "  weight: 3\n"), ("b", "b", "")];
    let env = Env::start(&accounts, &one_tier(&["a", "b"], "round-robin", "")).await;
    let mut served: HashMap<String, u32> = HashMap::new();
    for _ in 0..8 {
        *served.entry(env.served_by("gpt-test").await).or_default() += 1;
    }
    assert_eq!(served.get("a"), Some(&6), "{served:?}");
    assert_eq!(served.get("b"), Some(&2), "{served:?}");
}

#[tokio::test]
async fn fill_first_uses_the_lowest_priority_until_it_is_full() {
    let accounts = [
        (
            "low",
            "low?latency_ms=400",
            "  priority: 0\n  limits: {maxConcurrency: 1}\n",
        ),
        ("high", "high", "  priority: 5\n"),
    ];
    let env = Env::start(&accounts, &one_tier(&["high", "low"], "fill-first", "")).await;
    for _ in 0..3 {
        assert_eq!(env.served_by("gpt-test").await, "low");
    }
    // two at once: the second overflows to the next priority
    let both = join_all([env.ask("gpt-test"), env.ask("gpt-test")]).await;
    let mut labels: Vec<String> = both.iter().map(|(_, b)| reply_label(b)).collect();
    labels.sort();
    assert_eq!(labels, ["high", "low"]);
}

#[tokio::test]
async fn sticky_sessions_stay_on_their_account() {
    let accounts = [("a", "a", ""), ("b", "b", ""), ("c", "c", "")];
    let env = Env::start(
        &accounts,
        &one_tier(&["a", "b", "c"], "sticky", "  session: {ttl: 1m}\n"),
    )
    .await;
    let mut first_by_session = HashMap::new();
    for round in 0..4 {
        for session in ["s1", "s2", "s3"] {
            let r = env
                .http
                .post(env.proxy.url("/v1/chat/completions"))
                .header("x-session-id", session)
                .json(&chat_body("gpt-test", false))
                .send()
                .await
                .unwrap();
            let label = reply_label(&r.json::<Value>().await.unwrap());
            let first = first_by_session
                .entry(session)
                .or_insert_with(|| label.clone());
            assert_eq!(*first, label, "session {session} moved in round {round}");
        }
    }
    // a session key from the body (prompt_cache_key) sticks too
    let mut body = chat_body("gpt-test", false);
    body["prompt_cache_key"] = "conversation-9".into();
    let first = reply_label(&env.chat(&body).await.json().await.unwrap());
    for _ in 0..4 {
        assert_eq!(
            reply_label(&env.chat(&body).await.json().await.unwrap()),
            first
        );
    }
}

#[tokio::test]
async fn max_concurrency_is_never_exceeded_and_overflow_gets_429() {
    let accounts = [("a", "a?latency_ms=300", "  limits: {maxConcurrency: 2}\n")];
    let env = Env::start(&accounts, &one_tier(&["a"], "round-robin", "")).await;
    let body = chat_body("gpt-test", false);
    let results = join_all((0..6).map(|_| env.chat(&body))).await;
    let ok = results.iter().filter(|r| r.status() == 200).count();
    let busy: Vec<_> = results.iter().filter(|r| r.status() == 429).collect();
    assert_eq!(env.mock.stats.get("a").max_in_flight, 2);
    assert_eq!(ok, 2);
    assert_eq!(busy.len(), 4);
    assert!(busy.iter().all(|r| r.headers().contains_key("retry-after")));
}

#[tokio::test]
async fn requests_per_minute_is_enforced_with_a_retry_hint() {
    let accounts = [("a", "a", "  limits: {requestsPerMinute: 3}\n")];
    let env = Env::start(&accounts, &one_tier(&["a"], "round-robin", "")).await;
    for _ in 0..3 {
        assert_eq!(env.ask("gpt-test").await.0, 200);
    }
    let r = env.chat(&chat_body("gpt-test", false)).await;
    assert_eq!(r.status(), 429);
    let retry = retry_after_secs(&r);
    assert!((55..=60).contains(&retry), "retry-after {retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(openai_error(&body)["code"], "rate_limit_exceeded");
    assert_eq!(
        env.count("a"),
        3,
        "the limited request never reached the provider"
    );
}
