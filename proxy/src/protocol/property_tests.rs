//! Property tests: any request a client of one protocol can send either
//! translates to every target or fails with an error (never a panic), and
//! when it translates, the target's structural rules hold; every stream
//! translator survives arbitrary splits and arbitrary garbage.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::openai::chat::Dialect;
use super::sse::Parser;
use super::stream::{Decoder, GeminiFraming, Translator};
use super::{Protocol, anthropic, gemini, openai};
use crate::pipeline::ClientApi;

/// One turn of a conversation, independent of protocol.
#[derive(Clone, Debug)]
enum Turn {
    User(String),
    Assistant(String),
    Call {
        id: String,
        name: String,
        args: String,
    },
    Result {
        id: String,
        text: String,
    },
    Image(String),
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z ]{1,12}", "\\PC{0,8}"]
}

fn turn() -> impl Strategy<Value = Turn> {
    prop_oneof![
        text().prop_map(Turn::User),
        text().prop_map(Turn::Assistant),
        (
            "call_[a-c]",
            "[a-z]{1,5}",
            prop_oneof![
                Just("{}".to_owned()),
                Just("{\"a\":1}".to_owned()),
                "\\PC{0,6}"
            ]
        )
            .prop_map(|(id, name, args)| Turn::Call { id, name, args }),
        ("call_[a-d]", text()).prop_map(|(id, text)| Turn::Result { id, text }),
        prop_oneof![Just("iVBORw0KGgo=".to_owned()), "[A-Za-z0-9+/=@!]{0,12}"]
            .prop_map(Turn::Image),
    ]
}

