//! Reading a request body under the size limit.

use axum::body::Body;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::ProxyError;

/// Reads the whole body, refusing more than `limit` bytes.
pub async fn read(body: Body, limit: usize) -> Result<Bytes, ProxyError> {
    match Limited::new(body, limit).collect().await {
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
