//! Refresh, backoff, rotation, egress and restart against a mock token
//! endpoint on a real socket.

use k8s_openapi::ByteString;
use serde_json::{Value, json};

use super::*;
use crate::testing::endpoint;

const NOW: i64 = 1_700_000_000_000;
const MIN: i64 = 60_000;

fn account(name: &str, token_url: &str, egress: Option<&str>, status: Option<Value>) -> LlmAccount {
    let mut a = json!({
        "apiVersion": "llmpool.dev/v1alpha1", "kind": "LlmAccount",
        "metadata": {"name": name, "namespace": "ns", "generation": 1},
        "spec": {"provider": "anthropic", "credentials": {"oauth": {
            "tokenUrl": token_url, "clientId": "cli", "scopes": ["user:inference", "org"],
            "refreshTokenRef": {"name": "grant", "key": "refresh"}
        }}}
    });
    if let Some(e) = egress {
        a["spec"]["egressProxy"] = json!(e);
    }
    if let Some(s) = status {
        a["status"] = s;
    }
    serde_json::from_value(a).unwrap()
}

fn secret(name: &str, key: &str, value: &str) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.to_owned());
    s.data = Some([(key.to_owned(), ByteString(value.as_bytes().to_vec()))].into());
    s
}

fn granted(token: &str) -> Value {
    json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600})
}

fn refresher() -> Refresher {
    Refresher::new(Duration::from_secs(300), Duration::from_secs(5))
}

