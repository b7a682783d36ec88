//! Validation and compilation of one LlmAccount.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use sha2::{Digest, Sha256};

use super::diagnostics::Report;
use crate::account::{Limits, LlmAccount, Provider};
use crate::glob::Glob;
use crate::table::{CompiledAccount, CompiledLimits};

/// Headers that carry credentials: they belong in a Secret, not in the spec.
const CREDENTIAL_HEADERS: [&str; 4] = ["authorization", "x-api-key", "x-goog-api-key", "api-key"];

/// A compiled account and its resolved credential (None for keyless servers).
pub(crate) struct Resolved {
    pub(crate) account: CompiledAccount,
    pub(crate) credential: Option<String>,
}

/// Validates an account. Returns None when any error makes it unusable; every
/// problem is reported, not only the first.
pub(crate) fn compile_account(
    acc: &LlmAccount,
    secrets: &BTreeMap<String, &Secret>,
    oauth_tokens: &BTreeMap<String, String>,
    report: &mut Report<'_>,
) -> Option<Resolved> {
    let spec = &acc.spec;
    let errors_before = report.out.iter().filter(|d| d.is_error()).count();

    let base_url = match (&spec.base_url, spec.provider.default_base_url()) {
        (Some(url), _) => check_url(url, "spec.baseUrl", report),
        (None, Some(default)) => Some(default.to_owned()),
        (None, None) => {
            report.error(
                "spec.baseUrl",
                "openai-compatible accounts need a baseUrl (for example http://vllm:8000/v1)",
            );
            None
        }
    };

    for (name, value) in &spec.headers {
        let field = format!("spec.headers.{name}");
        if name.is_empty() || !name.bytes().all(is_header_name_byte) {
            report.error(&field, "not a valid HTTP header name");
        } else if CREDENTIAL_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            report.error(
                &field,
                "credentials go in a Secret via spec.credentials, not in headers",
            );
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            report.error(&field, "header values cannot contain line breaks");
        }
    }

    let credential = resolve_credential(acc, secrets, oauth_tokens, report);

    for (i, pattern) in spec.models.iter().enumerate() {
        if let Err(e) = Glob::new(pattern) {
            report.error(format!("spec.models[{i}]"), format!("`{pattern}`: {e}"));
        }
    }

    let limits = compile_limits(&acc.spec.limits, report);
    let weight = match u32::try_from(spec.weight) {
        Ok(w) if (1..=1000).contains(&w) => w,
        _ => {
            report.error(
                "spec.weight",
                format!("must be 1..1000, got {}", spec.weight),
            );
            1
        }
    };

    let egress_proxy = spec
        .egress_proxy
        .as_ref()
        .and_then(|p| check_url(p, "spec.egressProxy", report));

    let errors_after = report.out.iter().filter(|d| d.is_error()).count();
    if errors_after > errors_before {
        return None;
    }
    let credential = credential?;
    Some(Resolved {
        account: CompiledAccount {
            name: report.name.clone(),
            provider: spec.provider,
            base_url: base_url?,
            headers: spec.headers.clone(),
            models: spec.models.clone(),
            project_id: spec.project_id.clone().filter(|p| !p.is_empty()),
            limits,
            priority: spec.priority,
            weight,
            disabled: spec.disabled,
            egress_proxy,
            has_credential: credential.is_some(),
            credential_fingerprint: fingerprint(credential.as_deref().unwrap_or("")),
        },
        credential,
    })
}

