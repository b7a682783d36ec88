//! Load bench: requests/s and latency (p50/p99) of a chat completion sent
//! straight to the mock provider, through `llmpool-proxy` with in-memory
//! state, and through `llmpool-proxy` with Redis state (a real redis-server),
//! both non-streaming and streaming, measured in one run so the ratios hold
//! on a noisy machine. It also counts Redis script calls per request from
//! `INFO commandstats`. Needs the release proxy binary and redis-server:
//!
//!     cargo build --release -p llmpool-proxy && cargo bench -p llmpool-e2e --bench load
//!
//! LOAD_REQUESTS (default 4000) and LOAD_CONCURRENCY (default 16) tune it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use llmpool_e2e::harness::{self, ConfigDir, Process};
use llmpool_e2e::mock::MockProvider;
use llmpool_e2e::redis::RedisServer;
use serde_json::json;

struct Run {
    rps: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

async fn load(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    stream: bool,
    requests: usize,
    concurrency: usize,
) -> Run {
    let body = json!({
        "model": "gpt-bench",
        "stream": stream,
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say something about lighthouses."}],
        "max_completion_tokens": 64
    })
    .to_string();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let (client, url, body, key, next) = (
            client.clone(),
            url.to_owned(),
            body.clone(),
            key.to_owned(),
            next.clone(),
        );
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < requests {
                let t = Instant::now();
                let ok = match client
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        let mut s = r.bytes_stream();
                        let mut ok = true;
                        while let Some(chunk) = s.next().await {
                            ok &= chunk.is_ok();
                        }
                        ok
                    }
                    _ => false,
                };
                if ok {
                    latencies.push(t.elapsed())
                } else {
                    errors += 1
                }
            }
            (latencies, errors)
        })
    });
    let mut all = Vec::new();
    let mut errors = 0;
    for w in futures_util::future::join_all(workers).await {
        let (l, e) = w.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    all.sort();
    let pick = |q: f64| {
        all.get(((all.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    Run {
        rps: all.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
        errors,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let requests: usize = std::env::var("LOAD_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let concurrency: usize = std::env::var("LOAD_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    // `cargo bench` passes --bench; nothing else is read from the command line
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mock = MockProvider::start().await.unwrap();
        let dir = ConfigDir::new().unwrap();
        let url = mock.base_url();
        let config = harness::docs(&[
            harness::secret("keys", &[("a", "bench-a"), ("b", "bench-b")]),
            harness::account("a", &url, "a", ""),
            harness::account("b", &url, "b", ""),
            harness::route(
                "bench",
                "  models: [gpt-bench]\n  targets: [{accounts: {names: [a, b]}}]\n",
            ),
        ]);
        dir.write("bench.yaml", &config).unwrap();
        let proxy = Process::start(dir.path(), &[], &[]).unwrap_or_else(|f| panic!("{f:?}"));
        let redis = RedisServer::start().unwrap();
        let redis_url = redis.url();
        let with_redis = Process::start(dir.path(), &["--redis", &redis_url], &[])
            .unwrap_or_else(|f| panic!("{f:?}"));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .build()
            .unwrap();
        let direct = format!("{url}/chat/completions");
        let via = proxy.url("/v1/chat/completions");
        let via_redis = with_redis.url("/v1/chat/completions");

        println!(
            "requests per run: {requests}, concurrency: {concurrency}, cores: {}",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("| mode | path | req/s | p50 ms | p99 ms | errors |");
        println!("|---|---|---|---|---|---|");
        let mut script_calls = 0;
        let mut redis_requests = 0;
        for stream in [false, true] {
            // warm every path (connection pools, allocator, script cache)
            load(
                &client,
                &direct,
                "bench-a",
                stream,
                requests / 10,
                concurrency,
            )
            .await;
            load(&client, &via, "", stream, requests / 10, concurrency).await;
            load(&client, &via_redis, "", stream, requests / 10, concurrency).await;
            let d = load(&client, &direct, "bench-a", stream, requests, concurrency).await;
            let p = load(&client, &via, "", stream, requests, concurrency).await;
            let before = redis.script_calls();
            let r = load(&client, &via_redis, "", stream, requests, concurrency).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            script_calls += redis.script_calls() - before;
            redis_requests += requests;
            let mode = if stream { "stream" } else { "whole" };
            for (path, run) in [
                ("direct to mock", &d),
                ("llmpool, memory state", &p),
                ("llmpool, redis state", &r),
            ] {
                println!(
                    "| {mode} | {path} | {:.0} | {} | {} | {} |",
                    run.rps,
                    ms(run.p50),
                    ms(run.p99),
                    run.errors
                );
            }
            for (path, run) in [("added, memory state", &p), ("added, redis state", &r)] {
                println!(
                    "| {mode} | {path} | {:.0}% of direct req/s | +{} | +{} | |",
                    100.0 * run.rps / d.rps,
                    ms(run.p50.saturating_sub(d.p50)),
                    ms(run.p99.saturating_sub(d.p99))
                );
            }
        }
        // admission and completion scripts, plus the heartbeat every 5 s
        println!(
            "redis script calls per request: {:.3} (admit + complete; heartbeats excluded)",
            script_calls as f64 / redis_requests as f64
        );
        drop(with_redis);
        drop(proxy);
    });
}
