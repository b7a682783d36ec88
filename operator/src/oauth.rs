//! OAuth accounts: the operator keeps an access token per account, refreshed
//! with the account's refresh token before it expires (by `skew`), through
//! the account's egress proxy. A failed refresh backs off per account (5 min,
//! doubling, capped at 1 h, reset on success) and keeps serving the previous
//! token while it is still valid. Tokens live in memory and in the
//! credentials Secret; after a restart a token still valid there is reused.
//! Neither token is ever logged or put in a status or error message.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use llmpool_crds::LlmAccount;
use llmpool_crds::account::{OAuthCredentials, OAuthStatus, SecretKeyRef};

/// First backoff after a failed refresh.
pub const BACKOFF_FIRST_MS: i64 = 5 * 60 * 1000;
/// Longest backoff.
pub const BACKOFF_MAX_MS: i64 = 60 * 60 * 1000;
/// Error codes a token endpoint may answer (RFC 6749 5.2), the only part of
/// its answer that is shown.
const OAUTH_ERRORS: [&str; 8] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
];
/// Token lifetime assumed when the endpoint does not say.
const DEFAULT_LIFETIME_MS: i64 = 60 * 60 * 1000;

/// The backoff after `failures` consecutive failed refreshes.
pub fn backoff_ms(failures: u32) -> i64 {
    let doublings = failures.saturating_sub(1).min(10);
    (BACKOFF_FIRST_MS << doublings).min(BACKOFF_MAX_MS)
}

#[derive(Clone, Debug, Default)]
struct TokenState {
    access_token: Option<String>,
    expires_at_ms: i64,
    /// Which grant (endpoint, client, refresh token) the token came from;
    /// a changed grant refreshes at once.
    grant: u64,
    failures: u32,
    next_attempt_ms: i64,
    last_error: Option<String>,
    last_refresh_ms: Option<i64>,
}

/// One namespace's OAuth round: the tokens to compile with and what each
/// account's status should say.
#[derive(Debug, Default)]
pub struct Round {
    /// Access token by account name.
    pub tokens: BTreeMap<String, String>,
    /// Status by account name.
    pub status: BTreeMap<String, OAuthStatus>,
    /// Refresh outcomes of this round: account, error (None = refreshed).
    pub refreshed: Vec<(String, Option<String>)>,
    /// A refresh token the endpoint replaced: Secret, key, new value.
    pub rotated: Vec<(SecretKeyRef, String)>,
    /// When the next refresh (or retry) is due, epoch ms.
    pub next_due_ms: Option<i64>,
}

/// What the token endpoint answered.
struct Granted {
    access_token: String,
    lifetime_ms: i64,
    refresh_token: Option<String>,
}

/// Refreshes and remembers OAuth access tokens.
pub struct Refresher {
    skew_ms: i64,
    timeout: Duration,
    tokens: Mutex<HashMap<(String, String), TokenState>>,
}

fn rfc3339(ms: i64) -> Option<String> {
    Timestamp::from_millisecond(ms).ok().map(|t| t.to_string())
}

fn parse_ms(text: Option<&String>) -> Option<i64> {
    text?.parse::<Timestamp>().ok().map(|t| t.as_millisecond())
}

