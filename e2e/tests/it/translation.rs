//! Clients of one protocol served by accounts of another, over real
//! processes: fallback across providers mid-conversation with thinking,
//! Gemini's streamed JSON array, errors in each client's shape, and
//! failures before and after the first byte of a translated stream.

use std::time::Duration;

use llmpool_e2e::harness::{self, ConfigDir, Process};
use llmpool_e2e::mock::MockProvider;
use serde_json::{Value, json};

/// Writes accounts `an` (Anthropic, key `an_key`) and `ge` (Gemini) and a
/// route `claude-x`: tier 1 `an`, tier 2 `ge` as `gemini-x`.
fn fallback_config(dir: &ConfigDir, mock: &MockProvider, an_key: &str) {
    let accounts = harness::docs(&[
        harness::secret("keys", &[("an", an_key), ("ge", "ge")]),
        harness::provider_account("an", "anthropic", &mock.root_url(), "an", ""),
        harness::provider_account("ge", "gemini", &mock.root_url(), "ge", ""),
    ]);
    dir.write("accounts.yaml", &accounts).unwrap();
    let route = harness::route(
        "claude",
        "  models: [claude-x]\n  targets:\n    - accounts: {names: [an]}\n    - accounts: {names: [ge]}\n      model: gemini-x\n",
    );
    dir.write("routes.yaml", &route).unwrap();
}

fn tools() -> Value {
    json!([{"name": "get_weather", "description": "Weather", "input_schema": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
}

async fn messages(http: &reqwest::Client, proxy: &Process, history: &Value) -> (u16, Value) {
    let r = http
        .post(proxy.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({
            "model": "claude-x", "max_tokens": 4096, "messages": history, "tools": tools(),
            "thinking": {"type": "enabled", "budget_tokens": 2048}
        }))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn text_of(message: &Value) -> String {
    message["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["text"].as_str())
        .collect()
}

fn tool_use_id(message: &Value) -> String {
    message["content"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b["type"] == "tool_use")
        .and_then(|b| b["id"].as_str())
        .unwrap_or_else(|| panic!("no tool_use in {message}"))
        .to_owned()
}

async fn reload(dir: &ConfigDir, mock: &MockProvider, an_key: &str) {
    fallback_config(dir, mock, an_key);
    // the proxy polls every 200 ms
    tokio::time::sleep(Duration::from_millis(700)).await;
}

#[tokio::test]
async fn an_anthropic_thinking_conversation_moves_to_gemini_and_back() {
    let mock = MockProvider::start().await.unwrap();
    let dir = ConfigDir::new().unwrap();
    fallback_config(&dir, &mock, "an");
    let proxy = Process::start(dir.path(), &[], &[]).unwrap();
    let http = reqwest::Client::new();
    let user = json!({"role": "user", "content": "Weather in Paris?"});

    // turn 1 on Anthropic: signed thinking and a tool call
    let (status, first) = messages(&http, &proxy, &json!([user])).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["content"][0]["type"], "thinking", "{first}");
    let mut history = vec![
        user.clone(),
        json!({"role": "assistant", "content": first["content"]}),
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use_id(&first), "content": "sunny"}]}),
    ];

    // Anthropic is rate limited: the tool loop continues on Gemini with the
    // Anthropic history, its signed thinking dropped rather than refused
    reload(&dir, &mock, "an?status=429&retry_after=1").await;
    let (status, second) = messages(&http, &proxy, &json!(history)).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(text_of(&second), "mock reply from ge after tools: sunny");
    assert!(
        !mock
            .stats
            .get("ge")
            .last_body
            .unwrap()
            .to_string()
            .contains("asig"),
        "Anthropic's signature reached Gemini"
    );

    // a new tool loop on Gemini: Gemini's thinking and signed call come back
    // to the client tagged
    history.push(json!({"role": "assistant", "content": second["content"]}));
    history.push(json!({"role": "user", "content": "And tomorrow?"}));
    let (status, third) = messages(&http, &proxy, &json!(history)).await;
    assert_eq!(status, 200, "{third}");
    let thinking = &third["content"][0];
    assert_eq!(thinking["type"], "thinking", "{third}");
    assert!(
        thinking["signature"].as_str().unwrap().starts_with("LPs1"),
        "{third}"
    );
    history.push(json!({"role": "assistant", "content": third["content"]}));
    history.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use_id(&third), "content": "rain"}]}));

    // Anthropic is back: the Gemini-signed thinking is dropped, thinking is
    // off for this turn (its rule cannot be met), and Anthropic answers
    reload(&dir, &mock, "an").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, fourth) = messages(&http, &proxy, &json!(history)).await;
    assert_eq!(status, 200, "{fourth}");
    assert_eq!(text_of(&fourth), "mock reply from an after tools: rain");
    let seen = mock.stats.get("an").last_body.unwrap();
    assert!(
        seen.get("thinking").is_none(),
        "thinking should be off: {seen}"
    );
    assert!(
        !seen.to_string().contains("LPs1"),
        "a foreign signature reached Anthropic: {seen}"
    );
}

