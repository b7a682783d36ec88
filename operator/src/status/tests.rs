use k8s_openapi::jiff::Timestamp;
use llmpool_crds::manifest::Resources;

use llmpool_crds::account::OAuthStatus;

use super::*;

fn compile(yaml: &str) -> Compiled {
    let mut r = Resources::default();
    r.add_yaml(yaml, "t.yaml");
    r.compile()
}

const NS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: keys}
stringData: {a: sk-a}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {name: good}
spec: {provider: openai, credentials: {secretRef: {name: keys, key: a}}}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {name: nokey}
spec: {provider: openai, credentials: {secretRef: {name: openai-key, key: apiKey}}}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {name: wrongkey}
spec: {provider: openai, credentials: {secretRef: {name: keys, key: apiKey}}}
---
apiVersion: llmpool.dev/v1alpha1
kind: ModelRoute
metadata: {name: ok}
spec: {models: [gpt-4o], targets: [{accounts: {names: [good, nokey]}}]}
---
apiVersion: llmpool.dev/v1alpha1
kind: ModelRoute
metadata: {name: dead}
spec: {models: [o3], targets: [{accounts: {names: [nokey]}}]}
---
apiVersion: llmpool.dev/v1alpha1
kind: ModelRoute
metadata: {name: broken}
spec: {models: [m], targets: [{accounts: {names: [ghost]}}]}
"#;

#[test]
fn accounts_say_exactly_what_to_fix() {
    let c = compile(NS);
    let good = account_conditions(&c, "good", None, None);
    assert!(good.iter().all(|w| w.ok), "{good:?}");
    assert_eq!(good[0].message, "usable; in 1 route(s)");

    let wrong = account_conditions(&c, "wrongkey", None, None);
    assert!(!wrong[0].ok && !wrong[1].ok);
    assert_eq!(wrong[1].reason, "CredentialsMissing");
    assert_eq!(
        wrong[1].message,
        "spec.credentials.secretRef.key: Secret keys has no key apiKey"
    );
    let missing = account_conditions(&c, "nokey", None, None);
    assert_eq!(
        missing[1].message,
        "spec.credentials.secretRef: Secret openai-key not found"
    );
}

#[test]
fn routes_are_ready_degraded_or_invalid_with_reasons() {
    let c = compile(NS);
    let (ok, tiers) = route_conditions(&c, "ok", None);
    assert!(ok[0].ok);
    assert_eq!(tiers, [1]);
    assert!(
        ok[0]
            .message
            .contains("account nokey in tier 0 is not usable"),
        "{}",
        ok[0].message
    );

    let (dead, _) = route_conditions(&c, "dead", None);
    assert_eq!((dead[0].ok, dead[0].reason), (false, "NoUsableAccount"));
    let (broken, _) = route_conditions(&c, "broken", None);
    assert_eq!((broken[0].ok, broken[0].reason), (false, "Invalid"));
    assert!(
        broken[0].message.contains("LlmAccount ghost not found"),
        "{}",
        broken[0].message
    );
}

#[test]
fn transition_times_move_only_when_the_status_does() {
    let c = compile(NS);
    let t0 = Time(Timestamp::from_second(1_700_000_000).unwrap());
    let t1 = Time(Timestamp::from_second(1_700_000_600).unwrap());
    let first = merge(
        &[],
        &account_conditions(&c, "good", None, None),
        Some(1),
        t0.clone(),
    );
    let again = merge(
        &first,
        &account_conditions(&c, "good", None, None),
        Some(2),
        t1.clone(),
    );
    assert_eq!(
        again[0].last_transition_time, t0,
        "unchanged status keeps its time"
    );
    assert_eq!(again[0].observed_generation, Some(2));
    let flipped = merge(
        &first,
        &account_conditions(&c, "nokey", None, None),
        Some(3),
        t1.clone(),
    );
    assert_eq!(flipped[0].last_transition_time, t1);
    assert_eq!(flipped[0].status, "False");
}

#[test]
fn a_table_too_large_makes_every_resource_say_so() {
    let c = compile(NS);
    let why = "ConfigMap llmpool-routes would hold 1200000 bytes, over the 1000000 byte limit of one object";
    let account = account_conditions(&c, "good", None, Some(why));
    assert_eq!((account[0].ok, account[0].reason), (false, "TableTooLarge"));
    assert!(account[0].message.starts_with(why));
    let (route, _) = route_conditions(&c, "ok", Some(why));
    assert_eq!((route[0].ok, route[0].reason), (false, "TableTooLarge"));
}

#[test]
fn oauth_accounts_show_how_refreshing_goes() {
    let c = compile(NS);
    let failing = OAuthStatus {
        failures: 3,
        next_attempt: Some("2026-11-22T10:00:00Z".to_owned()),
        last_error: Some("token endpoint answered 400 invalid_grant".to_owned()),
        ..Default::default()
    };
    let conditions = account_conditions(&c, "good", Some(&failing), None);
    let refreshing = conditions.iter().find(|w| w.kind == "Refreshing").unwrap();
    assert!(!refreshing.ok);
    assert_eq!(refreshing.reason, "RefreshFailing");
    assert!(refreshing.message.contains(
        "400 invalid_grant; 3 failure(s) in a row, next attempt at 2026-11-22T10:00:00Z"
    ));
    let fine = OAuthStatus {
        expires_at: Some("2026-11-22T11:00:00Z".to_owned()),
        ..Default::default()
    };
    let conditions = account_conditions(&c, "good", Some(&fine), None);
    let refreshing = conditions.iter().find(|w| w.kind == "Refreshing").unwrap();
    assert!(refreshing.ok);
    assert_eq!(
        refreshing.message,
        "access token valid until 2026-11-22T11:00:00Z"
    );
    // API-key accounts have no Refreshing condition
    assert!(
        account_conditions(&c, "good", None, None)
            .iter()
            .all(|w| w.kind != "Refreshing")
    );
}
