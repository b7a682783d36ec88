//! The proxy's cluster mode against a fake API server: it watches exactly
//! the operator's two objects by name, is not ready until they exist,
//! serves what they say, follows edits within seconds, and never builds a
//! snapshot from an inconsistent pair.

use std::time::{Duration, Instant};

use llmpool_crds::manifest::Resources;
use llmpool_crds::objects;
use llmpool_e2e::harness::{self, Process};
use llmpool_e2e::kubeapi::FakeApiServer;
use llmpool_e2e::mock::MockProvider;
use serde_json::Value;

use crate::common::*;

/// What the operator would write for accounts a and b and a route to `target`.
fn operator_objects(mock: &MockProvider, target: &str) -> (Value, Value) {
    let url = mock.base_url();
    let yaml = harness::docs(&[
        harness::secret("keys", &[("a", "a"), ("b", "b")]),
        harness::account("a", &url, "a", ""),
        harness::account("b", &url, "b", ""),
        harness::route("test", &one_tier(&[target], "round-robin", "")),
    ]);
    let mut resources = Resources::default();
    resources.add_yaml(&yaml, "operator.yaml");
    let compiled = resources.compile();
    assert!(!compiled.has_errors());
    let r = objects::render(
        "llmpool",
        "team-a",
        &compiled.table,
        &compiled.credentials,
        &compiled.clients,
    )
    .unwrap();
    (
        serde_json::to_value(&r.configmap).unwrap(),
        serde_json::to_value(&r.secret).unwrap(),
    )
}

#[tokio::test]
async fn cluster_mode_serves_the_operators_objects_and_follows_edits() {
    let mock = MockProvider::start().await.unwrap();
    let api = FakeApiServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path(), "team-a").unwrap();
    let kubeconfig = kubeconfig.display().to_string();
    let proxy = Process::launch(&["--kube"], &[("KUBECONFIG", kubeconfig.as_str())]).unwrap();
    let http = reqwest::Client::new();
    let ask = || {
        http.post(proxy.url("/v1/chat/completions"))
            .json(&chat_body("gpt-test", false))
            .send()
    };

    // nothing written yet: not ready, and requests are refused clearly
    let ready = http.get(proxy.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let r = ask().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert!(
        openai_error(&body)["message"]
            .as_str()
            .unwrap()
            .contains("not loaded its configuration yet")
    );

    // the operator writes the pair
    let (cm, secret) = operator_objects(&mock, "a");
    api.apply("configmaps", cm);
    api.apply("secrets", secret);
    eventually("ready after the first snapshot", || async {
        http.get(proxy.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    let r: Value = ask().await.unwrap().json().await.unwrap();
    assert_eq!(reply_label(&r), "a");

    // an edit: half of it (routes only) changes nothing, the whole of it
    // takes effect within 2 s
    let (cm, secret) = operator_objects(&mock, "b");
    api.apply("configmaps", cm);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r: Value = ask().await.unwrap().json().await.unwrap();
    assert_eq!(reply_label(&r), "a", "an inconsistent pair is never used");
    let edited = Instant::now();
    api.apply("secrets", secret);
    eventually("the edit is served", || async {
        let r: Value = ask().await.unwrap().json().await.unwrap();
        reply_label(&r) == "b"
    })
    .await;
    assert!(
        edited.elapsed() < Duration::from_secs(2),
        "took {:?}",
        edited.elapsed()
    );

    // deleting the objects keeps the last good configuration
    api.delete("configmaps", "team-a", "llmpool-routes");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r: Value = ask().await.unwrap().json().await.unwrap();
    assert_eq!(reply_label(&r), "b");

    // it only ever asked for the two objects, by name, in its namespace
    let requests = api.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        let by_name = r.contains("fieldSelector=metadata.name=llmpool-routes")
            || r.contains("fieldSelector=metadata.name=llmpool-credentials");
        assert!(
            by_name && r.contains("/namespaces/team-a/"),
            "unexpected request {r}"
        );
    }
}
