//! Validation and compilation of one ModelRoute against the usable accounts.

use std::collections::BTreeMap;

use super::diagnostics::Report;
use super::selector;
use crate::account::LlmAccount;
use crate::duration::parse_duration;
use crate::glob::Glob;
use crate::route::{FailureClass, ModelRoute};
use crate::table::{
    CompiledAccount, CompiledRoute, CompiledTier, CooldownPolicy, RetryPolicy, SessionPolicy,
    defaults,
};

/// Most tiers a route may have (the CRD schema says the same).
const MAX_TIERS: usize = 16;

/// Which route already claimed a pattern (for duplicate detection).
pub(crate) type Claimed = BTreeMap<String, String>;

/// Compiles one route. Bad parts are dropped and reported; the route itself
/// is always returned so that a route that cannot serve stays visible.
pub(crate) fn compile_route(
    route: &ModelRoute,
    all_accounts: &BTreeMap<String, &LlmAccount>,
    usable: &BTreeMap<String, CompiledAccount>,
    claimed: &mut Claimed,
    report: &mut Report<'_>,
) -> CompiledRoute {
    let spec = &route.spec;
    let mut problems = Vec::new();

    let mut models = Vec::new();
    if spec.models.is_empty() {
        report.error("spec.models", "list at least one model name or glob");
    }
    for (i, pattern) in spec.models.iter().enumerate() {
        let field = format!("spec.models[{i}]");
        if let Err(e) = Glob::new(pattern) {
            report.error(field, format!("`{pattern}`: {e}"));
            continue;
        }
        if models.contains(pattern) {
            report.warn(field, format!("`{pattern}` is listed twice"));
            continue;
        }
        if let Some(owner) = claimed.get(pattern) {
            report.error(
                field,
                format!("`{pattern}` is already routed by ModelRoute {owner}"),
            );
            continue;
        }
        claimed.insert(pattern.clone(), report.name.clone());
        models.push(pattern.clone());
    }

    if spec.targets.is_empty() {
        report.error("spec.targets", "list at least one tier of accounts");
    }
    if spec.targets.len() > MAX_TIERS {
        report.error(
            "spec.targets",
            format!("at most {MAX_TIERS} tiers, got {}", spec.targets.len()),
        );
    }
    let mut tiers = Vec::new();
    for (t, tier) in spec.targets.iter().enumerate() {
        let field = format!("spec.targets[{t}]");
        let mut names = Vec::new();
        for (i, name) in tier.accounts.names.iter().enumerate() {
            let f = format!("{field}.accounts.names[{i}]");
            if !all_accounts.contains_key(name) {
                report.error(f, format!("LlmAccount {name} not found"));
            } else if !usable.contains_key(name) {
                problems.push(format!(
                    "account {name} in tier {t} is not usable (see its status)"
                ));
            } else {
                names.push(name.clone());
            }
        }
        if let Some(sel) = &tier.accounts.selector {
            let invalid = selector::validate(sel);
            for (suffix, message) in &invalid {
                let f = format!("{field}.accounts.selector");
                report.error(
                    if suffix.is_empty() {
                        f
                    } else {
                        format!("{f}.{suffix}")
                    },
                    message,
                );
            }
            if invalid.is_empty() {
                let picked = all_accounts.iter().filter(|(_, a)| {
                    selector::matches(sel, a.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))
                });
                let mut found = false;
                for (name, _) in picked {
                    found = true;
                    if usable.contains_key(name) {
                        names.push(name.clone());
                    } else {
                        problems.push(format!(
                            "account {name} in tier {t} is not usable (see its status)"
                        ));
                    }
                }
                if !found {
                    report.warn(
                        format!("{field}.accounts.selector"),
                        "selects no LlmAccount",
                    );
                }
            }
        }
        if tier.accounts.names.is_empty() && tier.accounts.selector.is_none() {
            report.error(
                format!("{field}.accounts"),
                "name accounts or give a label selector",
            );
        }
        if let Some(model) = &tier.model
            && (model.is_empty() || model.chars().any(|c| c.is_whitespace() || c == '*'))
        {
            report.error(
                format!("{field}.model"),
                format!("`{model}` is not an upstream model name"),
            );
        }
        names.sort();
        names.dedup();
        if names.is_empty() {
            problems.push(format!("tier {t} has no usable account"));
        }
        tiers.push(CompiledTier {
            accounts: names,
            model: tier.model.clone(),
        });
    }

    let enabled = |name: &String| usable.get(name).is_some_and(|a| !a.disabled);
    let ready = !models.is_empty() && tiers.iter().any(|t| t.accounts.iter().any(enabled));
    if !ready && !models.is_empty() {
        problems.push("no tier has a usable, enabled account".to_owned());
    }

    CompiledRoute {
        name: report.name.clone(),
        models,
        strategy: spec.strategy,
        tiers,
        session: session_policy(route, report),
        retry: retry_policy(route, report),
        cooldown: cooldown_policy(route, report),
        ready,
        problems,
    }
}

