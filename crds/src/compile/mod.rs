//! `compile()`: from LlmAccounts, ModelRoutes and Secrets to a [`RouteTable`]
//! plus the resolved credentials. The operator and local mode both call it,
//! so a configuration behaves the same in and out of a cluster.
//!
//! Compilation never stops at the first problem: every problem is reported
//! with its resource and field path, unusable accounts are left out, and
//! routes are always kept (marked not ready when nothing can serve them).

mod account;
mod client;
mod diagnostics;
mod names;
mod route;
mod selector;

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Secret;

pub use client::key_digest;
use diagnostics::Report;
pub use diagnostics::{Diagnostic, Severity};

use crate::account::LlmAccount;
use crate::client::LlmClient;
use crate::route::ModelRoute;
use crate::table::{ClientTable, RouteTable};

/// What compile() reads.
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    /// All LlmAccounts of the namespace.
    pub accounts: &'a [LlmAccount],
    /// All ModelRoutes of the namespace.
    pub routes: &'a [ModelRoute],
    /// All LlmClients of the namespace.
    pub clients: &'a [LlmClient],
    /// The Secrets the accounts and clients may reference.
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
    /// Client keys (digests) and their rules.
    pub clients: ClientTable,
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
        } else if let Some(why) = names::invalid(&name) {
            report.error("metadata.name", why);
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
        if let Some(why) = names::invalid(&name) {
            report.error("metadata.name", why);
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

    let clients = compile_clients(inputs.clients, &secrets, &mut diagnostics);
    diagnostics.sort_by_key(|d| d.severity);
    Compiled {
        table,
        credentials: CredentialSet(keys),
        clients,
        diagnostics,
    }
}

/// Compiles the clients, sorted by name; a key used by two clients is kept
/// only for the first.
fn compile_clients(
    clients: &[LlmClient],
    secrets: &BTreeMap<String, &Secret>,
    diagnostics: &mut Vec<Diagnostic>,
) -> ClientTable {
    let mut sorted: Vec<&LlmClient> = clients.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut table = ClientTable {
        enforced: !clients.is_empty(),
        clients: Vec::new(),
    };
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    for c in sorted {
        let name = c.metadata.name.clone().unwrap_or_default();
        let mut report = Report {
            out: diagnostics,
            kind: "LlmClient",
            name: name.clone(),
        };
        if name.is_empty() {
            report.error("metadata.name", "every LlmClient needs a name");
            continue;
        }
        if let Some(why) = names::invalid(&name) {
            report.error("metadata.name", why);
            continue;
        }
        if table.clients.iter().any(|k| k.name == name) {
            report.error("metadata.name", "defined more than once");
            continue;
        }
        let Some(compiled) = client::compile_client(c, secrets, &mut report) else {
            continue;
        };
        if let Some(owner) = owners.get(&compiled.key_sha256) {
            report.error(
                "spec.keySecretRef",
                format!("LlmClient {owner} already uses the same key; each client needs its own"),
            );
            continue;
        }
        owners.insert(compiled.key_sha256.clone(), name);
        table.clients.push(compiled);
    }
    table
}
