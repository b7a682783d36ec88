//! Commit point, relay and lease release.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use llmpool_crds::manifest::Resources;
use llmpool_e2e::harness;
use llmpool_e2e::mock::MockProvider;
use llmpool_proxy::app::{App, Buffers, Settings};
use llmpool_proxy::clients::ClientKeys;
use llmpool_proxy::ingress;
use llmpool_proxy::metrics::Metrics;
use llmpool_proxy::snapshot::{Shared, Snapshot, SnapshotStore};
use llmpool_proxy::state::{Clock, MemoryStore};
use serde_json::{Value, json};
use tower::ServiceExt;

/// An app over `accounts` (name, mock key, provider) in one fill-first tier
/// serving model `m`.
fn app(mock: &MockProvider, accounts: &[(&str, &str, &str)], route_extra: &str) -> Arc<App> {
    let mut parts = vec![harness::secret(
        "keys",
        &accounts
            .iter()
            .map(|(n, k, _)| (*n, *k))
            .collect::<Vec<_>>(),
    )];
    for (name, _, provider) in accounts {
        let url = match *provider {
            "anthropic" | "gemini" => mock.root_url(),
            _ => mock.base_url(),
        };
        parts.push(harness::provider_account(name, provider, &url, name, ""));
    }
    let names: Vec<&str> = accounts.iter().map(|(n, _, _)| *n).collect();
    parts.push(harness::route(
        "r",
        &format!(
            "  models: [m]\n  strategy: fill-first\n  targets: [{{accounts: {{names: [{}]}}}}]\n{route_extra}",
            names.join(", ")
        ),
    ));
    let mut resources = Resources::default();
    resources.add_yaml(&harness::docs(&parts), "config.yaml");
    let compiled = resources.compile();
    assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics);
    let shared = Shared::default();
    let snapshot = Snapshot::build(&compiled, "ns", 1, &shared);
    let app = App::new(
        SnapshotStore::new(snapshot),
        shared,
        Arc::new(MemoryStore::new(1000, Clock::system())),
        Metrics::new().unwrap(),
        Settings {
            max_body_bytes: 1 << 20,
            body_timeout: Duration::from_secs(60),
            max_json_depth: 64,
            max_json_elements: 10_000,
            max_streams: 10_000,
            buffers: Buffers {
                response: 1 << 24,
                stream_event: 1 << 20,
            },
            client_keys: ClientKeys::default(),
            response_ttl: Duration::from_secs(3600),
        },
    );
    app.mark_loaded();
    Arc::new(app)
}

fn messages(stream: bool) -> Request<Body> {
    Request::post("/v1/messages")
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .body(Body::from(
            json!({"model": "m", "max_tokens": 50, "stream": stream,
                "messages": [{"role": "user", "content": "hi"}]})
            .to_string(),
        ))
        .unwrap()
}

/// The text deltas of an Anthropic stream, joined.
fn streamed_text(sse: &str) -> String {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v.pointer("/delta/text")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

/// Requests in flight per account, from the store.
async fn in_flight(app: &App, accounts: &[&str]) -> Vec<u64> {
    let names: Vec<Arc<str>> = accounts.iter().map(|a| Arc::from(*a)).collect();
    app.store
        .view("ns", &names)
        .await
        .unwrap()
        .iter()
        .map(|v| v.in_flight)
        .collect()
}

/// Waits (briefly) until every lease is back.
async fn leases_released(app: &App, accounts: &[&str]) {
    for _ in 0..100 {
        if in_flight(app, accounts).await.iter().all(|n| *n == 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("leases still held: {:?}", in_flight(app, accounts).await);
}

#[tokio::test]
async fn a_stream_that_fails_before_content_moves_on_and_returns_its_lease() {
    let mock = MockProvider::start().await.unwrap();
    let app = app(
        &mock,
        &[
            ("bad", "bad?fault=error_event", "anthropic"),
            ("good", "good", "gemini"),
        ],
        "",
    );
    let response = ingress::router(app.clone())
        .oneshot(messages(true))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert_eq!(streamed_text(&text), "mock reply from good", "{text}");
    assert!(
        text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        "{text}"
    );
    assert_eq!(mock.stats.get("bad").requests, 1);
    leases_released(&app, &["bad", "good"]).await;
}

#[tokio::test]
async fn after_the_commit_point_a_failure_ends_the_stream_and_returns_the_lease() {
    let mock = MockProvider::start().await.unwrap();
    let app = app(
        &mock,
        &[("cut", "cut?fault=cut&after=1&chunks=4", "openai-compatible")],
        "",
    );
    let response = ingress::router(app.clone())
        .oneshot(messages(true))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains("\"text\":\"mock\""), "{text}");
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("message_stop"), "{text}");
    // once committed, nothing is retried
    assert_eq!(mock.stats.total(), 1);
    leases_released(&app, &["cut"]).await;
}

#[tokio::test]
async fn a_client_that_goes_away_mid_stream_returns_the_lease() {
    let mock = MockProvider::start().await.unwrap();
    let app = app(
        &mock,
        &[("slow", "slow?chunks=20&chunk_ms=50", "gemini")],
        "",
    );
    let response = ingress::router(app.clone())
        .oneshot(messages(true))
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    assert_eq!(in_flight(&app, &["slow"]).await, [1]);
    drop(body);
    leases_released(&app, &["slow"]).await;
}

#[tokio::test(start_paused = true)]
async fn a_hanging_account_times_out_at_first_byte_and_the_next_one_serves() {
    let mock = MockProvider::start().await.unwrap();
    let app = app(
        &mock,
        &[
            ("hang", "hang?fault=hang", "anthropic"),
            ("ok", "ok", "openai-compatible"),
        ],
        "  retry: {firstByteTimeout: 30s}\n",
    );
    let started = tokio::time::Instant::now();
    let response = ingress::router(app.clone())
        .oneshot(messages(false))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["content"][0]["text"], "mock reply from ok", "{body}");
    // the paused clock jumped the 30 s wait instead of sleeping through it
    assert!(started.elapsed() >= Duration::from_secs(30));
    leases_released(&app, &["hang", "ok"]).await;
}
