//! The Responses API on a pool: a stored response lives on the account that
//! made it, so continuations must go there, from any replica.

use llmpool_e2e::harness::{self, ConfigDir, Process};
use llmpool_e2e::mock::MockProvider;
use llmpool_e2e::redis::RedisServer;
use serde_json::{Value, json};

use crate::common::eventually;

async fn create(http: &reqwest::Client, proxy: &Process, previous: Option<&str>) -> (u16, Value) {
    let mut body = json!({"model": "gpt-test", "input": "hi"});
    if let Some(p) = previous {
        body["previous_response_id"] = json!(p);
    }
    let r = http
        .post(proxy.url("/v1/responses"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn text(r: &Value) -> &str {
    r["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn continuations_follow_their_stored_response_across_replicas() {
    let mock = MockProvider::start().await.unwrap();
    let redis = RedisServer::start().unwrap();
    let dir = ConfigDir::new().unwrap();
    let accounts = harness::docs(&[
        harness::secret("keys", &[("a", "a"), ("b", "b"), ("c", "c")]),
        harness::provider_account("a", "openai", &mock.base_url(), "a", ""),
        harness::provider_account("b", "openai", &mock.base_url(), "b", ""),
        harness::provider_account("c", "openai", &mock.base_url(), "c", ""),
    ]);
    dir.write("accounts.yaml", &accounts).unwrap();
    dir.write(
        "route.yaml",
        &harness::route(
            "r",
            "  models: [gpt-test]\n  targets: [{accounts: {names: [a, b, c]}}]\n",
        ),
    )
    .unwrap();
    let url = redis.url();
    let proxies: Vec<Process> = (0..2)
        .map(|_| {
            Process::start(dir.path(), &["--redis", &url, "--redis-timeout", "1s"], &[]).unwrap()
        })
        .collect();
    let http = reqwest::Client::new();
    for p in &proxies {
        let ready = p.url("/readyz");
        eventually("replica connected to Redis", || {
            let (http, ready) = (http.clone(), ready.clone());
            async move {
                let r: Value = http.get(ready).send().await.unwrap().json().await.unwrap();
                r["stateDegraded"] == false
            }
        })
        .await;
    }

    let (status, first) = create(&http, &proxies[0], None).await;
    assert_eq!(status, 200, "{first}");
    let owner = text(&first)
        .trim_start_matches("mock reply from ")
        .to_owned();
    let mut previous = first["id"].as_str().unwrap().to_owned();
    // round-robin would spread these over a, b and c: each must go to the
    // owner (the mock answers 404 for a response it did not store)
    for i in 0..6 {
        let proxy = &proxies[i % 2];
        let (status, next) = create(&http, proxy, Some(&previous)).await;
        assert_eq!(status, 200, "continuation {i}: {next}");
        assert_eq!(text(&next), format!("mock reply from {owner}"));
        previous = next["id"].as_str().unwrap().to_owned();
    }
    assert_eq!(
        mock.stats.get(&owner).requests,
        7,
        "every continuation went to {owner}"
    );
    // meanwhile plain requests still spread over the pool
    let mut seen = std::collections::HashSet::new();
    for _ in 0..6 {
        let (_, r) = create(&http, &proxies[0], None).await;
        seen.insert(text(&r).to_owned());
    }
    assert_eq!(seen.len(), 3, "{seen:?}");

    // an id no replica has seen is refused clearly, not sent anywhere
    let (status, err) = create(&http, &proxies[1], Some("resp_unknown")).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["param"], "previous_response_id");
}
