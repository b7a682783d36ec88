//! Heap allocations per request, counted by a counting global allocator:
//! the mock provider, the real gateway (`server::run`, with its JSON access
//! log) and a client all run in this process, and what a request costs
//! through the gateway is compared with what the same client and mock cost
//! talking to each other directly. The difference is the gateway's own.
//!
//! `cargo bench -p llmpool-proxy --bench allocations` (ALLOC_REQUESTS,
//! default 2000 per row). Counts, not times: they are the same on any
//! machine, so a change that adds allocations to the request path shows.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::alloc::System;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use llmpool_e2e::harness::{self, ConfigDir};
use llmpool_e2e::mock::MockProvider;
use llmpool_proxy::cli::Args;
use llmpool_proxy::logline::JsonLines;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

type Http = Client<HttpConnector, Full<Bytes>>;

/// One kind of request, sent to a base URL.
struct Row {
    name: &'static str,
    path: &'static str,
    body: String,
    headers: &'static [(&'static str, &'static str)],
}

fn chat(stream: bool) -> String {
    serde_json::json!({"model": "gpt-bench", "stream": stream,
        "messages": [{"role": "system", "content": "You are terse."},
                     {"role": "user", "content": "Say something about lighthouses."}],
        "max_completion_tokens": 64})
    .to_string()
}

fn messages(stream: bool) -> String {
    serde_json::json!({"model": "gpt-bench", "stream": stream, "system": "You are terse.",
        "messages": [{"role": "user", "content": "Say something about lighthouses."}],
        "max_tokens": 64})
    .to_string()
}

/// Sends `row` and reads the whole answer; panics on anything but a 200.
async fn once(http: &Http, base: &str, row: &Row) {
    let mut request = Request::post(format!("{base}{}", row.path))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(row.body.clone())))
        .unwrap();
    for (name, value) in row.headers {
        request
            .headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    let response = http.request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        status,
        200,
        "{}: {}",
        row.name,
        String::from_utf8_lossy(&body)
    );
}

/// Allocations per request of `row` against `base`, after a warm-up.
async fn per_request(http: &Http, base: &str, row: &Row, n: usize) -> f64 {
    for _ in 0..200 {
        once(http, base, row).await;
    }
    let region = Region::new(GLOBAL);
    for _ in 0..n {
        once(http, base, row).await;
    }
    region.change().allocations as f64 / n as f64
}

fn config(mock: &MockProvider) -> String {
    let url = mock.base_url();
    harness::docs(&[
        harness::secret("keys", &[("a", "bench-a"), ("b", "bench-b")]),
        harness::account("a", &url, "a", ""),
        harness::account("b", &url, "b", ""),
        harness::route(
            "bench",
            "  models: [gpt-bench]\n  targets: [{accounts: {names: [a, b]}}]\n",
        ),
    ])
}

fn main() {
    let n: usize = std::env::var("ALLOC_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    // the access log as production writes it, into nothing
    let (writer, _flush) = llmpool_proxy::logwriter::batched(std::io::sink());
    tracing_subscriber::fmt()
        .json()
        .event_format(JsonLines)
        .with_writer(writer)
        .init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(n));
}

async fn run(n: usize) {
    let mock = MockProvider::start().await.unwrap();
    let dir = ConfigDir::new().unwrap();
    dir.write("bench.yaml", &config(&mock)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let config_dir = dir.path().to_str().unwrap().to_owned();
    let args = Args::try_parse_from([
        "llmpool-proxy",
        "--config",
        &config_dir,
        "--listen",
        &listen,
    ])
    .unwrap();
    tokio::spawn(async move {
        let _ = llmpool_proxy::server::run(args).await;
    });
    let gateway = format!("http://{listen}");
    let http: Http = Client::builder(TokioExecutor::new()).build_http();
    for _ in 0..100 {
        let ready = Request::get(format!("{gateway}/readyz"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        if let Ok(r) = http.request(ready).await
            && r.status() == 200
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // the same client and mock, talking directly: what is not the gateway's
    let direct = Row {
        name: "direct to the mock",
        path: "/v1/chat/completions",
        body: chat(false),
        headers: &[("authorization", "Bearer bench-a")],
    };
    let direct_stream = Row {
        name: "direct to the mock, streamed",
        path: "/v1/chat/completions",
        body: chat(true),
        headers: &[("authorization", "Bearer bench-a")],
    };
    let base_whole = per_request(&http, &mock.root_url(), &direct, n).await;
    let base_stream = per_request(&http, &mock.root_url(), &direct_stream, n).await;
    println!("allocations per request, {n} requests per row, after 200 to warm up");
    println!();
    println!("| request | through llmpool | direct to the mock | llmpool's own |");
    println!("|---|---|---|---|");
    let rows = [
        (
            Row {
                name: "whole, pass-through",
                path: "/v1/chat/completions",
                body: chat(false),
                headers: &[],
            },
            base_whole,
        ),
        (
            Row {
                name: "stream, pass-through",
                path: "/v1/chat/completions",
                body: chat(true),
                headers: &[],
            },
            base_stream,
        ),
        (
            Row {
                name: "whole, translated (Anthropic client)",
                path: "/v1/messages",
                body: messages(false),
                headers: &[("anthropic-version", "2023-06-01")],
            },
            base_whole,
        ),
        (
            Row {
                name: "stream, translated (Anthropic client)",
                path: "/v1/messages",
                body: messages(true),
                headers: &[("anthropic-version", "2023-06-01")],
            },
            base_stream,
        ),
    ];
    for (row, base) in &rows {
        let through = per_request(&http, &gateway, row, n).await;
        println!(
            "| {} | {through:.1} | {base:.1} | {:.1} |",
            row.name,
            through - base
        );
    }
}
