//! Golden tests: every decoder and encoder, and every stream translator, on
//! the fixtures in `proxy/tests/fixtures`, in every direction. Snapshots
//! live in `snapshots/`; a change in output fails until it is reviewed
//! (`INSTA_UPDATE=always cargo test -p llmpool-proxy golden`, then read the
//! diff before committing).

use serde_json::Value;

use super::openai::chat::Dialect;
use super::sse::Parser;
use super::stream::{Decoder, GeminiFraming, Translator};
use super::{Protocol, anthropic, gemini, ir, openai};
use crate::pipeline::ClientApi;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/",
            $name
        ))
    };
}

/// Replaces clock readings so snapshots are stable.
fn stable(mut v: Value) -> Value {
    match &mut v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if k == "created" || k == "created_at" {
                    *x = Value::from(0);
                } else {
                    *x = stable(x.take());
                }
            }
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                *x = stable(x.take());
            }
        }
        _ => {}
    }
    v
}

fn requests() -> Vec<(&'static str, ir::Request)> {
    vec![
        (
            "chat",
            openai::chat::decode_request(fixture!("openai-chat-request.json")).unwrap(),
        ),
        (
            "messages",
            anthropic::messages::decode_request(fixture!("anthropic-messages-request.json"))
                .unwrap(),
        ),
        (
            "gemini",
            gemini::generate::decode_request(
                fixture!("gemini-generate-request.json"),
                "gemini-2.5-flash",
                false,
            )
            .unwrap(),
        ),
        (
            "responses",
            openai::responses::decode_request(fixture!("responses-request.json")).unwrap(),
        ),
    ]
}

#[test]
fn golden_requests_to_every_upstream() {
    for (from, req) in requests() {
        let to_openai = openai::chat::encode_request(&req, Dialect::OpenAi).unwrap();
        insta::assert_json_snapshot!(format!("request_{from}_to_openai"), to_openai);
        match anthropic::messages::encode_request(&req) {
            Ok(v) => insta::assert_json_snapshot!(format!("request_{from}_to_anthropic"), v),
            Err(e) => {
                insta::assert_snapshot!(format!("request_{from}_to_anthropic"), e.to_string())
            }
        }
        let to_gemini = gemini::generate::encode_request(&req).unwrap();
        insta::assert_json_snapshot!(format!("request_{from}_to_gemini"), to_gemini);
    }
}

#[test]
fn golden_responses_to_every_client() {
    let responses = [
        (
            "chat",
            openai::chat::decode_response(fixture!("openai-chat-response.json")).unwrap(),
        ),
        (
            "messages",
            anthropic::messages::decode_response(fixture!("anthropic-messages-response.json"))
                .unwrap(),
        ),
        (
            "gemini",
            gemini::generate::decode_response(fixture!("gemini-generate-response.json")).unwrap(),
        ),
    ];
    for (from, r) in responses {
        insta::assert_json_snapshot!(
            format!("response_{from}_to_chat"),
            stable(openai::chat::encode_response(&r))
        );
        insta::assert_json_snapshot!(
            format!("response_{from}_to_responses"),
            stable(openai::responses::encode_response(&r))
        );
        insta::assert_json_snapshot!(
            format!("response_{from}_to_messages"),
            anthropic::messages::encode_response(&r)
        );
        insta::assert_json_snapshot!(
            format!("response_{from}_to_gemini"),
            gemini::generate::encode_response(&r)
        );
    }
}

/// Runs a stream fixture through a translator; returns the client's events
/// as (event name, data) pairs.
fn translate(text: &[u8], from: Protocol, to: ClientApi) -> Vec<(Option<String>, Value)> {
    let mut parser = Parser::new(1 << 20);
    let mut t = Translator::new(Decoder::new(from), to.encoder());
    let mut out = Vec::new();
    let mut events = Vec::new();
    parser.feed(text, &mut events);
    for e in &events {
        t.feed(e, &mut out).unwrap();
    }
    t.end(&mut out);
    let mut client = Parser::new(1 << 20);
    let mut seen = Vec::new();
    client.feed(&out, &mut seen);
    if let ClientApi::Gemini {
        framing: GeminiFraming::Array,
    } = to
    {
        let all: Value = serde_json::from_slice(&out).unwrap();
        return vec![(None, all)];
    }
    seen.into_iter()
        .map(|e| {
            let data = serde_json::from_str(&e.data).unwrap_or(Value::String(e.data.clone()));
            (e.event, stable(data))
        })
        .collect()
}

#[test]
fn golden_streams_to_every_client() {
    let streams: [(&str, &[u8], Protocol); 3] = [
        ("chat", fixture!("openai-chat-stream.sse"), Protocol::OpenAi),
        (
            "messages",
            fixture!("anthropic-stream.sse"),
            Protocol::Anthropic,
        ),
        ("gemini", fixture!("gemini-stream.sse"), Protocol::Gemini),
    ];
    let clients = [
        (
            "chat",
            ClientApi::Chat {
                include_usage: true,
            },
        ),
        ("responses", ClientApi::Responses),
        ("messages", ClientApi::Messages),
        (
            "gemini",
            ClientApi::Gemini {
                framing: GeminiFraming::Sse,
            },
        ),
        (
            "gemini_array",
            ClientApi::Gemini {
                framing: GeminiFraming::Array,
            },
        ),
    ];
    for (from, text, protocol) in streams {
        for (to, api) in clients {
            insta::assert_json_snapshot!(
                format!("stream_{from}_to_{to}"),
                translate(text, protocol, api)
            );
        }
    }
}

#[test]
fn a_stream_collected_equals_the_whole_translation() {
    // what a streaming client assembles is what a non-streaming one gets
    let mut parser = Parser::new(1 << 20);
    let mut events = Vec::new();
    parser.feed(fixture!("anthropic-stream.sse"), &mut events);
    let mut decoder = Decoder::new(Protocol::Anthropic);
    let mut ir_events = Vec::new();
    for e in &events {
        decoder.feed(e, &mut ir_events).unwrap();
    }
    let mut c = ir::Collector::default();
    for e in &ir_events {
        c.push(e);
    }
    let r = c.finish();
    assert_eq!(r.finish, ir::Finish::ToolUse);
    assert_eq!(r.usage.input, 15);
    assert_eq!(r.usage.output, 42);
    let calls: Vec<&ir::ToolCall> = r
        .content
        .iter()
        .filter_map(|p| match p {
            ir::Part::ToolCall(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0].arguments_object(),
        serde_json::json!({"city": "Paris"})
    );
    assert!(matches!(&r.content[0], ir::Part::Thinking(t) if t.text == "Two cities, two calls."));
}
