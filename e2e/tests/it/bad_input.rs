//! Bad client input: the OpenAI error shape, the right status, a precise
//! message, never a panic.

use serde_json::{Value, json};

use crate::common::*;

async fn raw(env: &Env, body: &'static [u8]) -> (u16, Value) {
    let r = env
        .http
        .post(env.proxy.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn malformed_or_mistyped_bodies_get_400_in_openai_shape() {
    let env = Env::start(&[("a", "a", "")], &one_tier(&["a"], "round-robin", "")).await;
    let cases: [(&[u8], &str); 6] = [
        (b"{\"model\": \"gpt-test\", \"messages\": [", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (br#"{"model": "gpt-test", "messages": [{"role":"user","content":"x"}], "stream": "yes"}"#, "invalid type: string \"yes\", expected a boolean"),
        (br#"{"messages": [{"role":"user","content":"x"}]}"#, "missing field `model`"),
        (br#"{"model": "gpt-test", "messages": []}"#, "messages: must contain at least one message"),
        (br#"{"model": 42, "messages": [{"role":"user","content":"x"}]}"#, "invalid type: integer `42`"),
    ];
    for (body, expected) in cases {
        let (status, err) = raw(&env, body).await;
        assert_eq!(status, 400, "{err}");
        let e = openai_error(&err);
        assert_eq!(e["type"], "invalid_request_error");
        assert!(
            e["message"].as_str().unwrap().contains(expected),
            "{expected}: {err}"
        );
    }
    assert_eq!(env.mock.stats.total(), 0);
}

#[tokio::test]
async fn unknown_models_and_endpoints_get_404() {
    let env = Env::start(&[("a", "a", "")], &one_tier(&["a"], "round-robin", "")).await;
    let (status, body) = env.ask("claude-nope").await;
    assert_eq!(status, 404);
    assert_eq!(openai_error(&body)["code"], "model_not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("claude-nope")
    );
    // the glob routes other names
    assert_eq!(env.served_by("mini-test").await, "a");

    for (method, path) in [
        ("POST", "/v1/nope"),
        ("GET", "/v1/chat/completions"),
        ("DELETE", "/v1/models"),
    ] {
        let r = env
            .http
            .request(method.parse().unwrap(), env.proxy.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method} {path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(openai_error(&body)["code"], "unknown_url");
    }
}

#[tokio::test]
async fn oversized_and_deeply_nested_bodies_are_refused() {
    let env = Env::start_with(
        &[("a", "a", "")],
        &one_tier(&["a"], "round-robin", ""),
        &["--max-body-bytes", "2000", "--max-json-depth", "8"],
        &[],
    )
    .await;
    let big =
        json!({"model": "gpt-test", "messages": [{"role": "user", "content": "x".repeat(5000)}]});
    let r = env.chat(&big).await;
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert!(
        openai_error(&body)["message"]
            .as_str()
            .unwrap()
            .contains("2000 byte limit")
    );

    let mut deep = json!("leaf");
    for _ in 0..20 {
        deep = json!([deep]);
    }
    let nested = json!({"model": "gpt-test", "messages": [{"role": "user", "content": deep}]});
    let r = env.chat(&nested).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        openai_error(&body)["message"]
            .as_str()
            .unwrap()
            .contains("deeper than 8 levels")
    );
    assert_eq!(env.mock.stats.total(), 0);
}

#[tokio::test]
async fn client_keys_are_required_when_configured() {
    let env = Env::start_with(
        &[("a", "a", "")],
        &one_tier(&["a"], "round-robin", ""),
        &[],
        &[("LLMPOOL_API_KEYS", "team-key-1,team-key-2")],
    )
    .await;
    let (status, body) = env.ask("gpt-test").await;
    assert_eq!(status, 401);
    assert!(
        openai_error(&body)["message"]
            .as_str()
            .unwrap()
            .contains("missing API key")
    );
    let with = |key: &'static str| {
        env.http
            .post(env.proxy.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&chat_body("gpt-test", false))
            .send()
    };
    let r = with("wrong").await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_api_key"
    );
    assert_eq!(with("team-key-2").await.unwrap().status(), 200);
    let models = env
        .http
        .get(env.proxy.url("/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 401);
    assert!(
        !env.proxy
            .logs_settled()
            .await
            .iter()
            .any(|l| l.contains("team-key")),
        "client keys never reach the logs"
    );
}
