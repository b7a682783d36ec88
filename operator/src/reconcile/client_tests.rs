//! LlmClients through the reconciler, against the mocked API server: keys
//! reach the proxies as digests and each client says whether its key is
//! accepted.

use base64::Engine;
use serde_json::{Value, json};

use super::tests::{CORE, CR, account, first_write, list, now, route, run, secret};
use crate::testing::{call, not_found};

fn llm_client(name: &str, secret: &str, models: Value) -> Value {
    json!({
        "apiVersion": "llmpool.dev/v1alpha1", "kind": "LlmClient",
        "metadata": {"name": name, "namespace": "team-a", "generation": 1},
        "spec": {"keySecretRef": {"name": secret, "key": "apiKey"}, "models": models,
                 "limits": {"requestsPerMinute": 60}}
    })
}

#[tokio::test]
async fn clients_reach_the_proxies_as_digests_and_each_says_whether_its_key_is_accepted() {
    let team_key = "sk-team-a-7c1e5d0b2f9a4e63";
    let calls = [
        vec![
            call(
                "GET",
                &format!("{CR}/llmaccounts"),
                200,
                list("LlmAccountList", vec![account("a", "key-a", None)]),
            ),
            call(
                "GET",
                &format!("{CR}/modelroutes"),
                200,
                list("ModelRouteList", vec![route(None)]),
            ),
            call(
                "GET",
                &format!("{CR}/llmclients"),
                200,
                list(
                    "LlmClientList",
                    vec![
                        llm_client("team-a", "team-a-key", json!(["gpt-4o*"])),
                        llm_client("team-b", "missing-key", json!([])),
                    ],
                ),
            ),
            call(
                "GET",
                &format!("{CORE}/secrets/key-a"),
                200,
                secret("key-a", "sk-live-a"),
            ),
            call(
                "GET",
                &format!("{CORE}/secrets/missing-key"),
                404,
                not_found(),
            ),
            call(
                "GET",
                &format!("{CORE}/secrets/team-a-key"),
                200,
                secret("team-a-key", team_key),
            ),
        ],
        first_write(),
        vec![
            call(
                "PATCH",
                &format!("{CR}/llmaccounts/a/status"),
                200,
                account("a", "key-a", None),
            ),
            call(
                "PATCH",
                &format!("{CR}/modelroutes/gpt/status"),
                200,
                route(None),
            ),
            call(
                "PATCH",
                &format!("{CR}/llmclients/team-a/status"),
                200,
                llm_client("team-a", "team-a-key", json!([])),
            ),
            call(
                "PATCH",
                &format!("{CR}/llmclients/team-b/status"),
                200,
                llm_client("team-b", "missing-key", json!([])),
            ),
        ],
    ]
    .concat();
    let (summary, seen) = run(calls, now()).await;
    assert!(summary.objects_written);
    let (_, secret_body) = &seen[8];
    let clients = base64::engine::general_purpose::STANDARD
        .decode(secret_body["data"]["_clients.json"].as_str().unwrap())
        .unwrap();
    let clients: Value = serde_json::from_slice(&clients).unwrap();
    assert_eq!(clients["enforced"], true, "{clients}");
    assert_eq!(clients["clients"].as_array().unwrap().len(), 1, "{clients}");
    assert_eq!(
        clients["clients"][0]["keySha256"],
        llmpool_crds::compile::key_digest(team_key)
    );
    assert_eq!(clients["clients"][0]["limits"]["requestsPerMinute"], 60);
    for (call, body) in &seen {
        let text = format!("{call} {body}");
        assert!(!text.contains(team_key), "plain client key in {call}");
    }
    let (_, ok) = &seen[12];
    assert_eq!(ok["status"]["conditions"][0]["status"], "True");
    assert!(
        ok["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("gpt-4o*")
    );
    let (_, broken) = &seen[13];
    assert_eq!(broken["status"]["conditions"][0]["status"], "False");
    assert!(
        broken["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Secret missing-key not found"),
        "{broken}"
    );
}