fn openai_body(turns: &[Turn], system: &str) -> Value {
    let mut messages = vec![json!({"role": "system", "content": system})];
    for t in turns {
        messages.push(match t {
            Turn::User(s) => json!({"role": "user", "content": s}),
            Turn::Assistant(s) => json!({"role": "assistant", "content": s}),
            Turn::Call { id, name, args } => json!({"role": "assistant", "content": null,
                "tool_calls": [{"id": id, "type": "function", "function": {"name": name, "arguments": args}}]}),
            Turn::Result { id, text } => json!({"role": "tool", "tool_call_id": id, "content": text}),
            Turn::Image(data) => json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{data}")}}]}),
        });
    }
    json!({"model": "m", "messages": messages, "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "additionalProperties": false}}}]})
}

fn anthropic_body(turns: &[Turn], system: &str) -> Value {
    let messages: Vec<Value> = turns
        .iter()
        .map(|t| match t {
            Turn::User(s) => json!({"role": "user", "content": s}),
            Turn::Assistant(s) => json!({"role": "assistant", "content": [{"type": "text", "text": s}]}),
            Turn::Call { id, name, args } => json!({"role": "assistant", "content": [{"type": "tool_use", "id": id, "name": name,
                "input": serde_json::from_str::<Value>(args).unwrap_or(json!({}))}]}),
            Turn::Result { id, text } => json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": text}]}),
            Turn::Image(data) => json!({"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}]}),
        })
        .collect();
    json!({"model": "m", "max_tokens": 100, "system": system, "messages": messages,
        "thinking": {"type": "enabled", "budget_tokens": 2048}})
}

fn gemini_body(turns: &[Turn], system: &str) -> Value {
    let contents: Vec<Value> = turns
        .iter()
        .map(|t| match t {
            Turn::User(s) => json!({"role": "user", "parts": [{"text": s}]}),
            Turn::Assistant(s) => json!({"role": "model", "parts": [{"text": s}]}),
            Turn::Call { name, args, .. } => json!({"role": "model", "parts": [{"functionCall": {"name": name,
                "args": serde_json::from_str::<Value>(args).unwrap_or(json!({}))}}]}),
            Turn::Result { text, .. } => json!({"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"result": text}}}]}),
            Turn::Image(data) => json!({"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": data}}]}),
        })
        .collect();
    json!({"systemInstruction": {"parts": [{"text": system}]}, "contents": contents})
}

fn alternates(messages: &[Value], role: &str) -> bool {
    messages.windows(2).all(|w| w[0][role] != w[1][role])
}

/// Translates a decoded request to every target; checks each target's
/// rules when it succeeds.
fn to_every_target(req: &super::ir::Request) {
    if let Ok(v) = openai::chat::encode_request(req, Dialect::Compatible) {
        assert!(v["messages"].is_array());
    }
    if let Ok(v) = anthropic::messages::encode_request(req) {
        let ms = v["messages"].as_array().cloned().unwrap_or_default();
        assert!(alternates(&ms, "role"), "anthropic roles alternate: {v}");
        assert!(
            ms.first().is_none_or(|m| m["role"] == "user"),
            "anthropic starts with user: {v}"
        );
        for m in &ms {
            let blocks = m["content"].as_array().cloned().unwrap_or_default();
            assert!(!blocks.is_empty(), "no empty turns: {v}");
            let first_other = blocks
                .iter()
                .position(|b| b["type"] != "tool_result")
                .unwrap_or(blocks.len());
            assert!(
                blocks[first_other..]
                    .iter()
                    .all(|b| b["type"] != "tool_result"),
                "tool results first: {v}"
            );
        }
    }
    if let Ok(v) = gemini::generate::encode_request(req) {
        let cs = v["contents"].as_array().cloned().unwrap_or_default();
        assert!(alternates(&cs, "role"), "gemini roles alternate: {v}");
        for c in &cs {
            for p in c["parts"].as_array().into_iter().flatten() {
                if let Some(r) = p.get("functionResponse") {
                    assert!(
                        r["response"].is_object(),
                        "functionResponse.response is an object: {v}"
                    );
                }
            }
        }
        let text = v.to_string();
        assert!(
            !text.contains("additionalProperties"),
            "schema cleaned: {v}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_request_translates_or_fails_cleanly(turns in prop::collection::vec(turn(), 0..8), system in text()) {
        if let Ok(req) = openai::chat::decode_request(openai_body(&turns, &system).to_string().as_bytes()) {
            to_every_target(&req);
        }
        if let Ok(req) = anthropic::messages::decode_request(anthropic_body(&turns, &system).to_string().as_bytes()) {
            to_every_target(&req);
        }
        if let Ok(req) = gemini::generate::decode_request(gemini_body(&turns, &system).to_string().as_bytes(), "m", false) {
            to_every_target(&req);
        }
    }

    #[test]
    fn stream_translators_survive_garbage(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..12),
        from in prop_oneof![Just(Protocol::OpenAi), Just(Protocol::Anthropic), Just(Protocol::Gemini)],
    ) {
        for api in [ClientApi::Chat { include_usage: true }, ClientApi::Responses, ClientApi::Messages,
                    ClientApi::Gemini { framing: GeminiFraming::Array }] {
            let mut parser = Parser::new(1 << 16);
            let mut t = Translator::new(Decoder::new(from), api.encoder());
            let mut out = Vec::new();
            let mut events = Vec::new();
            for c in &chunks {
                parser.feed(c, &mut events);
                for e in events.drain(..) {
                    let _ = t.feed(&e, &mut out);
                }
            }
            t.end(&mut out);
        }
    }

    #[test]
    fn stream_translators_give_the_same_output_for_any_split(cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let text: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/anthropic-stream.sse"));
        let run = |pieces: Vec<&[u8]>| {
            let mut parser = Parser::new(1 << 16);
            let mut t = Translator::new(Decoder::new(Protocol::Anthropic), ClientApi::Messages.encoder());
            let mut out = Vec::new();
            let mut events = Vec::new();
            for p in pieces {
                parser.feed(p, &mut events);
                for e in events.drain(..) {
                    t.feed(&e, &mut out).unwrap();
                }
            }
            t.end(&mut out);
            out
        };
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(text.len())).collect();
        points.sort_unstable();
        points.dedup();
        let mut pieces = Vec::new();
        let mut at = 0;
        for p in points {
            pieces.push(&text[at..p]);
            at = p;
        }
        pieces.push(&text[at..]);
        prop_assert_eq!(run(pieces), run(vec![text]));
    }
}