/// Resolves the key. Outer None = error reported; inner None = keyless.
fn resolve_credential(
    acc: &LlmAccount,
    secrets: &BTreeMap<String, &Secret>,
    oauth_tokens: &BTreeMap<String, String>,
    report: &mut Report<'_>,
) -> Option<Option<String>> {
    let Some(creds) = &acc.spec.credentials else {
        if acc.spec.provider == Provider::OpenaiCompatible {
            return Some(None);
        }
        report.error(
            "spec.credentials",
            format!(
                "{} accounts need credentials.secretRef or credentials.oauth",
                acc.spec.provider.as_str()
            ),
        );
        return None;
    };
    match (&creds.secret_ref, &creds.oauth) {
        (Some(r), None) => {
            let field = "spec.credentials.secretRef";
            let Some(secret) = secrets.get(&r.name) else {
                report.error(field, format!("Secret {} not found", r.name));
                return None;
            };
            match secret_value(secret, &r.key) {
                SecretValue::Missing => {
                    report.error(
                        format!("{field}.key"),
                        format!("Secret {} has no key {}", r.name, r.key),
                    );
                    None
                }
                SecretValue::Invalid(why) => {
                    report.error(
                        format!("{field}.key"),
                        format!("Secret {} key {} {why}", r.name, r.key),
                    );
                    None
                }
                SecretValue::Value(v) => Some(Some(v)),
            }
        }
        (None, Some(oauth)) => {
            let field = "spec.credentials.oauth";
            check_url(&oauth.token_url, format!("{field}.tokenUrl"), report);
            let name = report.name.clone();
            match oauth_tokens.get(&name) {
                Some(token) => Some(Some(token.clone())),
                None => {
                    report.error(
                        field,
                        "no access token yet: the operator refreshes OAuth tokens (local mode supports secretRef only)",
                    );
                    None
                }
            }
        }
        (Some(_), Some(_)) => {
            report.error(
                "spec.credentials",
                "set exactly one of secretRef and oauth, not both",
            );
            None
        }
        (None, None) => {
            report.error("spec.credentials", "set one of secretRef or oauth");
            None
        }
    }
}

pub(crate) enum SecretValue {
    Missing,
    Invalid(&'static str),
    Value(String),
}

/// Reads a key the way the API server merges a Secret: stringData over data.
pub(crate) fn secret_value(secret: &Secret, key: &str) -> SecretValue {
    let raw = if let Some(s) = secret.string_data.as_ref().and_then(|d| d.get(key)) {
        s.clone().into_bytes()
    } else if let Some(b) = secret.data.as_ref().and_then(|d| d.get(key)) {
        b.0.clone()
    } else {
        return SecretValue::Missing;
    };
    let Ok(text) = String::from_utf8(raw) else {
        return SecretValue::Invalid("is not valid UTF-8");
    };
    let text = text.trim();
    if text.is_empty() {
        return SecretValue::Invalid("is empty");
    }
    if text.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return SecretValue::Invalid("contains spaces or control characters");
    }
    SecretValue::Value(text.to_owned())
}

/// Checks and converts limits (any resource's `spec.limits`).
pub(crate) fn compile_limits(l: &Limits, report: &mut Report<'_>) -> CompiledLimits {
    let mut positive = |value: Option<i64>, field: &str, max: u64| -> Option<u64> {
        let v = value?;
        if v <= 0 {
            report.error(
                format!("spec.limits.{field}"),
                format!("must be greater than 0, got {v}"),
            );
            return None;
        }
        let v = v.unsigned_abs();
        if v > max {
            report.error(
                format!("spec.limits.{field}"),
                format!("must be at most {max}, got {v}"),
            );
            return None;
        }
        Some(v)
    };
    let small = u64::from(u32::MAX);
    CompiledLimits {
        requests_per_minute: positive(l.requests_per_minute, "requestsPerMinute", small)
            .and_then(|v| u32::try_from(v).ok()),
        tokens_per_minute: positive(l.tokens_per_minute, "tokensPerMinute", u64::MAX),
        max_concurrency: positive(l.max_concurrency, "maxConcurrency", small)
            .and_then(|v| u32::try_from(v).ok()),
        daily_tokens: positive(l.daily_tokens, "dailyTokens", u64::MAX),
    }
}

/// Checks an http(s) URL; plain http is allowed with a warning. Returns the
/// URL without a trailing slash.
pub(crate) fn check_url(
    url: &str,
    field: impl Into<String>,
    report: &mut Report<'_>,
) -> Option<String> {
    let field = field.into();
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        report.warn(
            &field,
            format!("`{url}` is plain http: traffic and keys are not encrypted"),
        );
        rest
    } else {
        report.error(&field, format!("`{url}` is not an http:// or https:// URL"));
        return None;
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains('@') {
        report.error(
            &field,
            format!("`{url}` has no host (or embeds credentials)"),
        );
        return None;
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) || url.contains(['?', '#']) {
        report.error(
            &field,
            format!("`{url}` contains white space, a query or a fragment"),
        );
        return None;
    }
    Some(url.trim_end_matches('/').to_owned())
}

fn is_header_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A short, irreversible fingerprint of a credential.
fn fingerprint(credential: &str) -> String {
    let digest = Sha256::digest(credential.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}
