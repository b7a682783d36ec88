//! A client's request body, as each ingress reads it: the bounded scan,
//! the same-protocol `model` rewrite, the protocol's view, and the decode
//! into the internal form followed by the encode for every provider.
//!
//! The first byte picks the client API; the rest is the body. Besides "no
//! panic", the scan is checked against serde_json: where both accept a body,
//! the span the scan gives for `model` holds exactly serde's `model`, and
//! rewriting it changes nothing else.

#![no_main]

use libfuzzer_sys::fuzz_target;
use llmpool_proxy::protocol::openai::chat::Dialect;
use llmpool_proxy::protocol::{anthropic, count, embeddings, gemini, ir, json, openai};
use serde_json::Value;

const MAX_DEPTH: usize = 64;
const MAX_ELEMENTS: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let Ok(top) = json::scan_limited(body, MAX_DEPTH, MAX_ELEMENTS) else {
        return;
    };
    check_model_rewrite(body, &top);
    match which % 7 {
        0 => {
            if let Ok(view) = serde_json::from_slice::<openai::ChatRequestView<'_>>(body) {
                let _ = (
                    view.session_key(),
                    view.max_output_tokens(),
                    view.include_usage(),
                );
            }
            to_every_provider(openai::chat::decode_request(body));
        }
        1 => to_every_provider(openai::responses::decode_request(body)),
        2 => {
            if let Ok(view) = serde_json::from_slice::<anthropic::RequestView<'_>>(body) {
                let _ = view.session_key();
            }
            to_every_provider(anthropic::messages::decode_request(body));
        }
        3 => {
            if let Ok(view) = serde_json::from_slice::<gemini::RequestView<'_>>(body) {
                let _ = (view.session_key(), view.max_output_tokens());
            }
            to_every_provider(gemini::generate::decode_request(
                body,
                "m",
                which & 0x80 != 0,
            ));
        }
        4 => {
            if let Ok(inner) = count::unwrap_gemini(body) {
                to_every_provider(gemini::generate::decode_request(&inner, "m", false));
            }
        }
        5 => {
            if let Ok(req) = embeddings::decode_openai(body) {
                let _ = (
                    embeddings::encode_gemini(&req, "m"),
                    embeddings::encode_openai(&req, "m"),
                );
            }
            let _ = embeddings::wants_base64(body);
        }
        _ => {
            let batch = which & 0x80 != 0;
            if let Ok(req) = embeddings::decode_gemini(body, batch) {
                let _ = (
                    embeddings::encode_openai(&req, "m"),
                    embeddings::encode_gemini(&req, "m"),
                );
            }
            let _ = embeddings::retarget_gemini_batch(body, "models/m");
        }
    }
});

/// Encodes a decoded request for every provider kind, as the pipeline does
/// when the account speaks another protocol than the client.
fn to_every_provider(decoded: Result<ir::Request, llmpool_proxy::protocol::TranslateError>) {
    let Ok(req) = decoded else {
        return;
    };
    for encoded in [
        openai::chat::encode_request(&req, Dialect::OpenAi),
        openai::chat::encode_request(&req, Dialect::Compatible),
        anthropic::messages::encode_request(&req),
        gemini::generate::encode_request(&req),
    ] {
        if let Ok(v) = encoded {
            assert!(serde_json::to_vec(&v).is_ok());
        }
    }
}

/// The pass-through path replaces the `model` value in place; the result
/// must parse to the same document with only `model` changed.
fn check_model_rewrite(body: &[u8], top: &json::TopLevel) {
    let Ok(Value::Object(mut parsed)) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let Some(span) = top.value_span(body, "model") else {
        assert!(!parsed.contains_key("model"), "scan missed the model key");
        return;
    };
    let at_span: Value = serde_json::from_slice(&body[span.clone()]).expect("model span is JSON");
    assert_eq!(Some(&at_span), parsed.get("model"), "model span differs");
    let rewritten = json::replace_string(body, span, "fuzz-model");
    let Ok(Value::Object(after)) = serde_json::from_slice::<Value>(&rewritten) else {
        panic!("rewriting model broke the body");
    };
    parsed.insert("model".into(), Value::from("fuzz-model"));
    assert_eq!(parsed, after, "rewriting model changed another member");
}
