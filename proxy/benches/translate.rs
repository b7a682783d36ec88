//! What translation costs next to pass-through: per request (the client's
//! body to the upstream's), per whole response, and per streamed event.
//! Pass-through is the baseline measured in the same run.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use llmpool_proxy::pipeline::ClientApi;
use llmpool_proxy::protocol::openai::chat::Dialect;
use llmpool_proxy::protocol::stream::{self, Decoder, Translator};
use llmpool_proxy::protocol::{Protocol, Wire, anthropic, gemini, json, openai, sse};

/// An Anthropic Messages request of eight turns (~2.6 KB).
fn anthropic_request() -> Vec<u8> {
    let turns: Vec<serde_json::Value> = (0..8)
        .map(|i| serde_json::json!({"role": if i % 2 == 0 { "user" } else { "assistant" },
            "content": "Tell me about the history of the lighthouse at the harbour entrance, briefly. ".repeat(3)}))
        .collect();
    serde_json::json!({"model": "claude-sonnet-4-5", "max_tokens": 256, "stream": true,
        "system": "You are brief.", "messages": turns})
    .to_string()
    .into_bytes()
}

/// A 50-event stream of `wire`, as its upstream sends it.
fn stream_of(wire: Wire) -> String {
    let mut s = String::new();
    match wire {
        Wire::Chat => {
            for i in 0..50 {
                s.push_str(&format!("data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token{i} \"}}}}]}}\n\n"));
            }
            s.push_str("data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
        }
        _ => {
            s.push_str("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"m\",\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n");
            s.push_str("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
            for i in 0..50 {
                s.push_str(&format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"token{i} \"}}}}\n\n"));
            }
            s.push_str("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":50}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        }
    }
    s
}

fn bench(c: &mut Criterion) {
    let body = anthropic_request();
    c.bench_function("request: pass-through (scan + model rewrite)", |b| {
        b.iter(|| {
            let top = json::scan(black_box(&body), 64).unwrap();
            let span = top.value_span(&body, "model").unwrap();
            black_box(json::replace_string(
                &body,
                span,
                "claude-sonnet-4-5-20250929",
            ))
        })
    });
    c.bench_function(
        "request: anthropic -> openai (decode + encode + write)",
        |b| {
            b.iter(|| {
                let req = anthropic::messages::decode_request(black_box(&body)).unwrap();
                black_box(
                    serde_json::to_vec(
                        &openai::chat::encode_request(&req, Dialect::OpenAi).unwrap(),
                    )
                    .unwrap(),
                )
            })
        },
    );
    c.bench_function(
        "request: anthropic -> gemini (decode + encode + write)",
        |b| {
            b.iter(|| {
                let req = anthropic::messages::decode_request(black_box(&body)).unwrap();
                black_box(
                    serde_json::to_vec(&gemini::generate::encode_request(&req).unwrap()).unwrap(),
                )
            })
        },
    );

    let whole = br#"{"id":"chatcmpl-1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"The lighthouse was built in 1852 and rebuilt after the storm of 1901."},"finish_reason":"stop"}],"usage":{"prompt_tokens":650,"completion_tokens":20,"total_tokens":670}}"#;
    c.bench_function("response: pass-through (usage read)", |b| {
        b.iter(|| black_box(openai::usage_of(black_box(whole))))
    });
    c.bench_function("response: openai -> anthropic", |b| {
        b.iter(|| {
            let r = openai::chat::decode_response(black_box(whole)).unwrap();
            black_box(anthropic::messages::encode_response(&r).to_string())
        })
    });

    let chat = stream_of(Wire::Chat);
    let messages = stream_of(Wire::Messages);
    c.bench_function(
        "stream (52 events): pass-through parse + classify + usage",
        |b| {
            b.iter(|| {
                let mut parser = sse::Parser::new(1 << 20);
                let mut events = Vec::new();
                let mut usage = None;
                for chunk in chat.as_bytes().chunks(512) {
                    parser.feed(chunk, &mut events);
                    for e in events.drain(..) {
                        black_box(stream::classify(Wire::Chat, &e));
                        stream::read_usage(Wire::Chat, &e, &mut usage);
                    }
                }
                black_box(usage)
            })
        },
    );
    for (name, text, from, to) in [
        (
            "stream (52 events): openai -> anthropic",
            &chat,
            Protocol::OpenAi,
            ClientApi::Messages,
        ),
        (
            "stream (55 events): anthropic -> openai",
            &messages,
            Protocol::Anthropic,
            ClientApi::Chat {
                include_usage: true,
            },
        ),
    ] {
        c.bench_function(name, |b| {
            b.iter(|| {
                let mut parser = sse::Parser::new(1 << 20);
                let mut t = Translator::new(Decoder::new(from), to.encoder());
                let mut events = Vec::new();
                let mut out = Vec::new();
                for chunk in text.as_bytes().chunks(512) {
                    parser.feed(chunk, &mut events);
                    for e in events.drain(..) {
                        t.feed(&e, &mut out).unwrap();
                    }
                }
                t.end(&mut out);
                black_box(out.len())
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