fn secret_value(secrets: &[Secret], r: &SecretKeyRef) -> Option<String> {
    let secret = secrets.iter().find(|s| s.name_any() == r.name)?;
    let bytes = secret.data.as_ref()?.get(&r.key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

fn grant_id(oauth: &OAuthCredentials, refresh: &str, client_secret: Option<&str>) -> u64 {
    let mut h = DefaultHasher::new();
    (
        &oauth.token_url,
        &oauth.client_id,
        &oauth.scopes,
        refresh,
        client_secret,
    )
        .hash(&mut h);
    h.finish()
}

impl Refresher {
    /// Refreshes `skew` before expiry; each token request times out after
    /// `timeout`.
    pub fn new(skew: Duration, timeout: Duration) -> Self {
        Self {
            skew_ms: i64::try_from(skew.as_millis()).unwrap_or(i64::MAX),
            timeout,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &(String, String)) -> Option<TokenState> {
        self.tokens.lock().ok()?.get(key).cloned()
    }

    fn put(&self, key: (String, String), state: TokenState) {
        if let Ok(mut map) = self.tokens.lock() {
            map.insert(key, state);
        }
    }

    /// Forgets every token of `ns` (its last account is gone).
    pub fn forget_namespace(&self, ns: &str) {
        self.forget_others(ns, &[]);
    }

    /// Forgets accounts of `ns` that are gone or no longer OAuth.
    fn forget_others(&self, ns: &str, keep: &[String]) {
        if let Ok(mut map) = self.tokens.lock() {
            map.retain(|(n, a), _| n != ns || keep.contains(a));
        }
    }

    /// Brings every OAuth account of `ns` up to date at `now_ms`. `secrets`
    /// are the referenced Secrets; `published` is the credentials Secret as
    /// it stands, whose tokens are reused after a restart.
    pub async fn round(
        &self,
        ns: &str,
        accounts: &[LlmAccount],
        secrets: &[Secret],
        published: Option<&Secret>,
        now_ms: i64,
    ) -> Round {
        let mut round = Round::default();
        let mut oauth_accounts = Vec::new();
        for account in accounts {
            let Some(oauth) = account
                .spec
                .credentials
                .as_ref()
                .and_then(|c| c.oauth.as_ref())
            else {
                continue;
            };
            if account
                .spec
                .credentials
                .as_ref()
                .is_some_and(|c| c.secret_ref.is_some())
            {
                continue; // both set: compile() reports it
            }
            let name = account.name_any();
            oauth_accounts.push(name.clone());
            let key = (ns.to_owned(), name.clone());
            let Some(refresh) = secret_value(secrets, &oauth.refresh_token_ref) else {
                // compile() reports the missing Secret on the account
                continue;
            };
            let client_secret = match &oauth.client_secret_ref {
                Some(r) => match secret_value(secrets, r) {
                    Some(v) => Some(v),
                    None => continue,
                },
                None => None,
            };
            let grant = grant_id(oauth, &refresh, client_secret.as_deref());
            let mut state = self
                .get(&key)
                .unwrap_or_else(|| recovered(account, published, grant));
            if state.grant != grant {
                state = TokenState {
                    grant,
                    ..TokenState::default()
                };
            }
            let fresh = state.access_token.is_some() && state.expires_at_ms - self.skew_ms > now_ms;
            if !fresh && state.next_attempt_ms <= now_ms {
                let egress = account.spec.egress_proxy.as_deref();
                match self
                    .request(oauth, &refresh, client_secret.as_deref(), egress)
                    .await
                {
                    Ok(granted) => {
                        tracing::info!(namespace = ns, account = %name, "refreshed the OAuth access token");
                        if let Some(new) = granted.refresh_token.filter(|n| *n != refresh) {
                            round
                                .rotated
                                .push((oauth.refresh_token_ref.clone(), new.clone()));
                            state.grant = grant_id(oauth, &new, client_secret.as_deref());
                        }
                        state.access_token = Some(granted.access_token);
                        state.expires_at_ms = now_ms + granted.lifetime_ms;
                        state.failures = 0;
                        state.next_attempt_ms = 0;
                        state.last_error = None;
                        state.last_refresh_ms = Some(now_ms);
                        round.refreshed.push((name.clone(), None));
                    }
                    Err(why) => {
                        state.failures += 1;
                        state.next_attempt_ms = now_ms + backoff_ms(state.failures);
                        tracing::warn!(namespace = ns, account = %name, failures = state.failures, error = %why, "OAuth refresh failed; backing off");
                        state.last_error = Some(why.clone());
                        round.refreshed.push((name.clone(), Some(why)));
                    }
                }
            }
            if let Some(token) = state
                .access_token
                .as_ref()
                .filter(|_| state.expires_at_ms > now_ms)
            {
                round.tokens.insert(name.clone(), token.clone());
            }
            let due = if state.failures > 0 {
                state.next_attempt_ms
            } else {
                state.expires_at_ms - self.skew_ms
            };
            round.next_due_ms = Some(round.next_due_ms.map_or(due, |d| d.min(due)));
            round.status.insert(
                name,
                OAuthStatus {
                    expires_at: state
                        .access_token
                        .is_some()
                        .then(|| rfc3339(state.expires_at_ms))
                        .flatten(),
                    last_refresh: state.last_refresh_ms.and_then(rfc3339),
                    failures: i32::try_from(state.failures).unwrap_or(i32::MAX),
                    next_attempt: (state.failures > 0)
                        .then(|| rfc3339(state.next_attempt_ms))
                        .flatten(),
                    last_error: state.last_error.clone(),
                },
            );
            self.put(key, state);
        }
        self.forget_others(ns, &oauth_accounts);
        round
    }

    /// One refresh_token grant. The error names the HTTP status and the
    /// endpoint's `error` code only: bodies may echo what was sent.
    async fn request(
        &self,
        oauth: &OAuthCredentials,
        refresh: &str,
        client_secret: Option<&str>,
        egress: Option<&str>,
    ) -> Result<Granted, String> {
        let mut builder = reqwest::Client::builder().timeout(self.timeout).no_proxy();
        if let Some(proxy) = egress {
            // an unusable egress proxy fails the refresh: never go direct
            let proxy = reqwest::Proxy::all(proxy).map_err(|_| "egress proxy is unusable")?;
            builder = builder.proxy(proxy);
        }
        let client = builder.build().map_err(|_| "cannot build an HTTP client")?;
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &oauth.client_id),
        ];
        if let Some(secret) = client_secret {
            form.push(("client_secret", secret));
        }
        let scope = oauth.scopes.join(" ");
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        let response = client
            .post(&oauth.token_url)
            .header("accept", "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "token endpoint timed out".to_owned()
                } else if e.is_connect() {
                    "cannot connect to the token endpoint".to_owned()
                } else {
                    "token request failed".to_owned()
                }
            })?;
        let status = response.status();
        let json: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            let code = json
                .get("error")
                .and_then(|e| e.as_str())
                // only the codes RFC 6749 defines: anything else could echo
                // what was sent
                .filter(|c| OAUTH_ERRORS.contains(c))
                .map(|c| format!(" {c}"))
                .unwrap_or_default();
            return Err(format!("token endpoint answered {}{code}", status.as_u16()));
        }
        let access_token = json
            .get("access_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or("token endpoint answered without an access_token")?
            .to_owned();
        let lifetime_ms = json
            .get("expires_in")
            .and_then(|e| e.as_i64().or_else(|| e.as_str()?.parse().ok()))
            .filter(|&s| s > 0)
            .map_or(DEFAULT_LIFETIME_MS, |s| s.saturating_mul(1000));
        let refresh_token = json
            .get("refresh_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        Ok(Granted {
            access_token,
            lifetime_ms,
            refresh_token,
        })
    }
}

/// A token published before a restart, if the status says until when it
/// is valid; failures and backoff carry over too.
fn recovered(account: &LlmAccount, published: Option<&Secret>, grant: u64) -> TokenState {
    let status = account.status.as_ref().and_then(|s| s.oauth.as_ref());
    let token = published
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(&account.name_any()))
        .and_then(|b| String::from_utf8(b.0.clone()).ok());
    let expires = status.and_then(|s| parse_ms(s.expires_at.as_ref()));
    let mut state = TokenState {
        grant,
        ..TokenState::default()
    };
    if let (Some(token), Some(expires)) = (token, expires) {
        state.access_token = Some(token);
        state.expires_at_ms = expires;
    }
    if let Some(s) = status {
        state.failures = u32::try_from(s.failures).unwrap_or(0);
        state.next_attempt_ms = parse_ms(s.next_attempt.as_ref()).unwrap_or(0);
        state.last_error = s.last_error.clone();
        state.last_refresh_ms = parse_ms(s.last_refresh.as_ref());
    }
    state
}

#[cfg(test)]
mod tests;
