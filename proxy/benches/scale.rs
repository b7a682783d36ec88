//! How the gateway's per-request work grows with the configuration: route
//! lookup among 1,000 routes (half exact names, half globs), and routing
//! plus one admission over a route of 200 accounts.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use llmpool_crds::manifest::Resources;
use llmpool_proxy::routing;
use llmpool_proxy::snapshot::{Shared, Snapshot};
use llmpool_proxy::state::MemoryStore;

mod support;

const ACCOUNTS: usize = 200;
const ROUTES: usize = 1000;

fn config() -> String {
    let mut yaml =
        String::from("apiVersion: v1\nkind: Secret\nmetadata: {name: keys}\nstringData:\n");
    for i in 0..ACCOUNTS {
        let _ = writeln!(yaml, "  a{i}: sk-{i}");
    }
    for i in 0..ACCOUNTS {
        let _ = write!(
            yaml,
            "---\napiVersion: llmpool.dev/v1alpha1\nkind: LlmAccount\nmetadata: {{name: a{i}, labels: {{pool: p}}}}\nspec: {{provider: openai, credentials: {{secretRef: {{name: keys, key: a{i}}}}}, limits: {{requestsPerMinute: 100000000}}}}\n"
        );
    }
    // half the routes by exact name, half by glob; every route uses the pool
    for i in 0..ROUTES {
        let model = if i % 2 == 0 {
            format!("model-{i}")
        } else {
            format!("\"family-{i}-*\"")
        };
        let _ = write!(
            yaml,
            "---\napiVersion: llmpool.dev/v1alpha1\nkind: ModelRoute\nmetadata: {{name: r{i}}}\nspec:\n  models: [{model}]\n  targets: [{{accounts: {{selector: {{matchLabels: {{pool: p}}}}}}}}]\n"
        );
    }
    yaml
}

fn bench(c: &mut Criterion) {
    let mut resources = Resources::default();
    resources.add_yaml(&config(), "scale.yaml");
    let compiled = resources.compile();
    assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics.first());
    let snapshot = Snapshot::build(&compiled, "bench", 1, &Shared::default());

    c.bench_function("route_for: exact name among 1,000 routes", |b| {
        b.iter(|| black_box(snapshot.route_for(black_box("model-998")).is_some()))
    });
    c.bench_function("route_for: the last of 500 globs", |b| {
        b.iter(|| black_box(snapshot.route_for(black_box("family-999-2025")).is_some()))
    });
    c.bench_function("route_for: no route among 1,000", |b| {
        b.iter(|| black_box(snapshot.route_for(black_box("unknown-model")).is_none()))
    });

    let route = snapshot.route_for("model-0").unwrap();
    c.bench_function("plan: a route of 200 accounts", |b| {
        b.iter(|| black_box(routing::plan(route, black_box("model-0")).candidates.len()))
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let store = MemoryStore::new(1000, llmpool_proxy::state::Clock::system());
    c.bench_function("plan + admit + complete: 200 accounts, memory state", |b| {
        b.iter(|| support::admit_and_complete(&rt, &store, &routing::plan(route, "model-0")))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