#[tokio::test]
async fn a_token_is_refreshed_once_and_again_only_when_it_nears_expiry() {
    let (e, base) = endpoint(200, granted("at-1")).await;
    let accounts = [account("claude", &format!("{base}/token"), None, None)];
    let secrets = [secret("grant", "refresh", "rt-secret value")];
    let r = refresher();

    let round = r.round("ns", &accounts, &secrets, None, NOW).await;
    assert_eq!(round.tokens.get("claude").map(String::as_str), Some("at-1"));
    assert_eq!(round.refreshed, vec![("claude".to_owned(), None)]);
    assert_eq!(round.next_due_ms, Some(NOW + 60 * MIN - 5 * MIN));
    let status = &round.status["claude"];
    assert_eq!(status.failures, 0);
    assert_eq!(status.expires_at.as_deref(), Some("2023-11-14T23:13:20Z"));
    let form = e.seen.lock().unwrap()[0].clone();
    assert_eq!(
        form,
        "grant_type=refresh_token&refresh_token=rt-secret+value&client_id=cli&scope=user%3Ainference+org"
    );

    // before the skew: the same token, no request
    let round = r
        .round("ns", &accounts, &secrets, None, NOW + 54 * MIN)
        .await;
    assert_eq!(round.tokens.get("claude").map(String::as_str), Some("at-1"));
    assert!(round.refreshed.is_empty());
    assert_eq!(e.seen.lock().unwrap().len(), 1);

    // inside the skew: refreshed
    *e.answer.lock().unwrap() = (200, granted("at-2"));
    let round = r
        .round("ns", &accounts, &secrets, None, NOW + 56 * MIN)
        .await;
    assert_eq!(round.tokens.get("claude").map(String::as_str), Some("at-2"));
    assert_eq!(e.seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn failures_back_off_from_five_minutes_doubling_to_an_hour_and_reset_on_success() {
    let (e, base) = endpoint(
        400,
        json!({"error": "invalid_grant", "error_description": "rt-secret is revoked"}),
    )
    .await;
    let accounts = [account("claude", &format!("{base}/token"), None, None)];
    let secrets = [secret("grant", "refresh", "rt-secret")];
    let r = refresher();

    let mut now = NOW;
    let mut waits = Vec::new();
    for _ in 0..6 {
        let round = r.round("ns", &accounts, &secrets, None, now).await;
        assert!(round.tokens.is_empty(), "no token to serve");
        let status = &round.status["claude"];
        assert_eq!(
            status.last_error.as_deref(),
            Some("token endpoint answered 400 invalid_grant")
        );
        let due = round.next_due_ms.unwrap();
        waits.push((due - now) / MIN);
        // one minute before the retry: nothing is sent
        let calls = e.seen.lock().unwrap().len();
        r.round("ns", &accounts, &secrets, None, due - MIN).await;
        assert_eq!(e.seen.lock().unwrap().len(), calls);
        now = due;
    }
    assert_eq!(waits, vec![5, 10, 20, 40, 60, 60]);
    let status = r
        .round("ns", &accounts, &secrets, None, now - 1)
        .await
        .status["claude"]
        .clone();
    assert_eq!(status.failures, 6);
    assert!(status.next_attempt.is_some());

    *e.answer.lock().unwrap() = (200, granted("at-ok"));
    let round = r.round("ns", &accounts, &secrets, None, now).await;
    assert_eq!(
        round.tokens.get("claude").map(String::as_str),
        Some("at-ok")
    );
    let status = &round.status["claude"];
    assert_eq!(
        (
            status.failures,
            status.next_attempt.as_ref(),
            status.last_error.as_ref()
        ),
        (0, None, None)
    );
}

#[tokio::test]
async fn a_failed_refresh_keeps_serving_the_token_while_it_is_valid() {
    let (e, base) = endpoint(200, granted("at-1")).await;
    let accounts = [account("claude", &format!("{base}/token"), None, None)];
    let secrets = [secret("grant", "refresh", "rt")];
    let r = refresher();
    r.round("ns", &accounts, &secrets, None, NOW).await;
    *e.answer.lock().unwrap() = (503, json!({}));
    let round = r
        .round("ns", &accounts, &secrets, None, NOW + 56 * MIN)
        .await;
    assert_eq!(round.tokens.get("claude").map(String::as_str), Some("at-1"));
    assert_eq!(round.status["claude"].failures, 1);
    // past expiry the token is no longer offered
    let round = r
        .round("ns", &accounts, &secrets, None, NOW + 61 * MIN)
        .await;
    assert!(round.tokens.is_empty());
}

#[tokio::test]
async fn a_new_refresh_token_from_the_user_refreshes_at_once() {
    let (e, base) = endpoint(200, granted("at-1")).await;
    let accounts = [account("claude", &format!("{base}/token"), None, None)];
    let r = refresher();
    r.round(
        "ns",
        &accounts,
        &[secret("grant", "refresh", "rt-old")],
        None,
        NOW,
    )
    .await;
    *e.answer.lock().unwrap() = (200, granted("at-2"));
    let round = r
        .round(
            "ns",
            &accounts,
            &[secret("grant", "refresh", "rt-new")],
            None,
            NOW + MIN,
        )
        .await;
    assert_eq!(round.tokens.get("claude").map(String::as_str), Some("at-2"));
    assert!(e.seen.lock().unwrap()[1].contains("refresh_token=rt-new"));
}

#[tokio::test]
async fn a_rotated_refresh_token_is_handed_back_to_be_stored() {
    let (_e, base) = endpoint(
        200,
        json!({"access_token": "at", "expires_in": 600, "refresh_token": "rt-2"}),
    )
    .await;
    let accounts = [account("claude", &format!("{base}/token"), None, None)];
    let r = refresher();
    let round = r
        .round(
            "ns",
            &accounts,
            &[secret("grant", "refresh", "rt-1")],
            None,
            NOW,
        )
        .await;
    assert_eq!(round.rotated.len(), 1);
    assert_eq!(
        (
            round.rotated[0].0.name.as_str(),
            round.rotated[0].1.as_str()
        ),
        ("grant", "rt-2")
    );
    // the stored new token is the same grant: no second refresh
    let round = r
        .round(
            "ns",
            &accounts,
            &[secret("grant", "refresh", "rt-2")],
            None,
            NOW + MIN,
        )
        .await;
    assert!(round.refreshed.is_empty());
}

#[tokio::test]
async fn refreshes_go_through_the_egress_proxy_and_never_around_it() {
    // the mock answers as a forward proxy would: the request line carries
    // the absolute URL of a host that does not resolve
    let (e, proxy) = endpoint(200, granted("via-proxy")).await;
    let accounts = [account(
        "claude",
        "http://token.invalid/token",
        Some(&proxy),
        None,
    )];
    let secrets = [secret("grant", "refresh", "rt")];
    let round = refresher()
        .round("ns", &accounts, &secrets, None, NOW)
        .await;
    assert_eq!(
        round.tokens.get("claude").map(String::as_str),
        Some("via-proxy")
    );
    assert_eq!(e.seen.lock().unwrap().len(), 1);

    // a dead proxy fails the refresh; the endpoint itself is never tried
    let (direct, base) = endpoint(200, granted("direct")).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let accounts = [account(
        "claude",
        &format!("{base}/token"),
        Some(&format!("http://{dead}")),
        None,
    )];
    let round = refresher()
        .round("ns", &accounts, &secrets, None, NOW)
        .await;
    assert!(round.tokens.is_empty());
    assert_eq!(
        round.status["claude"].last_error.as_deref(),
        Some("cannot connect to the token endpoint")
    );
    assert!(direct.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn after_a_restart_a_published_token_still_valid_is_reused() {
    let (e, base) = endpoint(200, granted("fresh")).await;
    let status = json!({"oauth": {"expiresAt": "2023-11-14T23:13:20Z", "failures": 0}});
    let accounts = [account(
        "claude",
        &format!("{base}/token"),
        None,
        Some(status),
    )];
    let secrets = [secret("grant", "refresh", "rt")];
    let published = secret("llmpool-credentials", "claude", "published");
    let round = refresher()
        .round("ns", &accounts, &secrets, Some(&published), NOW)
        .await;
    assert_eq!(
        round.tokens.get("claude").map(String::as_str),
        Some("published")
    );
    assert!(e.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn secrets_never_reach_the_status() {
    let (_e, base) = endpoint(
        401,
        json!({"error": "rt-secret-123", "error_description": "bad rt-secret-123"}),
    )
    .await;
    let accounts = [account("claude", &format!("{base}/token"), None, None)];
    let secrets = [secret("grant", "refresh", "rt-secret-123")];
    let round = refresher()
        .round("ns", &accounts, &secrets, None, NOW)
        .await;
    let shown = serde_json::to_string(&round.status).unwrap();
    assert!(!shown.contains("rt-secret"), "{shown}");
    assert!(shown.contains("token endpoint answered 401"), "{shown}");
}

#[test]
fn backoff_doubles_from_five_minutes_to_an_hour() {
    let mins: Vec<i64> = (1..=7).map(|f| backoff_ms(f) / MIN).collect();
    assert_eq!(mins, vec![5, 10, 20, 40, 60, 60, 60]);
}
