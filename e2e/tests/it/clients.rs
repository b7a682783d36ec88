//! Client keys as LlmClient resources in local mode: each key is held to its
//! models, limits, expiry and disabled flag, is counted under its client's
//! name, and comes and goes with its resource without a restart.

use llmpool_e2e::harness::{self, ConfigDir, Process};
use llmpool_e2e::mock::MockProvider;
use serde_json::Value;

use crate::common::*;

const TEAM_A: &str = "sk-team-a-4f1c9e2b7d6a0c13";
const TEAM_B: &str = "sk-team-b-93ad0e7c51f2b864";
const TEAM_C: &str = "sk-team-c-0b7e5d21c9a4f386";
const TEAM_D: &str = "sk-team-d-6e2f8a0d4b1c7395";
const FLAT: &str = "sk-flat-list-5d9c1a7e3b20";

/// Accounts and two routes (gpt-test, other-test) served by account `a`.
fn serving(dir: &ConfigDir, mock: &MockProvider) {
    let accounts = harness::docs(&[
        harness::secret("keys", &[("a", "a")]),
        harness::account("a", &mock.base_url(), "a", ""),
    ]);
    dir.write("accounts.yaml", &accounts).unwrap();
    let routes = harness::docs(&[
        harness::route(
            "gpt",
            "  models: [gpt-test]\n  targets: [{accounts: {names: [a]}}]\n",
        ),
        harness::route(
            "other",
            "  models: [other-test]\n  targets: [{accounts: {names: [a]}}]\n",
        ),
    ]);
    dir.write("routes.yaml", &routes).unwrap();
}

async fn ask(http: &reqwest::Client, proxy: &Process, key: &str, model: &str) -> reqwest::Response {
    http.post(proxy.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat_body(model, false))
        .send()
        .await
        .unwrap()
}

async fn status_and_error(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    let e = openai_error(&body);
    let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
    (status, text("code"), text("message"))
}

