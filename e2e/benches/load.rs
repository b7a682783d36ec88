//! Load bench: requests/s, latency (p50/p99) and the proxy's CPU time per
//! request, for a chat completion sent straight to the mock provider,
//! through `llmpool-proxy` with in-memory state, through it translated (an
//! Anthropic client on OpenAI accounts), and through it with Redis state (a
//! real redis-server), both non-streaming and streaming, measured in one run
//! so the ratios hold on a noisy machine. It also counts Redis script calls
//! per request from `INFO commandstats`. Needs the release proxy binary and
//! redis-server:
//!
//!     cargo build --release -p llmpool-proxy && cargo bench -p llmpool-e2e --bench load
//!
//! LOAD_REQUESTS (default 4000) and LOAD_CONCURRENCY (default 16) tune it;
//! LOAD_ROWS (memory, translated, redis; default all) and LOAD_MODES
//! (whole, stream; default both) pick what runs, for quick A/B runs of one
//! path (`LLMPOOL_PROXY_BIN` names another proxy binary to compare).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use llmpool_e2e::harness::{self, ConfigDir, Process};
use llmpool_e2e::mock::MockProvider;
use llmpool_e2e::redis::RedisServer;
use serde_json::json;

#[derive(Clone)]
struct Run {
    rps: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
    /// CPU time of the measured process per request (µs), when known.
    cpu_us: Option<f64>,
}

/// One kind of request: where it goes and what it says.
#[derive(Clone)]
struct Target {
    url: String,
    anthropic: bool,
}

fn body_for(target: &Target, stream: bool) -> String {
    if target.anthropic {
        return json!({
            "model": "gpt-bench",
            "stream": stream,
            "system": "You are terse.",
            "messages": [{"role": "user", "content": "Say something about lighthouses."}],
            "max_tokens": 64
        })
        .to_string();
    }
    json!({
        "model": "gpt-bench",
        "stream": stream,
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say something about lighthouses."}],
        "max_completion_tokens": 64
    })
    .to_string()
}

/// User plus system CPU time of a process, from /proc (Linux).
fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // fields after the command name, which is in parentheses
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux
    Some(Duration::from_millis(ticks * 10))
}

async fn load(
    client: &reqwest::Client,
    target: &Target,
    key: &str,
    stream: bool,
    requests: usize,
    concurrency: usize,
    pid: Option<u32>,
) -> Run {
    let url = target.url.as_str();
    let body = body_for(target, stream);
    let cpu_before = cpu_time(pid);
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
                    .header("anthropic-version", "2023-06-01")
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
    let cpu_us = match (cpu_before, cpu_time(pid)) {
        (Some(a), Some(b)) => Some((b - a).as_secs_f64() * 1e6 / requests as f64),
        _ => None,
    };
    Run {
        rps: all.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
        errors,
        cpu_us,
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
    let pick = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
    let rows = pick("LOAD_ROWS");
    let wanted = |row: &str| {
        rows.as_deref()
            .is_none_or(|r| r.split(',').any(|x| x == row))
    };
    let modes = pick("LOAD_MODES");
    let mode_wanted = |mode: &str| {
        modes
            .as_deref()
            .is_none_or(|m| m.split(',').any(|x| x == mode))
    };
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
        let direct = Target {
            url: format!("{url}/chat/completions"),
            anthropic: false,
        };
        let via = Target {
            url: proxy.url("/v1/chat/completions"),
            anthropic: false,
        };
        let translated = Target {
            url: proxy.url("/v1/messages"),
            anthropic: true,
        };
        let via_redis = Target {
            url: with_redis.url("/v1/chat/completions"),
            anthropic: false,
        };
        let (pid, redis_pid) = (Some(proxy.pid()), Some(with_redis.pid()));

        println!(
            "requests per run: {requests}, concurrency: {concurrency}, cores: {}",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("| mode | path | req/s | p50 ms | p99 ms | proxy CPU µs/req | errors |");
        println!("|---|---|---|---|---|---|---|");
        let mut script_calls = 0;
        let mut redis_requests = 0;
        let skipped = Run {
            rps: 0.0,
            p50: Duration::ZERO,
            p99: Duration::ZERO,
            errors: 0,
            cpu_us: None,
        };
        for stream in [false, true] {
            if !mode_wanted(if stream { "stream" } else { "whole" }) {
                continue;
            }
            // warm every path (connection pools, allocator, script cache)
            let warm = requests / 10;
            load(&client, &direct, "bench-a", stream, warm, concurrency, None).await;
            load(&client, &via, "", stream, warm, concurrency, None).await;
            load(&client, &translated, "", stream, warm, concurrency, None).await;
            load(&client, &via_redis, "", stream, warm, concurrency, None).await;
            let d = load(
                &client,
                &direct,
                "bench-a",
                stream,
                requests,
                concurrency,
                None,
            )
            .await;
            let run = async |name: &str, target: &Target, pid| match wanted(name) {
                true => Some(load(&client, target, "", stream, requests, concurrency, pid).await),
                false => None,
            };
            let p = run("memory", &via, pid).await;
            let t = run("translated", &translated, pid).await;
            let before = redis.script_calls();
            let r = run("redis", &via_redis, redis_pid).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            script_calls += redis.script_calls() - before;
            redis_requests += requests;
            let mode = if stream { "stream" } else { "whole" };
            let (p, t, r) = (
                p.unwrap_or_else(|| skipped.clone()),
                t.unwrap_or_else(|| skipped.clone()),
                r.unwrap_or_else(|| skipped.clone()),
            );
            for (path, run) in [
                ("direct to mock", &d),
                ("llmpool, memory state", &p),
                (
                    "llmpool, translated (anthropic client, openai accounts)",
                    &t,
                ),
                ("llmpool, redis state", &r),
            ] {
                if run.rps == 0.0 {
                    continue;
                }
                println!(
                    "| {mode} | {path} | {:.0} | {} | {} | {} | {} |",
                    run.rps,
                    ms(run.p50),
                    ms(run.p99),
                    run.cpu_us
                        .map(|c| format!("{c:.0}"))
                        .unwrap_or_else(|| "-".into()),
                    run.errors
                );
            }
            for (path, run) in [
                ("added, memory state", &p),
                ("added, translated", &t),
                ("added, redis state", &r),
            ] {
                if run.rps == 0.0 {
                    continue;
                }
                println!(
                    "| {mode} | {path} | {:.0}% of direct req/s | +{} | +{} | | |",
                    100.0 * run.rps / d.rps,
                    ms(run.p50.saturating_sub(d.p50)),
                    ms(run.p99.saturating_sub(d.p99))
                );
            }
            if let (Some(a), Some(b)) = (p.cpu_us, t.cpu_us)
                && a > 0.0
            {
                println!(
                    "| {mode} | translated vs pass-through proxy CPU | {:+.0}% | | | | |",
                    100.0 * (b - a) / a
                );
            }
        }
        // admission and completion scripts, plus the heartbeat every 5 s
        if redis_requests > 0 && wanted("redis") {
            println!(
                "redis script calls per request: {:.3} (admit + complete; heartbeats excluded)",
                script_calls as f64 / redis_requests as f64
            );
        }
        drop(with_redis);
        drop(proxy);
    });
}
