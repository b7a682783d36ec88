//! Health, readiness, metrics, request ids and JSON logs.

use serde_json::Value;

use crate::common::*;

#[tokio::test]
async fn health_readiness_and_request_ids() {
    let env = Env::start(&[("a", "a", "")], &one_tier(&["a"], "round-robin", "")).await;
    let health = env
        .http
        .get(env.proxy.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = env.get_json("/readyz").await;
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["state"], "memory");
    assert_eq!(ready["routesReady"], 1);

    let r = env.chat(&chat_body("gpt-test", false)).await;
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 32);
    let r = env
        .http
        .post(env.proxy.url("/v1/chat/completions"))
        .header("x-request-id", "client-chosen-id")
        .json(&chat_body("nope", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "client-chosen-id");

    // logs are JSON lines carrying the request id
    eventually("request logged", || async {
        env.proxy
            .logs()
            .iter()
            .any(|l| l.contains("client-chosen-id"))
    })
    .await;
    for line in env
        .proxy
        .logs()
        .iter()
        .filter(|l| l.contains("client-chosen-id"))
    {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert_eq!(v["span"]["request_id"], "client-chosen-id", "{line}");
    }
}

#[tokio::test]
async fn metrics_describe_requests_attempts_latency_and_cooldowns() {
    let accounts = [
        ("a", "a?status=429&retry_after=60", "  priority: 0\n"),
        ("b", "b", "  priority: 1\n"),
    ];
    let env = Env::start(&accounts, &one_tier(&["a", "b"], "fill-first", "")).await;
    assert_eq!(env.served_by("gpt-test").await, "b");
    let r = env.chat(&chat_body("gpt-test", true)).await;
    read_stream(r).await;
    let m = env.metrics().await;
    for expected in [
        "llmpool_requests_total{account=\"b\",route=\"test\",status=\"200\"} 2",
        "llmpool_upstream_attempts_total{account=\"a\",outcome=\"rate_limited\",route=\"test\"} 1",
        "llmpool_upstream_attempts_total{account=\"b\",outcome=\"ok\",route=\"test\"} 2",
        "llmpool_upstream_duration_seconds_count{account=\"b\"} 2",
        "llmpool_upstream_first_byte_seconds_bucket{account=\"b\",le=\"+Inf\"} 2",
        "llmpool_account_in_flight{account=\"b\"} 0",
        "llmpool_account_blocked{account=\"a\"} 0",
        "llmpool_config_generation 1",
    ] {
        assert!(m.contains(expected), "missing `{expected}` in\n{m}");
    }
    let cooling = m
        .lines()
        .find(|l| l.starts_with("llmpool_account_cooldown_seconds{account=\"a\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
    assert!(cooling > 50.0 && cooling <= 60.0, "{cooling}");
    // the mock keys are this config's secrets: they never appear
    assert!(!m.contains("retry_after=60"));
    assert!(
        !env.proxy
            .logs_settled()
            .await
            .iter()
            .any(|l| l.contains("retry_after=60"))
    );
}
