//! The reconciler against a mocked API server that asserts each expected
//! call in order and answers like the real one.

use std::time::Duration;

use http::{Request, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

use super::*;
use crate::oauth::Refresher;
use crate::testing::{Call, call, not_found, serve};

pub(super) async fn run(calls: Vec<Call>, now: Time) -> (Summary, Vec<(String, Value)>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "team-a");
    let server = tokio::spawn(serve(handle, calls));
    let summary = tokio::time::timeout(
        Duration::from_secs(5),
        reconciler(client).reconcile("team-a", now),
    )
    .await
    .expect("reconcile made a call the test did not expect")
    .unwrap();
    (summary, server.await.unwrap())
}

fn reconciler(client: Client) -> Reconciler {
    Reconciler {
        client,
        name: "llmpool".to_owned(),
        oauth: Refresher::new(Duration::from_secs(300), Duration::from_secs(5)),
    }
}

pub(super) fn now() -> Time {
    Time(Timestamp::from_second(1_700_000_000).unwrap())
}

pub(super) const CR: &str = "/apis/llmpool.dev/v1alpha1/namespaces/team-a";
pub(super) const CORE: &str = "/api/v1/namespaces/team-a";

pub(super) fn account(name: &str, secret: &str, status: Option<Value>) -> Value {
    let mut a = json!({
        "apiVersion": "llmpool.dev/v1alpha1", "kind": "LlmAccount",
        "metadata": {"name": name, "namespace": "team-a", "generation": 1},
        "spec": {"provider": "openai", "credentials": {"secretRef": {"name": secret, "key": "apiKey"}}}
    });
    if let Some(s) = status {
        a["status"] = s;
    }
    a
}

pub(super) fn route(status: Option<Value>) -> Value {
    let mut r = json!({
        "apiVersion": "llmpool.dev/v1alpha1", "kind": "ModelRoute",
        "metadata": {"name": "gpt", "namespace": "team-a", "generation": 2},
        "spec": {"models": ["gpt-4o"], "targets": [{"accounts": {"names": ["a", "b"]}}]}
    });
    if let Some(s) = status {
        r["status"] = s;
    }
    r
}

/// Neither object exists yet, so both are read (404) and applied.
pub(super) fn first_write() -> Vec<Call> {
    vec![
        call(
            "GET",
            &format!("{CORE}/configmaps/llmpool-routes"),
            404,
            not_found(),
        ),
        call(
            "GET",
            &format!("{CORE}/secrets/llmpool-credentials"),
            404,
            not_found(),
        ),
        call(
            "PATCH",
            &format!("{CORE}/secrets/llmpool-credentials"),
            200,
            applied("Secret", "llmpool-credentials"),
        ),
        call(
            "PATCH",
            &format!("{CORE}/configmaps/llmpool-routes"),
            200,
            applied("ConfigMap", "llmpool-routes"),
        ),
    ]
}

/// The API server's answer to an apply: the object.
fn applied(kind: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "team-a"}})
}

pub(super) fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "llmpool.dev/v1alpha1", "kind": kind, "metadata": {"resourceVersion": "7"}, "items": items})
}

pub(super) fn secret(name: &str, key: &str) -> Value {
    use base64::Engine;
    let value = base64::engine::general_purpose::STANDARD.encode(key);
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "team-a"}, "data": {"apiKey": value}})
}

