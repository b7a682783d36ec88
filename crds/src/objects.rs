//! The two objects the operator writes per namespace and every proxy
//! replica watches: ConfigMap `<name>-routes` (the RouteTable as JSON, no
//! secrets) and Secret `<name>-credentials` (one key per account, plus the
//! client key digests and rules under [`CLIENTS_KEY`]). Both
//! carry the same content-hash annotation, so a proxy builds a snapshot only
//! from a consistent pair, and the operator skips writes when the hash is
//! unchanged.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sha2::{Digest, Sha256};

use crate::compile::CredentialSet;
use crate::table::{ClientTable, RouteTable};

/// ConfigMap key holding the RouteTable JSON.
pub const ROUTES_KEY: &str = "routes.json";
/// Secret key holding the ClientTable JSON. An underscore cannot begin an
/// object name, so no account's key can collide with it.
pub const CLIENTS_KEY: &str = "_clients.json";
/// Annotation carrying the content hash on both objects.
pub const HASH_ANNOTATION: &str = "llmpool.dev/content-hash";
/// Largest data either object may hold (the API server refuses objects over
/// 1 MiB; the rest is left for metadata).
pub const MAX_DATA_BYTES: usize = 1_000_000;

/// `<name>-routes`.
pub fn routes_name(name: &str) -> String {
    format!("{name}-routes")
}

/// `<name>-credentials`.
pub fn credentials_name(name: &str) -> String {
    format!("{name}-credentials")
}

/// The standard labels that make both objects findable.
pub fn labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/part-of".to_owned(), "llmpool".to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "llmpool-operator".to_owned(),
        ),
        ("app.kubernetes.io/instance".to_owned(), name.to_owned()),
    ])
}

/// The pair of objects for one namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// `<name>-routes`.
    pub configmap: ConfigMap,
    /// `<name>-credentials`.
    pub secret: Secret,
    /// The content hash both carry.
    pub hash: String,
}

/// Why the objects cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Over the size an object may have.
    #[error(
        "{object} would hold {bytes} bytes, over the {MAX_DATA_BYTES} byte limit of one object"
    )]
    TooLarge {
        /// Which object.
        object: String,
        /// Its data size.
        bytes: usize,
    },
    /// The table could not be serialised.
    #[error("the route table could not be serialised: {0}")]
    Json(#[from] serde_json::Error),
}

/// Why a pair of objects cannot be used (yet).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The ConfigMap has no routes.json.
    #[error("ConfigMap has no {ROUTES_KEY}")]
    MissingRoutes,
    /// The objects were written by different reconciles; wait for the other.
    #[error("routes and credentials are from different versions ({routes} vs {credentials})")]
    Inconsistent {
        /// Hash on the ConfigMap.
        routes: String,
        /// Hash on the Secret.
        credentials: String,
    },
    /// The JSON does not parse.
    #[error("routes.json is not a RouteTable: {0}")]
    Json(#[from] serde_json::Error),
    /// The client table does not parse.
    #[error("{CLIENTS_KEY} is not a client table")]
    Clients,
    /// A credential is not UTF-8.
    #[error("credential of account {0} is not UTF-8")]
    Credential(String),
}

/// Hash of everything the proxies consume. SHA-256, so it reveals nothing
/// of the credentials it covers.
pub fn content_hash(table_json: &str, credentials: &CredentialSet, clients_json: &str) -> String {
    let mut h = Sha256::new();
    h.update(table_json.as_bytes());
    h.update([0]);
    h.update(clients_json.as_bytes());
    for (account, key) in credentials.iter() {
        h.update([0]);
        h.update(account.as_bytes());
        h.update([0]);
        h.update(key.as_bytes());
    }
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Renders the two objects for `namespace`, named after `name`.
pub fn render(
    name: &str,
    namespace: &str,
    table: &RouteTable,
    credentials: &CredentialSet,
    clients: &ClientTable,
) -> Result<Rendered, RenderError> {
    let json = serde_json::to_string(table)?;
    let clients_json = serde_json::to_string(clients)?;
    let hash = content_hash(&json, credentials, &clients_json);
    let meta = |object: String| ObjectMeta {
        name: Some(object),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels(name)),
        annotations: Some(BTreeMap::from([(HASH_ANNOTATION.to_owned(), hash.clone())])),
        ..ObjectMeta::default()
    };
    if json.len() > MAX_DATA_BYTES {
        return Err(RenderError::TooLarge {
            object: routes_name(name),
            bytes: json.len(),
        });
    }
    let mut data: BTreeMap<String, ByteString> = credentials
        .iter()
        .map(|(account, key)| (account.clone(), ByteString(key.clone().into_bytes())))
        .collect();
    data.insert(
        CLIENTS_KEY.to_owned(),
        ByteString(clients_json.into_bytes()),
    );
    let secret_bytes: usize = data.iter().map(|(k, v)| k.len() + v.0.len()).sum();
    if secret_bytes > MAX_DATA_BYTES {
        return Err(RenderError::TooLarge {
            object: credentials_name(name),
            bytes: secret_bytes,
        });
    }
    Ok(Rendered {
        configmap: ConfigMap {
            metadata: meta(routes_name(name)),
            data: Some(BTreeMap::from([(ROUTES_KEY.to_owned(), json)])),
            ..ConfigMap::default()
        },
        secret: Secret {
            metadata: meta(credentials_name(name)),
            type_: Some("Opaque".to_owned()),
            data: Some(data),
            ..Secret::default()
        },
        hash,
    })
}

fn hash_of(meta: &ObjectMeta) -> String {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(HASH_ANNOTATION))
        .cloned()
        .unwrap_or_default()
}

/// What a consistent pair holds.
#[derive(Debug)]
pub struct Contents {
    /// Routes and accounts.
    pub table: RouteTable,
    /// Account keys.
    pub credentials: CredentialSet,
    /// Client key digests and rules (empty when written before clients).
    pub clients: ClientTable,
    /// The content hash both objects carry.
    pub hash: String,
}

/// Reads a consistent pair back into a table, credentials and clients.
pub fn read(configmap: &ConfigMap, secret: &Secret) -> Result<Contents, ReadError> {
    let (routes, credentials) = (hash_of(&configmap.metadata), hash_of(&secret.metadata));
    if routes != credentials || routes.is_empty() {
        return Err(ReadError::Inconsistent {
            routes,
            credentials,
        });
    }
    let json = configmap
        .data
        .as_ref()
        .and_then(|d| d.get(ROUTES_KEY))
        .ok_or(ReadError::MissingRoutes)?;
    let table: RouteTable = serde_json::from_str(json)?;
    let mut keys = BTreeMap::new();
    let mut clients = ClientTable::default();
    for (account, value) in secret.data.iter().flatten() {
        if account == CLIENTS_KEY {
            clients = serde_json::from_slice(&value.0).map_err(|_| ReadError::Clients)?;
            continue;
        }
        let key = String::from_utf8(value.0.clone())
            .map_err(|_| ReadError::Credential(account.clone()))?;
        keys.insert(account.clone(), key);
    }
    Ok(Contents {
        table,
        credentials: CredentialSet::new(keys),
        clients,
        hash: routes,
    })
}
