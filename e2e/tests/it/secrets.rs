//! Secret hygiene at debug level: the proxy and the operator run with
//! `debug` logging through traffic that touches every credential they hold
//! (provider keys, a key an upstream echoes back, client keys flat and
//! named, a wrong client key, the Redis password, an OAuth refresh token
//! and client secret a token endpoint echoes in its refusal), and nothing
//! they print or serve may contain any of them.

use std::time::Duration;

use axum::routing::post;
use base64::Engine;
use llmpool_e2e::harness::{self, ConfigDir, Process};
use llmpool_e2e::kubeapi::FakeApiServer;
use llmpool_e2e::mock::MockProvider;
use llmpool_e2e::redis::RedisServer;
use serde_json::{Value, json};

use crate::common::*;

const PROVIDER_KEY: &str = "sk-live-4b9e2d71c05a8f36";
const ECHOED_KEY: &str = "sk-live-e17a3c5b90d24f68";
const FLAT_KEY: &str = "sk-flat-0d6c8a2e4f1b3957";
const CLIENT_KEY: &str = "sk-team-93b1f7d05e2c4a68";
const WRONG_KEY: &str = "sk-wrong-5a0e7c3b9d1f2468";
const REDIS_PASSWORD: &str = "redis-pass-7c2e9a4b1d";
const REFRESH_TOKEN: &str = "rt-8f1d3b6a0c9e2745";
const CLIENT_SECRET: &str = "cs-2a7e5c9b0d4f1836";

const ALL: [&str; 8] = [
    PROVIDER_KEY,
    ECHOED_KEY,
    FLAT_KEY,
    CLIENT_KEY,
    WRONG_KEY,
    REDIS_PASSWORD,
    REFRESH_TOKEN,
    CLIENT_SECRET,
];

fn assert_clean(what: &str, text: &str) {
    for secret in ALL {
        assert!(
            !text.contains(secret),
            "{what} contains a credential ({} chars in)",
            text.find(secret).unwrap_or(0)
        );
    }
}

/// A Redis that needs user `llmpool` and the password.
fn redis_with_password(dir: &std::path::Path) -> RedisServer {
    let acl = dir.join("users.acl");
    std::fs::write(
        &acl,
        format!("user llmpool on >{REDIS_PASSWORD} ~* &* +@all\nuser default off\n"),
    )
    .unwrap();
    RedisServer::start_with(&["--aclfile".into(), acl.display().to_string()]).unwrap()
}

#[tokio::test]
async fn no_credential_reaches_the_proxys_debug_logs_metrics_or_answers() {
    let mock = MockProvider::start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let redis = redis_with_password(tmp.path());
    let dir = ConfigDir::new().unwrap();
    let good = format!("good?secret={PROVIDER_KEY}");
    let echo = format!("echo?status=401&echo_key=1&secret={ECHOED_KEY}");
    let config = harness::docs(&[
        harness::secret("keys", &[("good", good.as_str()), ("echo", echo.as_str())]),
        harness::account("good", &mock.base_url(), "good", "  priority: 1\n"),
        harness::account("echo", &mock.base_url(), "echo", "  priority: 0\n"),
        harness::route(
            "test",
            "  models: [gpt-test]\n  strategy: fill-first\n  targets: [{accounts: {names: [echo, good]}}]\n",
        ),
        harness::route(
            "only-echo",
            "  models: [echo-test]\n  targets: [{accounts: {names: [echo]}}]\n",
        ),
        harness::secret("client-keys", &[("team", CLIENT_KEY)]),
        harness::client(
            "team",
            "client-keys",
            "team",
            "  limits: {requestsPerMinute: 1000}\n",
        ),
    ]);
    dir.write("config.yaml", &config).unwrap();
    let redis_url = format!("redis://llmpool:{REDIS_PASSWORD}@127.0.0.1:{}", redis.port);
    let proxy = Process::start(
        dir.path(),
        &["--redis", &redis_url],
        &[("LLMPOOL_LOG", "debug"), ("LLMPOOL_API_KEYS", FLAT_KEY)],
    )
    .unwrap_or_else(|f| panic!("{f:?}"));
    let http = reqwest::Client::new();
    let mut served = String::new();
    let chat = |key: &'static str, model: &'static str, stream: bool| {
        http.post(proxy.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&chat_body(model, stream))
            .send()
    };
    for (key, model, stream) in [
        (CLIENT_KEY, "gpt-test", false),
        (CLIENT_KEY, "gpt-test", true),
        (FLAT_KEY, "gpt-test", false),
        (FLAT_KEY, "echo-test", false),
        (CLIENT_KEY, "echo-test", true),
        (WRONG_KEY, "gpt-test", false),
    ] {
        let r = chat(key, model, stream).await.unwrap();
        served.push_str(&format!("{:?}\n", r.headers()));
        served.push_str(&r.text().await.unwrap());
    }
    // the other protocols, with the key where their SDKs put it
    let anthropic = http
        .post(proxy.url("/v1/messages"))
        .header("x-api-key", CLIENT_KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "echo-test", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    served.push_str(&anthropic.text().await.unwrap());
    let gemini = http
        .post(proxy.url(&format!(
            "/v1beta/models/gpt-test:generateContent?key={CLIENT_KEY}"
        )))
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}))
        .send()
        .await
        .unwrap();
    served.push_str(&gemini.text().await.unwrap());
    for path in ["/v1/models", "/readyz", "/metrics"] {
        let r = http
            .get(proxy.url(path))
            .bearer_auth(FLAT_KEY)
            .send()
            .await
            .unwrap();
        served.push_str(&r.text().await.unwrap());
    }
    // its 401 blocks the account after the first call
    assert!(
        mock.stats.get("echo").requests >= 1,
        "the echoing upstream was called"
    );
    assert!(
        served.contains("mock reply from good"),
        "traffic was served"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = proxy.logs().join("\n");
    assert!(
        logs.contains("DEBUG") || logs.contains("\"debug\""),
        "debug logging was on"
    );
    assert_clean("what the proxy served", &served);
    assert_clean("the proxy's debug logs", &logs);
}