#[tokio::test]
async fn the_first_reconcile_writes_both_objects_and_every_status() {
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
                list("LlmClientList", vec![]),
            ),
            call(
                "GET",
                &format!("{CORE}/secrets/key-a"),
                200,
                secret("key-a", "sk-live-a"),
            ),
        ],
        // the two objects do not exist yet: both are applied
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
        ],
    ]
    .concat();
    let (summary, seen) = run(calls, now()).await;
    assert!(summary.objects_written && !summary.objects_deleted);
    assert_eq!(summary.statuses_patched, 2);
    // every new condition is a transition, each one an Event
    let shown: Vec<(String, String, String)> = summary
        .transitions
        .iter()
        .map(|t| {
            (
                t.object.name.clone().unwrap(),
                t.condition.type_.clone(),
                t.condition.status.clone(),
            )
        })
        .collect();
    let expected = [
        ("a", "Ready", "True"),
        ("a", "CredentialsResolved", "True"),
        ("gpt", "Ready", "False"),
    ]
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()));
    assert_eq!(shown, expected);
    assert_eq!(
        summary.transitions[2].object.kind.as_deref(),
        Some("ModelRoute")
    );

    let (secret_call, secret_body) = &seen[6];
    assert!(
        secret_call.contains("fieldManager=llmpool-operator") && secret_call.contains("force=true"),
        "{secret_call}"
    );
    assert!(secret_body["data"]["a"].is_string(), "{secret_body}");
    let (_, configmap) = &seen[7];
    let text = configmap.to_string();
    assert!(
        text.contains("routes.json") && !text.contains("sk-live-a"),
        "no key in the ConfigMap"
    );
    assert_eq!(
        configmap["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "llmpool-operator"
    );

    let (_, account_status) = &seen[8];
    assert_eq!(account_status["status"]["observedGeneration"], 1);
    assert_eq!(account_status["status"]["conditions"][0]["type"], "Ready");
    assert_eq!(account_status["status"]["conditions"][0]["status"], "True");
    // b is named by the route but does not exist: the route says so and still serves with a
    let (_, route_status) = &seen[9];
    assert_eq!(route_status["status"]["conditions"][0]["status"], "False");
    assert!(
        route_status["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("LlmAccount b not found")
    );
    assert_eq!(route_status["status"]["targets"], "1");
}

#[tokio::test]
async fn an_unchanged_namespace_causes_no_write() {
    // what the first reconcile wrote, as the API now shows it
    let accounts = [account("a", "key-a", None)];
    let routes = [route(None)];
    let parsed_accounts: Vec<LlmAccount> = accounts
        .iter()
        .map(|a| serde_json::from_value(a.clone()).unwrap())
        .collect();
    let parsed_routes: Vec<ModelRoute> = routes
        .iter()
        .map(|r| serde_json::from_value(r.clone()).unwrap())
        .collect();
    let secrets = vec![serde_json::from_value(secret("key-a", "sk-live-a")).unwrap()];
    let tokens = std::collections::BTreeMap::new();
    let compiled = compile(&Inputs {
        accounts: &parsed_accounts,
        routes: &parsed_routes,
        clients: &[],
        secrets: &secrets,
        oauth_tokens: &tokens,
    });
    let rendered = objects::render(
        "llmpool",
        "team-a",
        &compiled.table,
        &compiled.credentials,
        &compiled.clients,
    )
    .unwrap();
    let account_conditions = status::merge(
        &[],
        &status::account_conditions(&compiled, "a", None, None),
        Some(1),
        now(),
    );
    let (route_wanted, tiers) = status::route_conditions(&compiled, "gpt", None);
    let route_conditions = status::merge(&[], &route_wanted, Some(2), now());
    let settled_account = account(
        "a",
        "key-a",
        Some(json!({"conditions": account_conditions, "observedGeneration": 1})),
    );
    let settled_route = route(Some(
        json!({"conditions": route_conditions, "observedGeneration": 2, "tierAccounts": tiers}),
    ));

    let later = Time(Timestamp::from_second(1_700_000_600).unwrap());
    let calls = vec![
        call(
            "GET",
            &format!("{CR}/llmaccounts"),
            200,
            list("LlmAccountList", vec![settled_account.clone()]),
        ),
        call(
            "GET",
            &format!("{CR}/modelroutes"),
            200,
            list("ModelRouteList", vec![settled_route.clone()]),
        ),
        call(
            "GET",
            &format!("{CR}/llmclients"),
            200,
            list("LlmClientList", vec![]),
        ),
        call(
            "GET",
            &format!("{CORE}/secrets/key-a"),
            200,
            secret("key-a", "sk-live-a"),
        ),
        call(
            "GET",
            &format!("{CORE}/configmaps/llmpool-routes"),
            200,
            serde_json::to_value(&rendered.configmap).unwrap(),
        ),
        call(
            "GET",
            &format!("{CORE}/secrets/llmpool-credentials"),
            200,
            serde_json::to_value(&rendered.secret).unwrap(),
        ),
    ];
    let (summary, _) = run(calls, later.clone()).await;
    assert_eq!(
        summary,
        Summary::default(),
        "same content, same status: nothing is written"
    );

    // the credentials Secret deleted by hand, then edited by hand: put back
    let mut edited = rendered.secret.clone();
    edited.data.as_mut().unwrap().insert(
        "a".to_owned(),
        k8s_openapi::ByteString(b"sk-tampered".to_vec()),
    );
    for (status, secret_now) in [
        (404, not_found()),
        (200, serde_json::to_value(&edited).unwrap()),
    ] {
        let calls = vec![
            call(
                "GET",
                &format!("{CR}/llmaccounts"),
                200,
                list("LlmAccountList", vec![settled_account.clone()]),
            ),
            call(
                "GET",
                &format!("{CR}/modelroutes"),
                200,
                list("ModelRouteList", vec![settled_route.clone()]),
            ),
            call(
                "GET",
                &format!("{CR}/llmclients"),
                200,
                list("LlmClientList", vec![]),
            ),
            call(
                "GET",
                &format!("{CORE}/secrets/key-a"),
                200,
                secret("key-a", "sk-live-a"),
            ),
            call(
                "GET",
                &format!("{CORE}/configmaps/llmpool-routes"),
                200,
                serde_json::to_value(&rendered.configmap).unwrap(),
            ),
            call(
                "GET",
                &format!("{CORE}/secrets/llmpool-credentials"),
                status,
                secret_now,
            ),
            call(
                "PATCH",
                &format!("{CORE}/secrets/llmpool-credentials"),
                200,
                applied("Secret", "llmpool-credentials"),
            ),
            call(
                "PATCH",
                &format!("{CORE}/configmaps/llmpool-routes"),
                200,
                applied("ConfigMap", "llmpool-routes"),
            ),
        ];
        let (summary, seen) = run(calls, later.clone()).await;
        assert!(summary.objects_written && summary.statuses_patched == 0);
        assert_eq!(
            seen[6].1["data"],
            serde_json::to_value(&rendered.secret).unwrap()["data"],
            "the real keys are back"
        );
    }
}

#[tokio::test]
async fn a_missing_secret_is_reported_on_its_account_and_breaks_nothing_else() {
    let calls = [
        vec![
            call(
                "GET",
                &format!("{CR}/llmaccounts"),
                200,
                list(
                    "LlmAccountList",
                    vec![
                        account("a", "key-a", None),
                        account("b", "openai-key", None),
                    ],
                ),
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
                list("LlmClientList", vec![]),
            ),
            call(
                "GET",
                &format!("{CORE}/secrets/key-a"),
                200,
                secret("key-a", "sk-live-a"),
            ),
            call(
                "GET",
                &format!("{CORE}/secrets/openai-key"),
                404,
                not_found(),
            ),
        ],
        // the two objects do not exist yet: both are applied
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
                &format!("{CR}/llmaccounts/b/status"),
                200,
                account("b", "openai-key", None),
            ),
            call(
                "PATCH",
                &format!("{CR}/modelroutes/gpt/status"),
                200,
                route(None),
            ),
        ],
    ]
    .concat();
    let (summary, seen) = run(calls, now()).await;
    assert_eq!(summary.statuses_patched, 3);
    let (_, secret_body) = &seen[7];
    assert!(secret_body["data"].get("a").is_some() && secret_body["data"].get("b").is_none());
    let (_, b) = &seen[10];
    let credentials = &b["status"]["conditions"][1];
    assert_eq!(
        (credentials["type"].as_str(), credentials["status"].as_str()),
        (Some("CredentialsResolved"), Some("False"))
    );
    assert_eq!(
        credentials["message"],
        "spec.credentials.secretRef: Secret openai-key not found"
    );
    let (_, a) = &seen[9];
    assert_eq!(
        a["status"]["conditions"][0]["status"], "True",
        "the valid account is unaffected"
    );
}

