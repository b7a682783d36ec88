//! What the mock answers, whatever wire format it speaks: a plan read from a
//! protocol-neutral summary of the request. With tools and no tool results
//! yet, it calls the first tool (the first two with `parallel=1`); after
//! tool results, it answers with text that quotes them; otherwise it says
//! "mock reply from <label>". It thinks first when the request asks for it.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// What a request asks of the mock, in no particular protocol.
#[derive(Debug, Default)]
pub struct Turn {
    /// Tools offered: name and JSON schema.
    pub tools: Vec<(String, Value)>,
    /// Texts of the tool results in the last user turn.
    pub tool_results: Vec<String>,
    /// The request asks for thinking.
    pub thinking: bool,
}

/// The mock's answer.
#[derive(Debug, Default)]
pub struct Plan {
    /// Thinking text, if any.
    pub thinking: Option<String>,
    /// Answer text, if any.
    pub text: Option<String>,
    /// Tool calls: name and arguments.
    pub calls: Vec<(String, Value)>,
}

/// Plans the answer of account `label`.
pub fn plan(label: &str, turn: &Turn, parallel: bool) -> Plan {
    let thinking = turn.thinking.then(|| format!("mock thinking of {label}"));
    if !turn.tool_results.is_empty() {
        return Plan {
            thinking,
            text: Some(format!(
                "mock reply from {label} after tools: {}",
                turn.tool_results.join(" | ")
            )),
            calls: Vec::new(),
        };
    }
    if !turn.tools.is_empty() {
        let n = if parallel { 2 } else { 1 };
        let calls = turn
            .tools
            .iter()
            .take(n)
            .map(|(name, schema)| (name.clone(), args_for(schema)))
            .collect();
        return Plan {
            thinking,
            text: None,
            calls,
        };
    }
    Plan {
        thinking,
        text: Some(format!("mock reply from {label}")),
        calls: Vec::new(),
    }
}

/// Arguments that satisfy a schema's required properties.
fn args_for(schema: &Value) -> Value {
    let mut args = Map::new();
    for name in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let kind = schema
            .pointer(&format!("/properties/{name}/type"))
            .and_then(Value::as_str)
            .unwrap_or("string");
        let value = match kind {
            "integer" | "number" => json!(1),
            "boolean" => json!(true),
            "array" => json!([]),
            "object" => json!({}),
            _ => json!("mock"),
        };
        args.insert(name.to_owned(), value);
    }
    Value::Object(args)
}

/// The Anthropic signature the mock gives a thinking text (and checks).
pub fn anthropic_signature(thinking: &str) -> String {
    let digest = Sha256::digest(format!("mock-anthropic:{thinking}").as_bytes());
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("asig{hex}")
}

/// The Gemini thought signature the mock gives (base64 of `gsig:<label>`).
pub fn gemini_signature(label: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("gsig:{label}"))
}

/// Whether a Gemini thought signature is one the mock made.
pub fn gemini_signature_valid(sig: &str) -> bool {
    use base64::Engine;
    sig == "skip_thought_signature_validator"
        || base64::engine::general_purpose::STANDARD
            .decode(sig)
            .is_ok_and(|b| b.starts_with(b"gsig:"))
}

/// The text pieces a stream sends for `text`: its words spread over
/// `chunks` pieces, then " ." for every piece beyond the words.
pub fn pieces(text: &str, chunks: usize) -> Vec<String> {
    let words: Vec<&str> = text.split(' ').collect();
    let spread = chunks.clamp(1, words.len().max(1));
    let mut out = vec![String::new(); spread];
    for (i, w) in words.iter().enumerate() {
        let slot = i * spread / words.len().max(1);
        if i > 0 {
            out[slot].push(' ');
        }
        out[slot].push_str(w);
    }
    out.extend((spread..chunks).map(|_| " .".to_owned()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_join_to_the_reply() {
        for n in 1..5 {
            let p = pieces("mock reply from acct-a", n);
            assert_eq!(p.len(), n);
            assert_eq!(p.concat(), "mock reply from acct-a", "{n} chunks");
        }
        assert_eq!(
            pieces("mock reply from a", 6).concat(),
            "mock reply from a . ."
        );
    }

    #[test]
    fn tools_are_called_then_their_results_quoted() {
        let schema = json!({"type": "object", "properties": {"city": {"type": "string"}, "n": {"type": "integer"}}, "required": ["city", "n"]});
        let turn = Turn {
            tools: vec![("weather".into(), schema)],
            ..Turn::default()
        };
        let p = plan("a", &turn, false);
        assert_eq!(
            p.calls,
            vec![("weather".to_owned(), json!({"city": "mock", "n": 1}))]
        );
        let after = Turn {
            tool_results: vec!["sunny".into()],
            ..Turn::default()
        };
        assert_eq!(
            plan("a", &after, false).text.as_deref(),
            Some("mock reply from a after tools: sunny")
        );
    }
}
