//! Who may call the gateway: the named clients (LlmClient resources, kept as
//! SHA-256 digests of their keys, with their models and limits) and the flat
//! key list of the simple mode. Keys are looked up by digest, so the time a
//! lookup takes depends on the digest only, never on how much of a real key
//! a caller guessed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use llmpool_crds::glob::Glob;
use llmpool_crds::table::{ClientTable, CompiledLimits};
use sha2::{Digest, Sha256};

use crate::state::ClientCharge;

/// A SHA-256 digest of a client key.
pub type KeyDigest = [u8; 32];

/// The digest of a key as a client sent it (surrounding blanks ignored).
pub fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.trim().as_bytes()).into()
}

/// The flat key list of the simple mode (`--api-keys-file`,
/// `LLMPOOL_API_KEYS`): any listed key may use everything, without limits.
#[derive(Default)]
pub struct ClientKeys(HashSet<KeyDigest>);

impl ClientKeys {
    /// Builds the set from plain keys (blank entries ignored).
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        Self(
            keys.into_iter()
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(digest)
                .collect(),
        )
    }

    /// Whether any key is listed.
    pub fn enabled(&self) -> bool {
        !self.0.is_empty()
    }

    /// Whether the key with this digest is listed.
    pub fn contains(&self, digest: &KeyDigest) -> bool {
        self.0.contains(digest)
    }
}

/// One named client as requests see it.
#[derive(Debug)]
pub struct Client {
    /// LlmClient name.
    pub name: Arc<str>,
    models: Vec<Glob>,
    /// Limits across replicas.
    pub limits: CompiledLimits,
    /// Refused from this time (epoch ms).
    pub expires_at_ms: Option<u64>,
    /// Refused.
    pub disabled: bool,
}

impl Client {
    /// Whether this client may ask for `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|g| g.matches(model))
    }

    /// Whether the key has expired at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| now_ms >= at)
    }

    /// What an admission charges this client.
    pub fn charge(&self, first_attempt: bool) -> ClientCharge {
        ClientCharge {
            name: self.name.clone(),
            limits: self.limits,
            first_attempt,
        }
    }
}

/// The named clients of one configuration snapshot.
#[derive(Default)]
pub struct Directory {
    enforced: bool,
    by_digest: HashMap<KeyDigest, Arc<Client>>,
}

impl Directory {
    /// Builds the directory; entries whose digest is not 64 hex digits are
    /// left out (their keys are refused like unknown ones).
    pub fn build(table: &ClientTable) -> Self {
        let by_digest = table
            .clients
            .iter()
            .filter_map(|c| {
                let digest = parse_hex(&c.key_sha256)?;
                let client = Client {
                    name: Arc::from(c.name.as_str()),
                    models: c.models.iter().filter_map(|m| Glob::new(m).ok()).collect(),
                    limits: c.limits,
                    expires_at_ms: c.expires_at_ms,
                    disabled: c.disabled,
                };
                Some((digest, Arc::new(client)))
            })
            .collect();
        Self {
            enforced: table.enforced,
            by_digest,
        }
    }

    /// Whether named clients exist, so every request needs a key.
    pub fn enforced(&self) -> bool {
        self.enforced
    }

    /// The client whose key has this digest.
    pub fn find(&self, digest: &KeyDigest) -> Option<&Arc<Client>> {
        self.by_digest.get(digest)
    }

    /// Every client, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Client>> {
        let mut all: Vec<&Arc<Client>> = self.by_digest.values().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all.into_iter()
    }

    /// Every client's name, sorted, for metrics.
    pub fn names(&self) -> Vec<Arc<str>> {
        self.iter().map(|c| c.name.clone()).collect()
    }
}

fn parse_hex(text: &str) -> Option<KeyDigest> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmpool_crds::CompiledClient;

    #[test]
    fn a_compiled_digest_finds_the_client_of_the_plain_key() {
        let table = ClientTable {
            enforced: true,
            clients: vec![CompiledClient {
                name: "team-a".into(),
                key_sha256: llmpool_crds::compile::key_digest("sk-team-a-0123456789"),
                models: vec!["gpt-4o*".into()],
                limits: CompiledLimits::default(),
                expires_at_ms: Some(1_000),
                disabled: false,
            }],
        };
        let dir = Directory::build(&table);
        let found = dir.find(&digest(" sk-team-a-0123456789 ")).expect("found");
        assert_eq!(&*found.name, "team-a");
        assert!(found.allows("gpt-4o-mini") && !found.allows("claude-3"));
        assert!(!found.expired(999) && found.expired(1_000));
        assert!(dir.find(&digest("sk-team-a-012345678")).is_none());
    }
}
