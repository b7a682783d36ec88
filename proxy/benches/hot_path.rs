//! CPU cost of the gateway's own per-request work, without the network:
//! body scan and model rewrite, request view parse, routing plan, one
//! admission + completion on the in-memory store, and SSE parsing.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use llmpool_crds::manifest::Resources;
use llmpool_proxy::protocol::{json, openai, sse};
use llmpool_proxy::routing;
use llmpool_proxy::snapshot::{Shared, Snapshot};
use llmpool_proxy::state::MemoryStore;

mod support;

const CONFIG: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: keys}
stringData: {a: sk-a, b: sk-b, c: sk-c}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {name: a, labels: {pool: p}}
spec: {provider: openai, credentials: {secretRef: {name: keys, key: a}}, limits: {requestsPerMinute: 100000000, maxConcurrency: 1000}}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {name: b, labels: {pool: p}}
spec: {provider: openai, credentials: {secretRef: {name: keys, key: b}}, weight: 2}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {name: c, labels: {pool: p}}
spec: {provider: openai, credentials: {secretRef: {name: keys, key: c}}}
---
apiVersion: llmpool.dev/v1alpha1
kind: ModelRoute
metadata: {name: r}
spec:
  models: [gpt-4o, "gpt-4o-*"]
  targets: [{accounts: {selector: {matchLabels: {pool: p}}}}]
"#;

fn request_body() -> Vec<u8> {
    let turns: Vec<serde_json::Value> = (0..8)
        .map(|i| serde_json::json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": "Tell me about the history of the lighthouse at the harbour entrance, briefly. ".repeat(3)}))
        .collect();
    serde_json::json!({"model": "gpt-4o", "stream": true, "messages": turns, "max_completion_tokens": 256})
        .to_string()
        .into_bytes()
}

fn bench(c: &mut Criterion) {
    let body = request_body();
    c.bench_function("scan_and_rewrite_model (2.6 KB body)", |b| {
        b.iter(|| {
            let top = json::scan(black_box(&body), 64).unwrap();
            let span = top.value_span(&body, "model").unwrap();
            black_box(json::replace_string(&body, span, "gpt-4o-2024-08-06"))
        })
    });
    c.bench_function("parse_request_view", |b| {
        b.iter(|| {
            black_box(
                serde_json::from_slice::<openai::ChatRequestView<'_>>(black_box(&body))
                    .unwrap()
                    .max_output_tokens(),
            )
        })
    });

    let mut resources = Resources::default();
    resources.add_yaml(CONFIG, "bench.yaml");
    let compiled = resources.compile();
    assert!(!compiled.has_errors());
    let snapshot = Snapshot::build(&compiled, "bench", 1, &Shared::default());
    let route = snapshot.route_for("gpt-4o-mini").unwrap();
    c.bench_function("route_match_and_plan (3 accounts)", |b| {
        b.iter(|| {
            black_box(
                routing::plan(
                    snapshot.route_for(black_box("gpt-4o-mini")).unwrap(),
                    "gpt-4o-mini",
                )
                .candidates
                .len(),
            )
        })
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let store = MemoryStore::new(1000, llmpool_proxy::state::Clock::system());
    let plan = routing::plan(route, "gpt-4o-mini");
    c.bench_function("memory_store_admit_and_complete", |b| {
        b.iter(|| support::admit_and_complete(&rt, &store, &plan))
    });

    let mut stream = String::new();
    for i in 0..50 {
        stream.push_str(&format!("data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token{i} \"}}}}]}}\n\n"));
    }
    stream.push_str("data: [DONE]\n\n");
    c.bench_function("sse_parse (50-event stream)", |b| {
        b.iter(|| {
            let mut parser = sse::Parser::new(1 << 20);
            let mut events = Vec::new();
            for chunk in stream.as_bytes().chunks(512) {
                parser.feed(chunk, &mut events);
            }
            black_box(events.len())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
