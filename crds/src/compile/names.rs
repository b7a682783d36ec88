//! Object names as the API server accepts them. In cluster mode it refuses
//! anything else before the operator sees it; local mode reads names from
//! files, so compile() holds them to the same rule. A name becomes a key of
//! the credentials Secret, a metric label and part of Redis keys, so one
//! the API server would refuse (say `_clients.json`, the Secret's own entry
//! for client keys) must not get that far.

/// Why `name` is not a valid object name (an RFC 1123 subdomain), if it
/// is not.
pub fn invalid(name: &str) -> Option<&'static str> {
    const RULE: &str = "must be a valid object name: at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit";
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let body = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let ok =
        name.len() <= 253 && body && edge(name.bytes().next()) && edge(name.bytes().next_back());
    (!ok).then_some(RULE)
}

#[cfg(test)]
mod tests {
    use super::invalid;

    #[test]
    fn only_what_the_api_server_accepts() {
        for good in [
            "a",
            "openai-team-a",
            "gpt.4o",
            "0a",
            "a".repeat(253).as_str(),
        ] {
            assert_eq!(invalid(good), None, "{good}");
        }
        for bad in [
            "_clients.json",
            "Team-A",
            "-a",
            "a-",
            ".a",
            "a b",
            "a_b",
            "é",
            &"a".repeat(254),
        ] {
            assert!(invalid(bad).is_some(), "{bad}");
        }
    }
}
