//! Thinking signatures across providers, statelessly. A signature made by
//! one provider kind is only ever sent back to that kind. When a client of
//! another protocol receives it, it is tagged with its origin
//! (`LPs1` + base64 of origin and value: valid base64 itself, so SDKs that
//! type signatures as bytes accept it); when the client sends the history
//! back, the tag tells where the signature may go. An untagged signature
//! belongs to the client's own protocol.
//!
//! Tool calls carry Gemini's `thoughtSignature` in their id for clients
//! whose tool calls have no signature field (`<id>__lps_<base64url>`), so
//! the signature comes back with the call's history and its result.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::Protocol;
use super::ir::Signature;

/// The tag's prefix ("LPs1" is itself four base64 characters).
const TAG: &str = "LPs1";
/// Where a tagged signature begins inside a JSON body: a quote and the tag.
pub const MARKER: &[u8] = b"\"LPs1";
/// Separator of a signature carried in a tool-call id.
const ID_SEPARATOR: &str = "__lps_";

fn origin_code(p: Protocol) -> u8 {
    match p {
        Protocol::OpenAi => b'o',
        Protocol::Anthropic => b'a',
        Protocol::Gemini => b'g',
    }
}

fn origin_of(code: u8) -> Option<Protocol> {
    match code {
        b'o' => Some(Protocol::OpenAi),
        b'a' => Some(Protocol::Anthropic),
        b'g' => Some(Protocol::Gemini),
        _ => None,
    }
}

/// The signature as a client of `client` protocol should see it: the raw
/// value when it is the client's own kind, else tagged with its origin.
pub fn for_client(sig: &Signature, client: Protocol) -> String {
    if sig.origin == client {
        return sig.value.clone();
    }
    let mut bytes = vec![origin_code(sig.origin)];
    bytes.extend_from_slice(sig.value.as_bytes());
    format!("{TAG}{}", STANDARD.encode(bytes))
}

/// Reads a signature a client of protocol `client` sent back.
pub fn from_client(value: &str, client: Protocol) -> Signature {
    if let Some(rest) = value.strip_prefix(TAG)
        && let Ok(bytes) = STANDARD.decode(rest)
        && let Some((&code, raw)) = bytes.split_first()
        && let Some(origin) = origin_of(code)
        && let Ok(raw) = String::from_utf8(raw.to_vec())
    {
        return Signature { origin, value: raw };
    }
    Signature {
        origin: client,
        value: value.to_owned(),
    }
}

/// A tool-call id carrying `sig` (returned as is when there is none).
pub fn id_with(id: &str, sig: Option<&Signature>) -> String {
    match sig {
        None => id.to_owned(),
        Some(sig) => {
            let mut bytes = vec![origin_code(sig.origin)];
            bytes.extend_from_slice(sig.value.as_bytes());
            format!("{id}{ID_SEPARATOR}{}", URL_SAFE_NO_PAD.encode(bytes))
        }
    }
}

/// Splits a tool-call id into the plain id and the signature it carries.
pub fn split_id(id: &str) -> (String, Option<Signature>) {
    if let Some((plain, encoded)) = id.rsplit_once(ID_SEPARATOR)
        && let Ok(bytes) = URL_SAFE_NO_PAD.decode(encoded)
        && let Some((&code, raw)) = bytes.split_first()
        && let Some(origin) = origin_of(code)
        && let Ok(value) = String::from_utf8(raw.to_vec())
    {
        return (plain.to_owned(), Some(Signature { origin, value }));
    }
    (id.to_owned(), None)
}

/// Whether a same-protocol body holds a tagged (foreign) signature and so
/// must be cleaned before it is forwarded.
pub fn body_has_tag(body: &[u8]) -> bool {
    memchr::memmem::find(body, MARKER).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_are_base64() {
        let sig = Signature {
            origin: Protocol::Anthropic,
            value: "EqQBCkYIBxgCKkA+/sig==".into(),
        };
        let seen = for_client(&sig, Protocol::Gemini);
        assert!(seen.starts_with("LPs1"));
        assert!(STANDARD.decode(&seen).is_ok(), "{seen} must be base64");
        assert_eq!(from_client(&seen, Protocol::Gemini), sig);
        // own-kind signatures are untouched both ways
        assert_eq!(for_client(&sig, Protocol::Anthropic), sig.value);
        assert_eq!(from_client(&sig.value, Protocol::Anthropic), sig);
        // an untagged value belongs to the client's protocol
        assert_eq!(
            from_client("abc", Protocol::Gemini).origin,
            Protocol::Gemini
        );
        assert!(body_has_tag(format!("{{\"s\":\"{seen}\"}}").as_bytes()));
    }

    #[test]
    fn ids_carry_signatures_in_safe_characters() {
        let sig = Signature {
            origin: Protocol::Gemini,
            value: "c2lnbmF0dXJl+/=".into(),
        };
        let id = id_with("call_1", Some(&sig));
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{id}"
        );
        assert_eq!(split_id(&id), ("call_1".into(), Some(sig)));
        assert_eq!(split_id("toolu_01"), ("toolu_01".into(), None));
        assert_eq!(id_with("x", None), "x");
    }
}
