//! Client authentication: a key in `Authorization: Bearer`, `x-api-key`,
//! `x-goog-api-key` or (Gemini clients) `?key=`, checked against the
//! configured keys. The key is never logged, put in a metric or an error,
//! or forwarded.

use http::HeaderMap;

use crate::app::ClientKeys;
use crate::error::ProxyError;

/// Checks the client's key when client keys are configured.
pub fn check(
    keys: &ClientKeys,
    headers: &HeaderMap,
    query_key: Option<&str>,
) -> Result<(), ProxyError> {
    if !keys.enabled() {
        return Ok(());
    }
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let key = bearer
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .or_else(|| headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()))
        .or(query_key)
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(ProxyError::MissingKey)?;
    if keys.accepts(key) {
        Ok(())
    } else {
        Err(ProxyError::InvalidKey)
    }
}
