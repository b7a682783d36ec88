//! Reading a request body under the size and time limits.

use axum::body::Body;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::ProxyError;

/// Reads the whole body, refusing more than `limit` bytes or a body that
/// has not arrived within `within`.
pub async fn read(body: Body, limit: usize, within: Duration) -> Result<Bytes, ProxyError> {
    let collected = tokio::time::timeout(within, Limited::new(body, limit).collect())
        .await
        .map_err(|_| ProxyError::BodyTimeout { within })?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ProxyError::BodyTooLarge { limit })
        }
        Err(e) => match e.downcast::<axum::Error>() {
            Ok(e) => Err(ProxyError::BodyRead(*e)),
            Err(other) => Err(ProxyError::BodyRead(axum::Error::new(other))),
        },
    }
}
