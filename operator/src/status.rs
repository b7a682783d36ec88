//! From a namespace's compile result to the conditions of each resource.
//! Pure: the reconciler decides what to patch by comparing with what the
//! resource already shows, keeping `lastTransitionTime` when nothing changed.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use llmpool_crds::account::OAuthStatus;
use llmpool_crds::{Compiled, Diagnostic, Severity};

/// A condition without its timestamps, as the compile result implies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// Ready, CredentialsResolved, ...
    pub kind: &'static str,
    /// True or False.
    pub ok: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// What is wrong and how to fix it, or what is fine.
    pub message: String,
}

/// Ready is False on every resource when the compiled table does not fit.
fn too_large(message: &str) -> Wanted {
    Wanted {
        kind: "Ready",
        ok: false,
        reason: "TableTooLarge",
        message: format!(
            "{message}; the proxies keep the last table that fit: split the namespace's routes or accounts"
        ),
    }
}

/// The Refreshing condition of an OAuth account.
fn refreshing(oauth: &OAuthStatus) -> Wanted {
    if oauth.failures > 0 {
        let error = oauth.last_error.as_deref().unwrap_or("refresh failed");
        let next = oauth.next_attempt.as_deref().unwrap_or("later");
        Wanted {
            kind: "Refreshing",
            ok: false,
            reason: "RefreshFailing",
            message: format!(
                "{error}; {} failure(s) in a row, next attempt at {next}; check the refresh token Secret and the token endpoint",
                oauth.failures
            ),
        }
    } else {
        Wanted {
            kind: "Refreshing",
            ok: true,
            reason: "TokenValid",
            message: match &oauth.expires_at {
                Some(at) => format!("access token valid until {at}"),
                None => "waiting for the first refresh".to_owned(),
            },
        }
    }
}

/// The conditions of one LlmAccount: Ready, CredentialsResolved, and
/// Refreshing for OAuth accounts. `blocked` overrides Ready.
pub fn account_conditions(
    compiled: &Compiled,
    name: &str,
    oauth: Option<&OAuthStatus>,
    blocked: Option<&str>,
) -> Vec<Wanted> {
    let problems = of(compiled, "LlmAccount", name);
    let errors: Vec<&Diagnostic> = problems.iter().copied().filter(|d| d.is_error()).collect();
    let credential_errors: Vec<&Diagnostic> = errors
        .iter()
        .copied()
        .filter(|d| d.field.starts_with("spec.credentials"))
        .collect();
    let credentials = if credential_errors.is_empty() {
        Wanted {
            kind: "CredentialsResolved",
            ok: true,
            reason: "Resolved",
            message: "credentials found".to_owned(),
        }
    } else {
        Wanted {
            kind: "CredentialsResolved",
            ok: false,
            reason: "CredentialsMissing",
            message: join(&credential_errors),
        }
    };
    let ready = if errors.is_empty() {
        let users = compiled
            .table
            .routes
            .iter()
            .filter(|r| r.tiers.iter().any(|t| t.accounts.iter().any(|a| a == name)))
            .count();
        let mut message = format!("usable; in {users} route(s)");
        let warnings: Vec<&Diagnostic> =
            problems.iter().copied().filter(|d| !d.is_error()).collect();
        if !warnings.is_empty() {
            message = format!("{message}; {}", join(&warnings));
        }
        Wanted {
            kind: "Ready",
            ok: true,
            reason: "Compiled",
            message,
        }
    } else {
        Wanted {
            kind: "Ready",
            ok: false,
            reason: "Invalid",
            message: join(&errors),
        }
    };
    let ready = blocked.map_or(ready, too_large);
    let mut conditions = vec![ready, credentials];
    conditions.extend(oauth.map(refreshing));
    conditions
}