#[tokio::test]
async fn when_the_last_account_and_route_are_gone_both_objects_are_deleted() {
    let calls = vec![
        call(
            "GET",
            &format!("{CR}/llmaccounts"),
            200,
            list("LlmAccountList", vec![]),
        ),
        call(
            "GET",
            &format!("{CR}/modelroutes"),
            200,
            list("ModelRouteList", vec![]),
        ),
        call(
            "GET",
            &format!("{CR}/llmclients"),
            200,
            list("LlmClientList", vec![]),
        ),
        call(
            "DELETE",
            &format!("{CORE}/configmaps/llmpool-routes"),
            200,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
        ),
        call(
            "DELETE",
            &format!("{CORE}/secrets/llmpool-credentials"),
            404,
            not_found(),
        ),
    ];
    let (summary, _) = run(calls, now()).await;
    assert!(summary.objects_deleted);
    assert!(!summary.objects_written);
}

fn oauth_account(token_url: &str) -> Value {
    json!({
        "apiVersion": "llmpool.dev/v1alpha1", "kind": "LlmAccount",
        "metadata": {"name": "claude", "namespace": "team-a", "generation": 1},
        "spec": {"provider": "anthropic", "credentials": {"oauth": {
            "tokenUrl": token_url, "clientId": "cli",
            "refreshTokenRef": {"name": "grant", "key": "apiKey"}
        }}}
    })
}

