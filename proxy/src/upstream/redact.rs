//! Upstream text that reaches a client or a log is cleaned of credentials
//! first: the account's own key wherever it appears, and anything shaped
//! like one (`Bearer <token>`, `key=<value>`, `sk-…` and `AIza…` keys).
//! Some providers echo the key they were sent in their error messages.

use std::sync::Arc;

/// What a redacted credential is replaced with.
const MASK: &str = "[redacted]";

/// Cleans upstream text for one account.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<[String]>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secret(s))", self.secrets.len())
    }
}

fn token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=')
}

impl Redactor {
    /// A redactor for an account whose key is `key` (None: keyless).
    pub fn new(key: Option<&str>) -> Self {
        let secrets: Vec<String> = key
            .filter(|k| k.len() >= 4)
            .map(|k| vec![k.to_owned()])
            .unwrap_or_default();
        Self {
            secrets: secrets.into(),
        }
    }

    /// Whether `bytes` hold the account's own key.
    pub fn holds_secret(&self, bytes: &[u8]) -> bool {
        self.secrets
            .iter()
            .any(|s| memchr::memmem::find(bytes, s.as_bytes()).is_some())
    }

    /// `text` without the account's key or anything shaped like a credential.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in self.secrets.iter() {
            out = out.replace(s.as_str(), MASK);
        }
        for prefix in ["Bearer ", "bearer ", "key=", "sk-", "sk_", "AIza"] {
            out = mask_after(&out, prefix);
        }
        out
    }

    /// Bytes cleaned as [`Redactor::text`] (lossy for invalid UTF-8).
    pub fn bytes(&self, bytes: &[u8]) -> bytes::Bytes {
        bytes::Bytes::from(self.text(&String::from_utf8_lossy(bytes)).into_bytes())
    }
}

/// Masks the token that follows each occurrence of `prefix` (the prefix
/// itself is kept for `Bearer ` and `key=`, masked for key-shaped ones).
fn mask_after(text: &str, prefix: &str) -> String {
    let keep_prefix = matches!(prefix, "Bearer " | "bearer " | "key=");
    let min_len = if keep_prefix { 1 } else { 12 };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(at) = text[i..].find(prefix) {
        let start = i + at;
        let mut end = start + prefix.len();
        while end < bytes.len() && token_char(bytes[end]) {
            end += 1;
        }
        out.push_str(&text[i..start]);
        if end - start - prefix.len() >= min_len
            && !text[start + prefix.len()..end].starts_with(MASK)
        {
            if keep_prefix {
                out.push_str(prefix);
            }
            out.push_str(MASK);
        } else {
            out.push_str(&text[start..end]);
        }
        i = end;
    }
    out.push_str(&text[i..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_key_shaped_tokens_are_masked() {
        let r = Redactor::new(Some("my-account-key-123"));
        let body = r#"{"error":{"message":"Incorrect API key provided: my-account-key-123. Header was Bearer abc.def, url ?key=AIzaSyA1234567890abcdefghijklmnopqrstu and sk-proj-ABCDEFGHIJKLMNOP"}}"#;
        let out = r.text(body);
        for leaked in [
            "my-account-key-123",
            "abc.def",
            "AIzaSyA1234567890",
            "sk-proj-ABCDEFGHIJKLMNOP",
        ] {
            assert!(!out.contains(leaked), "{leaked} in {out}");
        }
        assert!(
            out.contains("Bearer [redacted]") && out.contains("key=[redacted]"),
            "{out}"
        );
        assert!(r.holds_secret(body.as_bytes()));
        // ordinary words survive
        let plain = r.text("the model sk is busy; retry");
        assert_eq!(plain, "the model sk is busy; retry");
        assert_eq!(format!("{r:?}"), "Redactor(1 secret(s))");
    }
}