/// A token endpoint that refuses every refresh, quoting what it was sent.
async fn refusing_token_endpoint() -> String {
    let app = axum::Router::new().route(
        "/token",
        post(|body: String| async move {
            (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_grant", "error_description": format!("refused: {body}")})),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn no_credential_reaches_the_operators_debug_logs_metrics_status_or_events() {
    let ns = "team-a";
    let tmp = tempfile::tempdir().unwrap();
    let redis = redis_with_password(tmp.path());
    let api = FakeApiServer::start().await.unwrap();
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    api.apply(
        "secrets",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys", "namespace": ns},
               "data": {"key": b64(PROVIDER_KEY), "refresh": b64(REFRESH_TOKEN), "secret": b64(CLIENT_SECRET),
                        "client": b64(CLIENT_KEY)}}),
    );
    api.apply(
        "llmaccounts",
        json!({"apiVersion": "llmpool.dev/v1alpha1", "kind": "LlmAccount",
               "metadata": {"name": "static", "namespace": ns},
               "spec": {"provider": "openai", "credentials": {"secretRef": {"name": "keys", "key": "key"}}}}),
    );
    let token_url = refusing_token_endpoint().await;
    api.apply(
        "llmaccounts",
        json!({"apiVersion": "llmpool.dev/v1alpha1", "kind": "LlmAccount",
               "metadata": {"name": "oauth", "namespace": ns},
               "spec": {"provider": "openai", "credentials": {"oauth": {
                   "tokenUrl": token_url, "clientId": "llmpool",
                   "clientSecretRef": {"name": "keys", "key": "secret"},
                   "refreshTokenRef": {"name": "keys", "key": "refresh"}}}}}),
    );
    api.apply(
        "modelroutes",
        json!({"apiVersion": "llmpool.dev/v1alpha1", "kind": "ModelRoute",
               "metadata": {"name": "r", "namespace": ns},
               "spec": {"models": ["m"], "targets": [{"accounts": {"names": ["static", "oauth"]}}]}}),
    );
    api.apply(
        "llmclients",
        json!({"apiVersion": "llmpool.dev/v1alpha1", "kind": "LlmClient",
               "metadata": {"name": "team", "namespace": ns},
               "spec": {"keySecretRef": {"name": "keys", "key": "client"}}}),
    );
    let kubeconfig = api
        .kubeconfig(tmp.path(), ns)
        .unwrap()
        .display()
        .to_string();
    let redis_url = format!("redis://llmpool:{REDIS_PASSWORD}@127.0.0.1:{}", redis.port);
    let operator = Process::operator(
        &[
            "--namespace",
            ns,
            "--redis",
            &redis_url,
            "--health-interval",
            "300ms",
        ],
        &[
            ("KUBECONFIG", kubeconfig.as_str()),
            ("LLMPOOL_LOG", "debug"),
        ],
    )
    .unwrap_or_else(|f| panic!("{f:?}"));
    let http = reqwest::Client::new();
    eventually("the OAuth refusal is in the account's status", || async {
        api.get("llmaccounts", ns, "oauth")
            .is_some_and(|a| a["status"]["oauth"]["failures"].as_i64().unwrap_or(0) > 0)
    })
    .await;
    eventually("the client is reconciled", || async {
        api.get("llmclients", ns, "team")
            .is_some_and(|c| c["status"]["conditions"][0]["status"] == "True")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;

    let mut seen = operator.logs().join("\n");
    assert!(
        seen.contains("DEBUG") || seen.contains("\"debug\""),
        "debug logging was on"
    );
    seen.push_str(&metrics_of(&http, &operator).await);
    for kind in ["llmaccounts", "modelroutes", "llmclients", "events"] {
        for object in api.list(kind, ns) {
            seen.push_str(&object.to_string());
        }
    }
    let routes: Value = api.get("configmaps", ns, "llmpool-routes").unwrap();
    seen.push_str(&routes.to_string());
    assert_clean(
        "the operator's logs, metrics, status, events and ConfigMap",
        &seen,
    );
}