fn claude_route() -> Value {
    json!({
        "apiVersion": "llmpool.dev/v1alpha1", "kind": "ModelRoute",
        "metadata": {"name": "claude", "namespace": "team-a", "generation": 1},
        "spec": {"models": ["claude-*"], "targets": [{"accounts": {"names": ["claude"]}}]}
    })
}

/// The calls of a reconcile of the OAuth namespace up to the object writes.
fn oauth_reads(token_url: &str) -> Vec<Call> {
    vec![
        call(
            "GET",
            &format!("{CR}/llmaccounts"),
            200,
            list("LlmAccountList", vec![oauth_account(token_url)]),
        ),
        call(
            "GET",
            &format!("{CR}/modelroutes"),
            200,
            list("ModelRouteList", vec![claude_route()]),
        ),
        call(
            "GET",
            &format!("{CR}/llmclients"),
            200,
            list("LlmClientList", vec![]),
        ),
        call(
            "GET",
            &format!("{CORE}/secrets/grant"),
            200,
            secret("grant", "rt-123"),
        ),
    ]
}

#[tokio::test]
async fn an_oauth_account_is_served_with_a_fresh_access_token() {
    let (endpoint, base) =
        crate::testing::endpoint(200, json!({"access_token": "at-fresh", "expires_in": 3600}))
            .await;
    let url = format!("{base}/token");
    let calls = [
        oauth_reads(&url),
        first_write(),
        vec![
            call(
                "PATCH",
                &format!("{CR}/llmaccounts/claude/status"),
                200,
                oauth_account(&url),
            ),
            call(
                "PATCH",
                &format!("{CR}/modelroutes/claude/status"),
                200,
                claude_route(),
            ),
        ],
    ]
    .concat();
    let (summary, seen) = run(calls, now()).await;
    assert_eq!(summary.refreshes, (1, 0));
    assert_eq!(
        summary.next_due_ms,
        Some(now().0.as_millisecond() + 55 * 60_000),
        "refreshed again 5 min before expiry"
    );
    assert!(endpoint.seen.lock().unwrap()[0].contains("refresh_token=rt-123"));
    // the proxies get the access token, never the refresh token
    let (_, credentials) = &seen[6];
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(credentials["data"]["claude"], b64.encode("at-fresh"));
    assert!(!credentials.to_string().contains(&b64.encode("rt-123")));
    let (_, status) = &seen[8];
    let conditions = status["status"]["conditions"].as_array().unwrap();
    let refreshing = conditions
        .iter()
        .find(|c| c["type"] == "Refreshing")
        .unwrap();
    assert_eq!(refreshing["status"], "True");
    assert_eq!(
        status["status"]["oauth"]["expiresAt"],
        "2023-11-14T23:13:20Z"
    );
    assert_eq!(status["status"]["oauth"]["failures"], 0);
    let shown = status.to_string();
    assert!(!shown.contains("at-fresh") && !shown.contains("rt-123"));
}

