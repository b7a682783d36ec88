//! The CustomResourceDefinition YAML generated from the types.

use kube::CustomResourceExt;

use crate::account::LlmAccount;
use crate::client::LlmClient;
use crate::route::ModelRoute;

/// Each CRD as (file name, YAML). The checked-in files under `crds/yaml/`
/// must equal these; a test fails when they drift.
pub fn crd_files() -> Result<Vec<(&'static str, String)>, serde_saphyr::SerializeError> {
    Ok(vec![
        (
            "llmaccounts.llmpool.dev.yaml",
            serde_saphyr::to_string(&LlmAccount::crd())?,
        ),
        (
            "llmclients.llmpool.dev.yaml",
            serde_saphyr::to_string(&LlmClient::crd())?,
        ),
        (
            "modelroutes.llmpool.dev.yaml",
            serde_saphyr::to_string(&ModelRoute::crd())?,
        ),
    ])
}

/// All CRDs as one multi-document YAML stream.
pub fn crds_yaml() -> Result<String, serde_saphyr::SerializeError> {
    Ok(crd_files()?
        .into_iter()
        .map(|(_, yaml)| format!("---\n{yaml}"))
        .collect())
}