#[tokio::test]
async fn each_client_key_is_held_to_its_models_limits_expiry_and_flag() {
    let mock = MockProvider::start().await.unwrap();
    let dir = ConfigDir::new().unwrap();
    serving(&dir, &mock);
    let clients = harness::docs(&[
        harness::secret(
            "client-keys",
            &[("a", TEAM_A), ("b", TEAM_B), ("c", TEAM_C), ("d", TEAM_D)],
        ),
        harness::client(
            "team-a",
            "client-keys",
            "a",
            "  models: [gpt-test]\n  limits: {requestsPerMinute: 3}\n",
        ),
        harness::client("team-b", "client-keys", "b", "  disabled: true\n"),
        harness::client(
            "team-c",
            "client-keys",
            "c",
            "  expiresAt: \"2020-01-01T00:00:00Z\"\n",
        ),
        harness::client("team-d", "client-keys", "d", ""),
    ]);
    dir.write("clients.yaml", &clients).unwrap();
    let proxy = Process::start(dir.path(), &[], &[("LLMPOOL_API_KEYS", FLAT)]).unwrap();
    let http = reqwest::Client::new();

    let ready = readyz(&http, &proxy).await;
    assert_eq!(ready["auth"], "clients", "{ready}");

    let none = http
        .post(proxy.url("/v1/chat/completions"))
        .json(&chat_body("gpt-test", false))
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_error(none).await.0, 401);
    let (status, code, _) =
        status_and_error(ask(&http, &proxy, "sk-unknown-000000000", "gpt-test").await).await;
    assert_eq!((status, code.as_str()), (401, "invalid_api_key"));
    let (status, code, message) =
        status_and_error(ask(&http, &proxy, TEAM_B, "gpt-test").await).await;
    assert_eq!(
        (status, code.as_str()),
        (401, "api_key_disabled"),
        "{message}"
    );
    assert!(message.contains("team-b"), "{message}");
    let (status, code, message) =
        status_and_error(ask(&http, &proxy, TEAM_C, "gpt-test").await).await;
    assert_eq!(
        (status, code.as_str()),
        (401, "api_key_expired"),
        "{message}"
    );

    let (status, code, message) =
        status_and_error(ask(&http, &proxy, TEAM_A, "other-test").await).await;
    assert_eq!((status, code.as_str()), (403, "model_not_allowed"));
    assert!(
        message.contains("other-test") && message.contains("team-a"),
        "{message}"
    );

    let listed = |key: &'static str| {
        let (http, url) = (http.clone(), proxy.url("/v1/models"));
        async move {
            let v: Value = http
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(TEAM_A).await, ["gpt-test"]);
    assert_eq!(listed(TEAM_D).await, ["gpt-test", "other-test"]);

    for _ in 0..3 {
        assert_eq!(ask(&http, &proxy, TEAM_A, "gpt-test").await.status(), 200);
    }
    let over = ask(&http, &proxy, TEAM_A, "gpt-test").await;
    assert!(retry_after_secs(&over) >= 1);
    let (status, code, message) = status_and_error(over).await;
    assert_eq!(
        (status, code.as_str()),
        (429, "client_rate_limit_exceeded"),
        "{message}"
    );
    // team-a's window is its own: team-d and the flat-list key still pass
    assert_eq!(ask(&http, &proxy, TEAM_D, "gpt-test").await.status(), 200);
    assert_eq!(ask(&http, &proxy, FLAT, "other-test").await.status(), 200);
    assert_eq!(
        mock.stats.get("a").requests,
        5,
        "refused requests never reach the provider"
    );

    let metrics = metrics_of(&http, &proxy).await;
    for line in [
        // three chats and the model listing
        "llmpool_client_requests_total{client=\"team-a\",status=\"200\"} 4",
        "llmpool_client_requests_total{client=\"team-a\",status=\"429\"} 1",
        "llmpool_client_requests_total{client=\"team-a\",status=\"403\"} 1",
        "llmpool_client_requests_total{client=\"team-b\",status=\"401\"} 1",
        "llmpool_client_usage{client=\"team-a\",window=\"requests_last_minute\"} 3",
        "llmpool_client_limit{client=\"team-a\",limit=\"requests_per_minute\"} 3",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    assert!(
        metrics.contains("llmpool_client_tokens_total{client=\"team-a\",kind=\"input\"}"),
        "{metrics}"
    );
    let everything = format!("{metrics}\n{}", proxy.logs_settled().await.join("\n"));
    for key in [TEAM_A, TEAM_B, TEAM_C, TEAM_D, FLAT] {
        assert!(
            !everything.contains(key),
            "a client key reached the logs or metrics"
        );
    }
}

#[tokio::test]
async fn a_client_added_or_deleted_takes_effect_without_a_restart() {
    let mock = MockProvider::start().await.unwrap();
    let dir = ConfigDir::new().unwrap();
    serving(&dir, &mock);
    let file = |name: &str, key: &str| {
        harness::docs(&[
            harness::secret(&format!("{name}-key"), &[("key", key)]),
            harness::client(name, &format!("{name}-key"), "key", ""),
        ])
    };
    dir.write("team-a.yaml", &file("team-a", TEAM_A)).unwrap();
    let proxy = Process::start(dir.path(), &[], &[]).unwrap();
    let http = reqwest::Client::new();
    assert_eq!(ask(&http, &proxy, TEAM_A, "gpt-test").await.status(), 200);
    assert_eq!(ask(&http, &proxy, TEAM_D, "gpt-test").await.status(), 401);

    dir.write("team-d.yaml", &file("team-d", TEAM_D)).unwrap();
    eventually("the new client's key is accepted", || async {
        ask(&http, &proxy, TEAM_D, "gpt-test").await.status() == 200
    })
    .await;

    std::fs::remove_file(dir.path().join("team-a.yaml")).unwrap();
    eventually("the deleted client's key is refused", || async {
        ask(&http, &proxy, TEAM_A, "gpt-test").await.status() == 401
    })
    .await;
    assert_eq!(ask(&http, &proxy, TEAM_D, "gpt-test").await.status(), 200);

    // with no client and no flat list left, the gateway is open and says so
    std::fs::remove_file(dir.path().join("team-d.yaml")).unwrap();
    eventually("the gateway opens", || async {
        readyz(&http, &proxy).await["auth"] == "open"
    })
    .await;
    assert!(
        proxy
            .logs_settled()
            .await
            .iter()
            .any(|l| l.contains("the gateway is open")),
        "opening is logged"
    );
}