#[tokio::test]
async fn a_failing_refresh_is_shown_with_its_next_attempt() {
    let (_endpoint, base) = crate::testing::endpoint(400, json!({"error": "invalid_grant"})).await;
    let url = format!("{base}/token");
    let calls = [
        oauth_reads(&url),
        first_write(),
        vec![
            call(
                "PATCH",
                &format!("{CR}/llmaccounts/claude/status"),
                200,
                oauth_account(&url),
            ),
            call(
                "PATCH",
                &format!("{CR}/modelroutes/claude/status"),
                200,
                claude_route(),
            ),
        ],
    ]
    .concat();
    let (summary, seen) = run(calls, now()).await;
    assert_eq!(summary.refreshes, (0, 1));
    assert_eq!(
        summary.next_due_ms,
        Some(now().0.as_millisecond() + 5 * 60_000)
    );
    let (_, status) = &seen[8];
    assert_eq!(status["status"]["oauth"]["failures"], 1);
    assert_eq!(
        status["status"]["oauth"]["nextAttempt"],
        "2023-11-14T22:18:20Z"
    );
    let conditions = status["status"]["conditions"].as_array().unwrap();
    let by_type = |t: &str| conditions.iter().find(|c| c["type"] == t).unwrap().clone();
    assert_eq!(by_type("Refreshing")["status"], "False");
    assert_eq!(by_type("Refreshing")["reason"], "RefreshFailing");
    assert!(
        by_type("Refreshing")["message"]
            .as_str()
            .unwrap()
            .contains("token endpoint answered 400 invalid_grant")
    );
    assert_eq!(by_type("Ready")["status"], "False");
    // the transitions to False become Warning Events
    assert!(
        summary
            .transitions
            .iter()
            .any(|t| t.condition.type_ == "Refreshing" && t.condition.status == "False")
    );
}

#[tokio::test]
async fn a_table_too_large_for_one_object_is_reported_and_nothing_is_written() {
    // one header value bigger than a ConfigMap may hold
    let mut big = account("a", "key-a", None);
    big["spec"]["headers"] = json!({"x-padding": "p".repeat(1_100_000)});
    let calls = vec![
        call(
            "GET",
            &format!("{CR}/llmaccounts"),
            200,
            list("LlmAccountList", vec![big.clone()]),
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
            list("LlmClientList", vec![]),
        ),
        call(
            "GET",
            &format!("{CORE}/secrets/key-a"),
            200,
            secret("key-a", "sk-a"),
        ),
        call(
            "GET",
            &format!("{CORE}/configmaps/llmpool-routes"),
            404,
            not_found(),
        ),
        call(
            "GET",
            &format!("{CORE}/secrets/llmpool-credentials"),
            404,
            not_found(),
        ),
        // no apply: straight to the statuses
        call("PATCH", &format!("{CR}/llmaccounts/a/status"), 200, big),
        call(
            "PATCH",
            &format!("{CR}/modelroutes/gpt/status"),
            200,
            route(None),
        ),
    ];
    let (summary, seen) = run(calls, now()).await;
    assert!(!summary.objects_written);
    let why = summary.too_large.unwrap();
    assert!(why.contains("llmpool-routes"), "{why}");
    for (_, body) in &seen[6..] {
        let ready = &body["status"]["conditions"][0];
        assert_eq!(
            (&ready["status"], &ready["reason"]),
            (&json!("False"), &json!("TableTooLarge"))
        );
    }
}