/// The condition of one LlmClient: Ready when its key is resolved and the
/// proxies accept it (they refuse it otherwise, since an LlmClient exists).
/// `blocked` overrides Ready.
pub fn client_conditions(compiled: &Compiled, name: &str, blocked: Option<&str>) -> Vec<Wanted> {
    let problems = of(compiled, "LlmClient", name);
    let errors: Vec<&Diagnostic> = problems.iter().copied().filter(|d| d.is_error()).collect();
    let ready = if !errors.is_empty() {
        Wanted {
            kind: "Ready",
            ok: false,
            reason: "Invalid",
            message: format!("{}; the key is refused until this is fixed", join(&errors)),
        }
    } else {
        let client = compiled.clients.clients.iter().find(|c| c.name == name);
        let mut message = match client {
            Some(c) if c.disabled => "key accepted by the proxies; disabled, so refused".to_owned(),
            Some(c) if c.models.is_empty() => "key accepted for every route".to_owned(),
            Some(c) => format!("key accepted for {}", c.models.join(", ")),
            None => "not compiled".to_owned(),
        };
        let warnings: Vec<&Diagnostic> =
            problems.iter().copied().filter(|d| !d.is_error()).collect();
        if !warnings.is_empty() {
            message = format!("{message}; {}", join(&warnings));
        }
        Wanted {
            kind: "Ready",
            ok: client.is_some(),
            reason: "Compiled",
            message,
        }
    };
    vec![blocked.map_or(ready, too_large)]
}

/// The conditions of one ModelRoute, and its usable accounts per tier.
/// `blocked` overrides Ready.
pub fn route_conditions(
    compiled: &Compiled,
    name: &str,
    blocked: Option<&str>,
) -> (Vec<Wanted>, Vec<i32>) {
    let (mut conditions, tiers) = route_conditions_compiled(compiled, name);
    if let Some(message) = blocked {
        conditions[0] = too_large(message);
    }
    (conditions, tiers)
}

fn route_conditions_compiled(compiled: &Compiled, name: &str) -> (Vec<Wanted>, Vec<i32>) {
    let problems = of(compiled, "ModelRoute", name);
    let errors: Vec<&Diagnostic> = problems
        .iter()
        .copied()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    let Some(route) = compiled.table.routes.iter().find(|r| r.name == name) else {
        let message = if errors.is_empty() {
            "not compiled".to_owned()
        } else {
            join(&errors)
        };
        return (
            vec![Wanted {
                kind: "Ready",
                ok: false,
                reason: "Invalid",
                message,
            }],
            Vec::new(),
        );
    };
    let tiers: Vec<i32> = route
        .tiers
        .iter()
        .map(|t| i32::try_from(t.accounts.len()).unwrap_or(i32::MAX))
        .collect();
    let mut reasons: Vec<String> = errors.iter().map(|d| d.to_string()).collect();
    reasons.extend(route.problems.iter().cloned());
    let ready = if route.ready && errors.is_empty() {
        let message = if reasons.is_empty() {
            "serving".to_owned()
        } else {
            format!("serving; {}", reasons.join("; "))
        };
        Wanted {
            kind: "Ready",
            ok: true,
            reason: "Serving",
            message,
        }
    } else if !errors.is_empty() {
        Wanted {
            kind: "Ready",
            ok: false,
            reason: "Invalid",
            message: reasons.join("; "),
        }
    } else {
        Wanted {
            kind: "Ready",
            ok: false,
            reason: "NoUsableAccount",
            message: reasons.join("; "),
        }
    };
    (vec![ready], tiers)
}

fn of<'a>(compiled: &'a Compiled, kind: &str, name: &str) -> Vec<&'a Diagnostic> {
    compiled
        .diagnostics
        .iter()
        .filter(|d| d.kind == kind && d.name == name)
        .collect()
}

/// Joins messages without the resource prefix (the condition sits on it).
fn join(diagnostics: &[&Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| {
            if d.field.is_empty() {
                d.message.clone()
            } else {
                format!("{}: {}", d.field, d.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Turns wanted conditions into Kubernetes conditions, keeping the
/// transition time of any condition whose status did not change.
pub fn merge(
    existing: &[Condition],
    wanted: &[Wanted],
    generation: Option<i64>,
    now: Time,
) -> Vec<Condition> {
    let previous: BTreeMap<&str, &Condition> =
        existing.iter().map(|c| (c.type_.as_str(), c)).collect();
    wanted
        .iter()
        .map(|w| {
            let status = if w.ok { "True" } else { "False" }.to_owned();
            let last_transition_time = match previous.get(w.kind) {
                Some(c) if c.status == status => c.last_transition_time.clone(),
                _ => now.clone(),
            };
            Condition {
                type_: w.kind.to_owned(),
                status,
                reason: w.reason.to_owned(),
                message: w.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
