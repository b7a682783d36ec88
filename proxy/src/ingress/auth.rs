//! Client authentication: a key in `Authorization: Bearer`, `x-api-key`,
//! `x-goog-api-key` or (Gemini clients) `?key=`, checked against the named
//! clients of the snapshot and the flat key list. The key is never logged,
//! put in a metric or an error, or forwarded. The client found is recorded
//! for the request's access metrics.

use std::cell::RefCell;
use std::sync::Arc;

use http::HeaderMap;

use crate::app::App;
use crate::clients::{self, Client};
use crate::error::ProxyError;
use crate::snapshot::Snapshot;

tokio::task_local! {
    /// The named client of the request being served (set by `check`).
    static CLIENT: RefCell<Option<Arc<str>>>;
}

/// Runs a request, returning the named client it was served for, if any.
pub(super) async fn recording<F: Future>(request: F) -> (F::Output, Option<Arc<str>>) {
    CLIENT
        .scope(RefCell::new(None), async {
            let out = request.await;
            (out, CLIENT.with(|c| c.borrow().clone()))
        })
        .await
}

/// The key a request carries, if any.
fn key<'a>(headers: &'a HeaderMap, query_key: Option<&'a str>) -> Option<&'a str> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    bearer
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .or_else(|| headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()))
        .or(query_key)
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// Checks the client's key when keys are required (a flat list is set or an
/// LlmClient exists). Returns the named client, None for a flat-list key or
/// an open gateway.
pub fn check(
    app: &App,
    snapshot: &Snapshot,
    headers: &HeaderMap,
    query_key: Option<&str>,
) -> Result<Option<Arc<Client>>, ProxyError> {
    let flat = &app.settings.client_keys;
    if !flat.enabled() && !snapshot.clients.enforced() {
        return Ok(None);
    }
    let digest = clients::digest(key(headers, query_key).ok_or(ProxyError::MissingKey)?);
    if let Some(client) = snapshot.clients.find(&digest) {
        let _ = CLIENT.try_with(|c| *c.borrow_mut() = Some(client.name.clone()));
        if client.disabled {
            return Err(ProxyError::KeyDisabled {
                client: client.name.to_string(),
            });
        }
        if client.expired(now_ms()) {
            return Err(ProxyError::KeyExpired {
                client: client.name.to_string(),
            });
        }
        return Ok(Some(client.clone()));
    }
    if flat.contains(&digest) {
        return Ok(None);
    }
    Err(ProxyError::InvalidKey)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
