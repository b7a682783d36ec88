//! Reading the same YAML a user would `kubectl apply`: multi-document files
//! holding LlmAccounts, ModelRoutes, LlmClients and Secrets. Local mode uses this; the
//! operator gets the same objects from the API server instead.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use serde::de::DeserializeOwned;

use crate::account::LlmAccount;
use crate::client::LlmClient;
use crate::compile::{Compiled, Diagnostic, Inputs, Severity, compile};
use crate::route::ModelRoute;

const API_VERSION: &str = "llmpool.dev/v1alpha1";

/// The resources read from a set of files, with where each came from.
#[derive(Clone, Debug, Default)]
pub struct Resources {
    /// LlmAccounts in file order.
    pub accounts: Vec<LlmAccount>,
    /// ModelRoutes in file order.
    pub routes: Vec<ModelRoute>,
    /// LlmClients in file order.
    pub clients: Vec<LlmClient>,
    /// Secrets in file order.
    pub secrets: Vec<Secret>,
    /// Problems found while reading (bad YAML, unknown fields, unknown kinds).
    pub diagnostics: Vec<Diagnostic>,
    origins: BTreeMap<(String, String), String>,
}

impl Resources {
    /// Adds every document of one YAML text; `origin` names the file.
    pub fn add_yaml(&mut self, text: &str, origin: &str) {
        let mut reader = text.as_bytes();
        for (i, doc) in serde_saphyr::read::<_, serde_json::Value>(&mut reader).enumerate() {
            let at = format!("{origin} (document {})", i + 1);
            match doc {
                Ok(value) => self.add_value(value, &at),
                Err(e) => {
                    // rendered without source snippets: a Secret's values
                    // must never reach a diagnostic or a log
                    let plain = serde_saphyr::render_options! {
                        snippets: serde_saphyr::SnippetMode::Off,
                    };
                    self.problem(
                        Severity::Error,
                        "file",
                        origin,
                        "",
                        format!("document {}: {}", i + 1, e.render_with_options(plain)),
                    );
                    // after a syntax error the stream cannot be resynchronised
                    break;
                }
            }
        }
    }

    fn add_value(&mut self, value: serde_json::Value, at: &str) {
        if value.is_null() {
            return;
        }
        let text = |key: &str| {
            value
                .get(key)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let (kind, api_version) = (text("kind"), text("apiVersion"));
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_owned();
        let expected = match kind.as_str() {
            "LlmAccount" | "ModelRoute" | "LlmClient" => API_VERSION,
            "Secret" => "v1",
            "" => {
                self.problem(
                    Severity::Error,
                    "file",
                    at,
                    "kind",
                    "document has no kind".to_owned(),
                );
                return;
            }
            other => {
                let msg = format!("kind {other} is not used by llmpool; ignored");
                self.problem(Severity::Warning, other, &name, "kind", msg);
                return;
            }
        };
        if api_version != expected {
            let msg = format!("expected apiVersion {expected}, got `{api_version}`");
            self.problem(Severity::Error, &kind, &name, "apiVersion", msg);
            return;
        }
        self.origins
            .insert((kind.clone(), name.clone()), at.to_owned());
        match kind.as_str() {
            "LlmAccount" => {
                if let Some(a) = self.parse(value, &kind, &name) {
                    self.accounts.push(a);
                }
            }
            "ModelRoute" => {
                if let Some(r) = self.parse(value, &kind, &name) {
                    self.routes.push(r);
                }
            }
            "LlmClient" => {
                if let Some(c) = self.parse(value, &kind, &name) {
                    self.clients.push(c);
                }
            }
            _ => {
                if let Some(s) = self.parse(value, &kind, &name) {
                    self.secrets.push(s);
                }
            }
        }
    }

    /// Deserializes one object; fields the API would not know are errors here,
    /// since the API server would silently drop a misspelt field.
    fn parse<T: DeserializeOwned>(
        &mut self,
        value: serde_json::Value,
        kind: &str,
        name: &str,
    ) -> Option<T> {
        let mut unknown = Vec::new();
        let parsed = serde_ignored::deserialize(value, |path| {
            let path = path.to_string();
            // the derived resource types check apiVersion and kind themselves
            if path != "apiVersion" && path != "kind" {
                unknown.push(path);
            }
        });
        match parsed {
            Ok(obj) => {
                for path in unknown {
                    let msg = "unknown field (misspelt?)".to_owned();
                    self.problem(Severity::Error, kind, name, &path, msg);
                }
                Some(obj)
            }
            Err(e) => {
                // a type error names the field and the expected type
                self.problem(Severity::Error, kind, name, "", e.to_string());
                None
            }
        }
    }

    fn problem(
        &mut self,
        severity: Severity,
        kind: &str,
        name: &str,
        field: &str,
        message: String,
    ) {
        let origin = self
            .origins
            .get(&(kind.to_owned(), name.to_owned()))
            .cloned();
        self.diagnostics.push(Diagnostic {
            severity,
            kind: kind.to_owned(),
            name: name.to_owned(),
            field: field.to_owned(),
            message,
            origin,
        });
    }

    /// Compiles what was read; reading problems come first, and every
    /// diagnostic names the file its resource came from.
    pub fn compile(&self) -> Compiled {
        let tokens = BTreeMap::new();
        let mut compiled = compile(&Inputs {
            accounts: &self.accounts,
            routes: &self.routes,
            clients: &self.clients,
            secrets: &self.secrets,
            oauth_tokens: &tokens,
        });
        for d in &mut compiled.diagnostics {
            d.origin = self.origins.get(&(d.kind.clone(), d.name.clone())).cloned();
        }
        let mut all = self.diagnostics.clone();
        all.append(&mut compiled.diagnostics);
        all.sort_by_key(|d| d.severity);
        compiled.diagnostics = all;
        compiled
    }
}
