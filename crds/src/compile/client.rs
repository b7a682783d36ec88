//! Validation and compilation of one LlmClient: its key becomes a digest,
//! its models and limits are checked the way an account's are.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use sha2::{Digest, Sha256};

use super::account::{SecretValue, compile_limits, secret_value};
use super::diagnostics::Report;
use crate::client::LlmClient;
use crate::glob::Glob;
use crate::table::CompiledClient;

/// Hex SHA-256 of a client key: what the proxies compare against.
pub fn key_digest(key: &str) -> String {
    Sha256::digest(key.trim().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Validates a client. Returns None when any error makes it unusable (its
/// key is then refused, like any unknown key).
pub(crate) fn compile_client(
    client: &LlmClient,
    secrets: &BTreeMap<String, &Secret>,
    report: &mut Report<'_>,
) -> Option<CompiledClient> {
    let spec = &client.spec;
    let errors_before = report.out.iter().filter(|d| d.is_error()).count();

    let field = "spec.keySecretRef";
    let r = &spec.key_secret_ref;
    let key = match secrets.get(&r.name).map(|s| secret_value(s, &r.key)) {
        None => {
            report.error(field, format!("Secret {} not found", r.name));
            None
        }
        Some(SecretValue::Missing) => {
            let msg = format!("Secret {} has no key {}", r.name, r.key);
            report.error(format!("{field}.key"), msg);
            None
        }
        Some(SecretValue::Invalid(why)) => {
            let msg = format!("Secret {} key {} {why}", r.name, r.key);
            report.error(format!("{field}.key"), msg);
            None
        }
        Some(SecretValue::Value(v)) => Some(v),
    };
    if key.as_ref().is_some_and(|k| k.len() < 16) {
        report.warn(
            field,
            "the key is shorter than 16 characters; use a long random key",
        );
    }

    for (i, pattern) in spec.models.iter().enumerate() {
        if let Err(e) = Glob::new(pattern) {
            report.error(format!("spec.models[{i}]"), format!("`{pattern}`: {e}"));
        }
    }
    let limits = compile_limits(&spec.limits, report);
    let expires_at_ms = match &spec.expires_at {
        None => None,
        Some(text) => match text.parse::<Timestamp>() {
            Ok(t) => Some(u64::try_from(t.as_millisecond()).unwrap_or(0)),
            Err(_) => {
                report.error(
                    "spec.expiresAt",
                    format!("`{text}` is not an RFC 3339 time (2026-12-31T00:00:00Z)"),
                );
                None
            }
        },
    };

    let errors_after = report.out.iter().filter(|d| d.is_error()).count();
    if errors_after > errors_before {
        return None;
    }
    Some(CompiledClient {
        name: report.name.clone(),
        key_sha256: key_digest(&key?),
        models: spec.models.clone(),
        limits,
        expires_at_ms,
        disabled: spec.disabled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_hex_sha256_of_the_trimmed_key() {
        assert_eq!(
            key_digest(" abc\n"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