fn gemini_config(dir: &ConfigDir, mock: &MockProvider, keys: &[(&str, &str, &str)]) {
    let mut parts = vec![harness::secret(
        "keys",
        &keys.iter().map(|(n, k, _)| (*n, *k)).collect::<Vec<_>>(),
    )];
    for (name, _, provider) in keys {
        let url = if *provider == "openai-compatible" {
            mock.base_url()
        } else {
            mock.root_url()
        };
        parts.push(harness::provider_account(name, provider, &url, name, ""));
    }
    dir.write("accounts.yaml", &harness::docs(&parts)).unwrap();
    let names: Vec<&str> = keys.iter().map(|(n, _, _)| *n).collect();
    let route = harness::route(
        "r",
        &format!(
            "  models: [m]\n  strategy: fill-first\n  targets:\n{}",
            names
                .iter()
                .map(|n| format!("    - accounts: {{names: [{n}]}}\n"))
                .collect::<String>()
        ),
    );
    dir.write("routes.yaml", &route).unwrap();
}

#[tokio::test]
async fn gemini_streams_without_sse_are_one_json_array() {
    for provider in ["gemini", "anthropic", "openai-compatible"] {
        let mock = MockProvider::start().await.unwrap();
        let dir = ConfigDir::new().unwrap();
        gemini_config(&dir, &mock, &[("a", "a?chunks=3", provider)]);
        let proxy = Process::start(dir.path(), &[], &[]).unwrap();
        let r = reqwest::Client::new()
            .post(proxy.url("/v1beta/models/m:streamGenerateContent"))
            .json(&json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        let chunks: Vec<Value> = r.json().await.expect("a JSON array");
        let text: String = chunks
            .iter()
            .flat_map(|c| {
                c["candidates"][0]["content"]["parts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|p| p["text"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(text, "mock reply from a", "{provider}: {chunks:?}");
        assert!(chunks.last().unwrap()["usageMetadata"]["totalTokenCount"].as_u64() > Some(0));
    }
}

#[tokio::test]
async fn errors_come_in_the_clients_own_shape() {
    let mock = MockProvider::start().await.unwrap();
    let dir = ConfigDir::new().unwrap();
    gemini_config(&dir, &mock, &[("a", "a", "openai-compatible")]);
    let proxy = Process::start(dir.path(), &[], &[("LLMPOOL_API_KEYS", "good")]).unwrap();
    let http = reqwest::Client::new();

    let r = http
        .post(proxy.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(
            &json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error", "{body}");

    let r = http
        .post(proxy.url("/v1beta/models/m:generateContent?key=wrong"))
        .json(&json!({"contents": [{"parts": [{"text": "x"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED", "{body}");
    assert_eq!(body["error"]["code"], 401);

    // the key in ?key= is accepted and never logged
    let r = http
        .post(proxy.url("/v1beta/models/m:generateContent?key=good"))
        .json(&json!({"contents": [{"parts": [{"text": "x"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["candidates"][0]["content"]["parts"][0]["text"],
        "mock reply from a"
    );
    assert!(
        !proxy.logs_settled().await.join("\n").contains("good"),
        "a client key was logged"
    );

    // a missing max_tokens is named, in Anthropic's shape
    let r = http
        .post(proxy.url("/v1/messages"))
        .header("x-api-key", "good")
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens")
    );

    // models are listed in the shape of the client's API
    let anthropic: Value = http
        .get(proxy.url("/v1/models"))
        .header("x-api-key", "good")
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(anthropic["data"][0]["type"], "model", "{anthropic}");
    let gemini: Value = http
        .get(proxy.url("/v1beta/models?key=good"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(gemini["models"][0]["name"], "models/m", "{gemini}");
}

async fn anthropic_stream(proxy: &Process) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(proxy.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "m", "max_tokens": 50, "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn a_translated_stream_rotates_before_content_and_ends_with_an_error_event_after() {
    // an OpenAI account whose stream opens with an error: the Anthropic
    // client is served by the next account, translated
    let mock = MockProvider::start().await.unwrap();
    let dir = ConfigDir::new().unwrap();
    gemini_config(
        &dir,
        &mock,
        &[
            ("bad", "bad?fault=error_event", "openai-compatible"),
            ("ge", "ge", "gemini"),
        ],
    );
    let proxy = Process::start(dir.path(), &[], &[]).unwrap();
    let (status, text) = anthropic_stream(&proxy).await;
    assert_eq!(status, 200);
    assert!(text.contains("event: message_stop"), "{text}");
    assert!(text.contains("mock reply"), "{text}");
    assert_eq!(mock.stats.get("bad").requests, 1);

    // a Gemini account whose stream breaks after the first content: the
    // client gets Anthropic's error event
    let mock = MockProvider::start().await.unwrap();
    let dir = ConfigDir::new().unwrap();
    gemini_config(&dir, &mock, &[("cut", "cut?fault=cut&after=1", "gemini")]);
    let proxy = Process::start(dir.path(), &[], &[]).unwrap();
    let (status, text) = anthropic_stream(&proxy).await;
    assert_eq!(status, 200);
    assert!(text.contains("\"text\":\"mock reply\""), "{text}");
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("message_stop"), "{text}");
}

/// A proxy over `accounts` (name, mock key, provider) in one round-robin
/// tier serving model `m`, with `cooldown.max` of two minutes.
fn pool(mock: &MockProvider, dir: &ConfigDir, accounts: &[(&str, &str, &str)], strategy: &str) {
    let mut parts = vec![harness::secret(
        "keys",
        &accounts
            .iter()
            .map(|(n, k, _)| (*n, *k))
            .collect::<Vec<_>>(),
    )];
    for (name, _, provider) in accounts {
        let url = if *provider == "anthropic" || *provider == "gemini" {
            mock.root_url()
        } else {
            mock.base_url()
        };
        parts.push(harness::provider_account(name, provider, &url, name, ""));
    }
    dir.write("accounts.yaml", &harness::docs(&parts)).unwrap();
    let names: Vec<&str> = accounts.iter().map(|(n, _, _)| *n).collect();
    dir.write(
        "routes.yaml",
        &harness::route(
            "r",
            &format!(
                "  models: [m]\n  strategy: {strategy}\n  cooldown: {{max: 2m}}\n  retry: {{maxAttempts: 5}}\n  targets: [{{accounts: {{names: [{}]}}}}]\n",
                names.join(", ")
            ),
        ),
    )
    .unwrap();
}

async fn chat(proxy: &Process) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(proxy.url("/v1/chat/completions"))
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The cooldown gauge of an account, from /metrics.
async fn cooldown(proxy: &Process, account: &str) -> f64 {
    let text = reqwest::get(proxy.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("llmpool_account_cooldown_seconds{{account=\"{account}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn provider_rate_limit_signals_cool_the_right_account_for_the_right_time() {
    let mock = MockProvider::start().await.unwrap();
    let dir = ConfigDir::new().unwrap();
    pool(
        &mock,
        &dir,
        &[
            // Anthropic: a 429 with retry-after
            ("an", "an?status=429&retry_after=40", "anthropic"),
            // Gemini: a 429 whose only hint is RetryInfo.retryDelay in the body
            ("ge", "ge?status=429&retry_after=25", "gemini"),
            // Gemini: a per-day quota, capped by cooldown.max (2m)
            ("gd", "gd?status=429&code=daily", "gemini"),
            ("ok", "ok", "openai-compatible"),
        ],
        "fill-first",
    );
    let proxy = Process::start(dir.path(), &[], &[]).unwrap();
    let (status, body) = chat(&proxy).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply from ok"
    );
    let an = cooldown(&proxy, "an").await;
    let ge = cooldown(&proxy, "ge").await;
    let gd = cooldown(&proxy, "gd").await;
    assert!((38.0..=40.0).contains(&an), "anthropic retry-after: {an}");
    assert!((23.0..=25.0).contains(&ge), "gemini retryDelay: {ge}");
    assert!(
        (118.0..=120.0).contains(&gd),
        "gemini daily quota capped at 2m: {gd}"
    );
    // cooled accounts are skipped: the next request goes straight to `ok`
    let before = mock.stats.total();
    chat(&proxy).await;
    assert_eq!(mock.stats.total(), before + 1);
}

#[tokio::test]
async fn anthropic_remaining_zero_rests_the_account_before_any_429() {
    let mock = MockProvider::start().await.unwrap();
    let dir = ConfigDir::new().unwrap();
    pool(
        &mock,
        &dir,
        &[
            ("an", "an?remaining=0&reset=30s", "anthropic"),
            ("ok", "ok", "openai-compatible"),
        ],
        "fill-first",
    );
    let proxy = Process::start(dir.path(), &[], &[]).unwrap();
    let (_, first) = chat(&proxy).await;
    assert_eq!(
        first["choices"][0]["message"]["content"],
        "mock reply from an"
    );
    let (_, second) = chat(&proxy).await;
    assert_eq!(
        second["choices"][0]["message"]["content"],
        "mock reply from ok"
    );
    assert!(cooldown(&proxy, "an").await > 25.0);
}

#[tokio::test]
async fn overloaded_anthropic_is_529_for_anthropic_clients_and_503_for_others() {
    let mock = MockProvider::start().await.unwrap();
    let dir = ConfigDir::new().unwrap();
    pool(
        &mock,
        &dir,
        &[("an", "an?status=529", "anthropic")],
        "round-robin",
    );
    let proxy = Process::start(dir.path(), &[], &[]).unwrap();
    let r = reqwest::Client::new()
        .post(proxy.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(
            &json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 529);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "overloaded_error", "{body}");
    let (status, body) = chat(&proxy).await;
    assert_eq!(status, 503, "{body}");
}

#[tokio::test]
async fn an_upstream_refusal_reaches_a_client_of_another_protocol_in_its_shape() {
    let mock = MockProvider::start().await.unwrap();
    let dir = ConfigDir::new().unwrap();
    pool(
        &mock,
        &dir,
        &[("oa", "oa?status=400", "openai-compatible")],
        "round-robin",
    );
    let proxy = Process::start(dir.path(), &[], &[]).unwrap();
    let r = reqwest::Client::new()
        .post(proxy.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(
            &json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Bad request (mock)"),
        "{body}"
    );
    assert_eq!(
        mock.stats.get("oa").requests,
        1,
        "a 400 is not retried elsewhere"
    );
}
