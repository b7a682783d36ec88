//! Config-directory changes: applied atomically without dropping streams;
//! broken edits keep the last good configuration; bad startup configs refuse.

use llmpool_e2e::harness::{self, ConfigDir, Process};

use crate::common::*;

async fn models(env: &Env) -> Vec<String> {
    let body = env.get_json("/v1/models").await;
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_edit_takes_effect_without_dropping_a_running_stream() {
    let accounts = [("a", "a?chunks=6&chunk_ms=250", "")];
    let env = Env::start(&accounts, &one_tier(&["a"], "round-robin", "")).await;
    assert_eq!(models(&env).await, ["gpt-test"]);

    let stream = env.chat(&chat_body("gpt-test", true)).await;
    assert_eq!(stream.status(), 200);
    let reader = tokio::spawn(read_stream(stream));

    // while it streams: add a model, and rename the route's account set
    let spec = "  models: [gpt-test, gpt-new]\n  targets:\n    - accounts: {names: [a]}\n";
    env.dir
        .write("route.yaml", &harness::route("test", spec))
        .unwrap();
    eventually("the new model is listed", || async {
        models(&env).await.contains(&"gpt-new".to_owned())
    })
    .await;
    assert!(
        !reader.is_finished(),
        "the edit landed while the stream was still running"
    );

    let (content, payloads) = reader.await.unwrap();
    assert_eq!(content, "mock reply from a . .");
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(env.served_by("gpt-new").await, "a");
    assert!(
        env.metrics()
            .await
            .contains("llmpool_config_reloads_total{result=\"applied\"} 1")
    );
}

#[tokio::test]
async fn a_broken_edit_keeps_the_last_good_configuration() {
    let env = Env::start(&[("a", "a", "")], &one_tier(&["a"], "round-robin", "")).await;
    env.dir.write("route.yaml", "apiVersion: llmpool.dev/v1alpha1\nkind: ModelRoute\nmetadata: {name: test}\nspec:\n  models: [gpt-test\n").unwrap();
    env.wait_for_metric("llmpool_config_reloads_total{result=\"rejected\"} 1")
        .await;
    assert_eq!(env.served_by("gpt-test").await, "a");
    // a semantically invalid edit is rejected too, with the problem logged
    let spec = "  models: [gpt-test]\n  targets:\n    - accounts: {names: [ghost]}\n";
    env.dir
        .write("route.yaml", &harness::route("test", spec))
        .unwrap();
    env.wait_for_metric("llmpool_config_reloads_total{result=\"rejected\"} 2")
        .await;
    assert!(
        env.proxy
            .logs_settled()
            .await
            .iter()
            .any(|l| l.contains("LlmAccount ghost not found"))
    );
    assert_eq!(env.served_by("gpt-test").await, "a");
}

#[tokio::test]
async fn startup_refuses_an_invalid_directory_and_lists_every_problem() {
    let dir = ConfigDir::new().unwrap();
    let bad = [
        harness::secret("keys", &[("a", "sk-a")]),
        harness::account(
            "a",
            "ftp://nowhere",
            "missing",
            "  limits: {maxConcurrency: 0}\n",
        ),
        harness::route(
            "r",
            "  models: [m]\n  targets:\n    - accounts: {names: [a, ghost]}\n",
        ),
    ];
    dir.write("all.yaml", &harness::docs(&bad)).unwrap();
    let failure = match Process::start(dir.path(), &[], &[]) {
        Err(f) => f,
        Ok(_) => panic!("an invalid config must not start"),
    };
    assert_eq!(failure.status.and_then(|s| s.code()), Some(2));
    for expected in [
        "all.yaml (document 2): LlmAccount a: spec.baseUrl",
        "Secret keys has no key missing",
        "spec.limits.maxConcurrency: must be greater than 0",
        "ModelRoute r: spec.targets[0].accounts.names[1]: LlmAccount ghost not found",
    ] {
        assert!(
            failure.output.contains(expected),
            "missing `{expected}` in:\n{}",
            failure.output
        );
    }
    assert!(
        !failure.output.contains("sk-a"),
        "secrets never reach the output"
    );
}

#[tokio::test]
async fn cooldowns_survive_a_reload() {
    let accounts = [
        (
            "a",
            "a?status=429&retry_after=60&times=1",
            "  priority: 0\n",
        ),
        ("b", "b", "  priority: 1\n"),
    ];
    let env = Env::start(&accounts, &one_tier(&["a", "b"], "fill-first", "")).await;
    assert_eq!(env.served_by("gpt-test").await, "b");
    let spec = one_tier(&["a", "b"], "fill-first", "  retry: {maxAttempts: 2}\n");
    env.dir
        .write("route.yaml", &harness::route("test", &spec))
        .unwrap();
    env.wait_for_metric("llmpool_config_reloads_total{result=\"applied\"} 1")
        .await;
    for _ in 0..3 {
        assert_eq!(env.served_by("gpt-test").await, "b");
    }
    assert_eq!(env.count("a"), 1, "a is still cooling after the reload");
}