fn duration_ms(value: Option<&String>, field: &str, default: u64, report: &mut Report<'_>) -> u64 {
    let Some(text) = value else { return default };
    match parse_duration(text) {
        Ok(d) if d.is_zero() => {
            report.error(field, "must be greater than 0");
            default
        }
        Ok(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        Err(e) => {
            report.error(field, e.to_string());
            default
        }
    }
}

fn session_policy(route: &ModelRoute, report: &mut Report<'_>) -> SessionPolicy {
    let spec = route.spec.session.clone().unwrap_or_default();
    let header = spec
        .header
        .unwrap_or_else(|| defaults::SESSION_HEADER.to_owned());
    if header.is_empty()
        || !header
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        report.error(
            "spec.session.header",
            format!("`{header}` is not a header name"),
        );
    }
    SessionPolicy {
        header: header.to_ascii_lowercase(),
        ttl_ms: duration_ms(
            spec.ttl.as_ref(),
            "spec.session.ttl",
            defaults::SESSION_TTL_MS,
            report,
        ),
    }
}

fn retry_policy(route: &ModelRoute, report: &mut Report<'_>) -> RetryPolicy {
    let spec = route.spec.retry.clone().unwrap_or_default();
    let max_attempts = match spec.max_attempts {
        None => defaults::MAX_ATTEMPTS,
        Some(n) if (1..=20).contains(&n) => u32::try_from(n).unwrap_or(defaults::MAX_ATTEMPTS),
        Some(n) => {
            report.error("spec.retry.maxAttempts", format!("must be 1..20, got {n}"));
            defaults::MAX_ATTEMPTS
        }
    };
    let all = vec![
        FailureClass::RateLimited,
        FailureClass::ServerError,
        FailureClass::Overloaded,
        FailureClass::Connect,
        FailureClass::Timeout,
        FailureClass::Auth,
    ];
    RetryPolicy {
        max_attempts,
        per_try_timeout_ms: duration_ms(
            spec.per_try_timeout.as_ref(),
            "spec.retry.perTryTimeout",
            defaults::PER_TRY_TIMEOUT_MS,
            report,
        ),
        first_byte_timeout_ms: duration_ms(
            spec.first_byte_timeout.as_ref(),
            "spec.retry.firstByteTimeout",
            defaults::FIRST_BYTE_TIMEOUT_MS,
            report,
        ),
        request_timeout_ms: duration_ms(
            spec.request_timeout.as_ref(),
            "spec.retry.requestTimeout",
            defaults::REQUEST_TIMEOUT_MS,
            report,
        ),
        stream_idle_timeout_ms: duration_ms(
            spec.stream_idle_timeout.as_ref(),
            "spec.retry.streamIdleTimeout",
            defaults::STREAM_IDLE_TIMEOUT_MS,
            report,
        ),
        connect_timeout_ms: duration_ms(
            spec.connect_timeout.as_ref(),
            "spec.retry.connectTimeout",
            defaults::CONNECT_TIMEOUT_MS,
            report,
        ),
        rotate_on: spec.rotate_on.unwrap_or(all),
    }
}

fn cooldown_policy(route: &ModelRoute, report: &mut Report<'_>) -> CooldownPolicy {
    let spec = route.spec.cooldown.clone().unwrap_or_default();
    let default_ms = duration_ms(
        spec.default.as_ref(),
        "spec.cooldown.default",
        defaults::COOLDOWN_MS,
        report,
    );
    let max_ms = duration_ms(
        spec.max.as_ref(),
        "spec.cooldown.max",
        defaults::COOLDOWN_MAX_MS,
        report,
    );
    if default_ms > max_ms {
        report.error("spec.cooldown.default", "is longer than spec.cooldown.max");
    }
    CooldownPolicy { default_ms, max_ms }
}
