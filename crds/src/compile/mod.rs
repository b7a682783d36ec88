//! `compile()`: from LlmAccounts, ModelRoutes and Secrets to a [`RouteTable`]
//! plus the resolved credentials. The operator and local mode both call it,
//! so a configuration behaves the same in and out of a cluster.
//!
//! Compilation never stops at the first problem: every problem is reported
//! with its resource and field path, unusable accounts are left out, and
//! routes are always kept (marked not ready when nothing can serve them).

mod account;
mod diagnostics;
mod route;
mod selector;

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Secret;

use diagnostics::Report;
pub use diagnostics::{Diagnostic, Severity};

use crate::account::LlmAccount;
use crate::route::ModelRoute;
use crate::table::RouteTable;

/// What compile() reads.
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    /// All LlmAccounts of the namespace.
    pub accounts: &'a [LlmAccount],
    /// All ModelRoutes of the namespace.
    pub routes: &'a [ModelRoute],
    /// The Secrets the accounts may reference.
    pub secrets: &'a [Secret],
    /// Current OAuth access tokens by account name (kept by the operator).
    pub oauth_tokens: &'a BTreeMap<String, String>,
}

/// What compile() produces.
#[derive(Clone, Debug, Default)]
pub struct Compiled {
    /// Routes and usable accounts (no secrets).
    pub table: RouteTable,
    /// Resolved keys by account name.
    pub credentials: CredentialSet,
    /// Every problem found, errors first.
    pub diagnostics: Vec<Diagnostic>,
}

impl Compiled {
    /// The problems that make a resource (or part of one) unusable.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    /// Whether any resource has an error.
    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

/// API keys by account name. Debug output shows the names only, so a stray
/// `{:?}` can never leak a key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CredentialSet(BTreeMap<String, String>);

impl CredentialSet {
    /// Builds a set from account name → key.
    pub fn new(keys: BTreeMap<String, String>) -> Self {
        Self(keys)
    }

    /// The key of one account.
    pub fn get(&self, account: &str) -> Option<&str> {
        self.0.get(account).map(String::as_str)
    }

    /// All entries, for writing the credentials Secret.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }
}

impl fmt::Debug for CredentialSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Compiles one namespace's resources.
pub fn compile(inputs: &Inputs<'_>) -> Compiled {
    let mut diagnostics = Vec::new();
    let secrets: BTreeMap<String, &Secret> = inputs
        .secrets
        .iter()
        .filter_map(|s| Some((s.metadata.name.clone()?, s)))
        .collect();

    let mut all_accounts: BTreeMap<String, &LlmAccount> = BTreeMap::new();
    for acc in inputs.accounts {
        let name = acc.metadata.name.clone().unwrap_or_default();
        let mut report = Report {
            out: &mut diagnostics,
            kind: "LlmAccount",
            name: name.clone(),
        };
        if name.is_empty() {
            report.error("metadata.name", "every LlmAccount needs a name");
        } else if all_accounts.insert(name.clone(), acc).is_some() {
            report.error("metadata.name", "defined more than once");
        }
    }

    let mut table = RouteTable::default();
    let mut keys = BTreeMap::new();
    for (name, acc) in &all_accounts {
        let mut report = Report {
            out: &mut diagnostics,
            kind: "LlmAccount",
            name: name.clone(),
        };
        if let Some(resolved) =
            account::compile_account(acc, &secrets, inputs.oauth_tokens, &mut report)
        {
            if let Some(key) = resolved.credential {
                keys.insert(name.clone(), key);
            }
            table.accounts.insert(name.clone(), resolved.account);
        }
    }

    let mut routes: Vec<&ModelRoute> = inputs.routes.iter().collect();
    routes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut claimed = route::Claimed::new();
    let mut seen = std::collections::BTreeSet::new();
    for r in routes {
        let name = r.metadata.name.clone().unwrap_or_default();
        let mut report = Report {
            out: &mut diagnostics,
            kind: "ModelRoute",
            name: name.clone(),
        };
        if name.is_empty() {
            report.error("metadata.name", "every ModelRoute needs a name");
            continue;
        }
        if !seen.insert(name.clone()) {
            report.error("metadata.name", "defined more than once");
            continue;
        }
        let compiled =
            route::compile_route(r, &all_accounts, &table.accounts, &mut claimed, &mut report);
        table.routes.push(compiled);
    }

    diagnostics.sort_by_key(|d| d.severity);
    Compiled {
        table,
        credentials: CredentialSet(keys),
        diagnostics,
    }
}
