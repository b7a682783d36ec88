//! Load bench: llmpool against the ceiling of its own core. In one run it
//! measures the mock provider called directly, a bare forwarder (hyper and
//! hyper-util's pooled client on one thread, no logic: `bare-forwarder`),
//! and `llmpool-proxy` passing through with in-memory state (one worker
//! thread, and the default runtime), with Redis state, and translating (an
//! Anthropic client on OpenAI accounts). Where the machine has two cores,
//! the measured process runs alone on core 0 and the bench (load generator
//! and mock) plus redis-server on core 1.
//!
//! For whole answers and streams, each row gets: requests/s at saturation
//! (32 and 128 clients) with the measured process's CPU per request, and
//! latency at a fixed rate (open loop); streams at the fixed rate are 50
//! events long, for the time to first content and the cost per event. Then:
//! RSS idle, under load and with 1,000 idle open streams; Redis commands
//! and Redis CPU per request. Every figure is set against the forwarder of
//! the same run; results go to `target/bench/load.{md,json}`.
//!
//!     cargo build --release -p llmpool-proxy && cargo bench -p llmpool-e2e --bench load
//!
//! Last, 1, 2 and 3 replicas sharing one Redis are driven together.
//!
//! LOAD_REQUESTS (per saturation run, default 4000), LOAD_RATE (default
//! 200/s) and LOAD_PACED_SECS (default 5) tune it; LOAD_ROWS (memory,
//! multi, redis, translated, scale; default all) and LOAD_MODES (whole,
//! stream) pick what runs; LLMPOOL_PROXY_BIN names another proxy binary to
//! compare, and LOAD_PROXY_ARGS adds flags to every llmpool process (for
//! example `--log warn`, to see what the access lines cost).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod drive;
mod report;
mod scale;
mod system;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use drive::{Sample, Target};
use llmpool_e2e::harness::{self, ConfigDir, Process};
use llmpool_e2e::mock::MockProvider;
use llmpool_e2e::redis::RedisServer;
use report::{Report, Row};
use serde_json::json;

const PROXY_CORE: usize = 0;
const LOAD_CORE: usize = 1;
const IDLE_STREAMS: usize = 1000;

struct Knobs {
    requests: usize,
    rate: f64,
    paced: Duration,
    rows: Option<String>,
    modes: Option<String>,
}

impl Knobs {
    fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let num =
            |name: &str, default: f64| var(name).and_then(|v| v.parse().ok()).unwrap_or(default);
        Self {
            requests: num("LOAD_REQUESTS", 4000.0) as usize,
            rate: num("LOAD_RATE", 200.0),
            paced: Duration::from_secs_f64(num("LOAD_PACED_SECS", 5.0)),
            rows: var("LOAD_ROWS"),
            modes: var("LOAD_MODES"),
        }
    }

    fn wants(list: &Option<String>, name: &str) -> bool {
        list.as_deref()
            .is_none_or(|l| l.split(',').any(|x| x == name))
    }
}

/// One measured path: how to reach it and which process to watch.
#[derive(Clone)]
struct Path {
    name: &'static str,
    /// The LOAD_ROWS name (baselines always run).
    key: Option<&'static str>,
    base: String,
    anthropic: bool,
    key_prefix: &'static str,
    pid: Option<u32>,
    redis: bool,
}

impl Path {
    fn target(&self, model: &str, stream: bool) -> Target {
        let (path, body) = if self.anthropic {
            (
                "/v1/messages",
                json!({"model": model, "stream": stream, "system": "You are terse.",
                "messages": [{"role": "user", "content": "Say something about lighthouses."}], "max_tokens": 64}),
            )
        } else {
            (
                "/v1/chat/completions",
                json!({"model": model, "stream": stream,
                "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say something about lighthouses."}],
                "max_completion_tokens": 64}),
            )
        };
        let key = match model {
            "gpt-long" => "bench-c?chunks=50",
            _ => "bench-a",
        };
        Target {
            url: format!("{}{path}", self.base),
            key: format!("{}{key}", self.key_prefix),
            body: body.to_string(),
        }
    }
}

fn config(mock: &MockProvider) -> String {
    let url = mock.base_url();
    harness::docs(&[
        harness::secret(
            "keys",
            &[
                ("a", "bench-a"),
                ("b", "bench-b"),
                ("c", "bench-c?chunks=50"),
                ("d", "bench-d?chunks=50"),
                ("e", "bench-e?fault=stall&after=1"),
            ],
        ),
        harness::account("a", &url, "a", ""),
        harness::account("b", &url, "b", ""),
        harness::account("c", &url, "c", ""),
        harness::account("d", &url, "d", ""),
        harness::account("e", &url, "e", ""),
        harness::route(
            "bench",
            "  models: [gpt-bench]\n  targets: [{accounts: {names: [a, b]}}]\n",
        ),
        harness::route(
            "long",
            "  models: [gpt-long]\n  targets: [{accounts: {names: [c, d]}}]\n",
        ),
        harness::route(
            "idle",
            "  models: [gpt-idle]\n  targets: [{accounts: {names: [e]}}]\n",
        ),
    ])
}

fn start_forwarder(upstream: &str) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_bare-forwarder"))
        .args([&addr, upstream])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (child, format!("http://{addr}"))
}

fn shell(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let knobs = Knobs::from_env();
    // the load generator and the mock run in this process, on the load core
    let pinned = system::pin(std::process::id(), LOAD_CORE);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(knobs, pinned));
}

async fn run(knobs: Knobs, pinned: bool) {
    let mock = MockProvider::start().await.unwrap();
    let dir = ConfigDir::new().unwrap();
    dir.write("bench.yaml", &config(&mock)).unwrap();
    let cap = ["--max-connections", "8192"];
    let added = std::env::var("LOAD_PROXY_ARGS").unwrap_or_default();
    let start = |extra: &[&str]| {
        let mut args = cap.to_vec();
        args.extend_from_slice(extra);
        args.extend(added.split_whitespace());
        Process::start(dir.path(), &args, &[]).unwrap_or_else(|f| panic!("{f:?}"))
    };
    let one = start(&["--worker-threads", "1"]);
    let multi = start(&[]);
    let redis = RedisServer::start().unwrap();
    let with_redis = start(&["--worker-threads", "1", "--redis", &redis.url()]);
    let (mut forwarder, forwarder_url) = start_forwarder(&mock.root_url());
    // the report says "pinned" only when every pin took
    let mut pinned = pinned;
    for pid in [one.pid(), multi.pid(), with_redis.pid(), forwarder.id()] {
        pinned &= system::pin(pid, PROXY_CORE);
    }
    if let Some(pid) = redis.pid() {
        pinned &= system::pin(pid, LOAD_CORE);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = system::rss_kib(one.pid());

    let path = |name, key, base: String, anthropic, pid, redis| Path {
        name,
        key,
        base,
        anthropic,
        key_prefix: "",
        pid,
        redis,
    };
    let paths = [
        path("direct to mock", None, mock.root_url(), false, None, false),
        path(
            "bare forwarder (1 thread)",
            None,
            forwarder_url,
            false,
            Some(forwarder.id()),
            false,
        ),
        path(
            "llmpool, memory state, 1 worker",
            Some("memory"),
            one.url(""),
            false,
            Some(one.pid()),
            false,
        ),
        path(
            "llmpool, memory state, default runtime",
            Some("multi"),
            multi.url(""),
            false,
            Some(multi.pid()),
            false,
        ),
        path(
            "llmpool, Redis state, 1 worker",
            Some("redis"),
            with_redis.url(""),
            false,
            Some(with_redis.pid()),
            true,
        ),
        path(
            "llmpool, translated (Anthropic client, OpenAI accounts), 1 worker",
            Some("translated"),
            one.url(""),
            true,
            Some(one.pid()),
            false,
        ),
    ];
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();

    let mut report = Report::default();
    let context = [
        ("date", shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"])),
        (
            "cpu",
            shell(
                "sh",
                &["-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
            ),
        ),
        ("cores", system::cores().to_string()),
        ("kernel", shell("uname", &["-r"])),
        (
            "pinning",
            if pinned {
                format!(
                    "measured process on core {PROXY_CORE}; load generator, mock and redis-server on core {LOAD_CORE}"
                )
            } else {
                "none (one core, or no taskset): every process shares the machine".into()
            },
        ),
        (
            "load",
            format!(
                "{} requests per saturation run; {:.0} req/s for {:.0} s at the fixed rate; 2 accounts round-robin; keep-alive; default info logging",
                knobs.requests,
                knobs.rate,
                knobs.paced.as_secs_f64()
            ),
        ),
        (
            "command",
            "cargo build --release -p llmpool-proxy && cargo bench -p llmpool-e2e --bench load"
                .into(),
        ),
    ];
    report.context = context
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let mut under_load_rss = 0;

    for stream in [false, true] {
        let mode = if stream { "stream" } else { "whole" };
        if !Knobs::wants(&knobs.modes, mode) {
            continue;
        }
        for p in &paths {
            if p.key.is_some_and(|k| !Knobs::wants(&knobs.rows, k)) {
                continue;
            }
            let target = p.target("gpt-bench", stream);
            drive::saturate(&client, &target, knobs.requests / 10, 32).await;
            let cpu_before = p.pid.map(system::cpu_time);
            let (calls, commands, redis_cpu) =
                (redis.script_calls(), redis.commands(), redis.cpu_secs());
            let s32 = drive::saturate(&client, &target, knobs.requests, 32).await;
            let s128 = drive::saturate(&client, &target, knobs.requests, 128).await;
            let cpu_us = p.pid.zip(cpu_before).map(|(pid, before)| {
                (system::cpu_time(pid) - before).as_secs_f64() * 1e6 / (2 * knobs.requests) as f64
            });
            if p.redis {
                let n = (2 * knobs.requests) as f64;
                report.figures.push((
                    format!("Redis calls per request, as sent by the proxy ({mode}, saturation)"),
                    format!("{:.3}", (redis.script_calls() - calls) as f64 / n),
                ));
                report.figures.push((
                    format!("Redis commands run per request, script bodies included ({mode})"),
                    format!("{:.1}", (redis.commands() - commands) as f64 / n),
                ));
                report.figures.push((
                    format!("Redis CPU µs per request ({mode}, saturation)"),
                    format!("{:.1}", (redis.cpu_secs() - redis_cpu) * 1e6 / n),
                ));
            }
            if p.key == Some("memory") {
                under_load_rss = under_load_rss.max(system::rss_kib(one.pid()));
            }
            let paced_target = if stream {
                p.target("gpt-long", true)
            } else {
                target
            };
            let cpu_before = p.pid.map(system::cpu_split);
            let paced = drive::paced(&client, &paced_target, knobs.rate, knobs.paced).await;
            if let Some((pid, (user, sys))) = p.pid.zip(cpu_before) {
                // at a low rate every request finds cold caches and an idle
                // core: this CPU is what the added latency is made of
                let n = paced.timings.len().max(1) as f64;
                let (user_now, sys_now) = system::cpu_split(pid);
                let per = |d: Duration| d.as_secs_f64() * 1e6 / n;
                report.figures.push((
                    format!(
                        "CPU µs per request at the fixed rate, user + system ({mode}, {})",
                        p.name
                    ),
                    format!("{:.0} + {:.0}", per(user_now - user), per(sys_now - sys)),
                ));
            }
            let row = row(mode, p.name, &s32, &s128, cpu_us, &paced, stream);
            println!(
                "{mode} | {} | {:.0} / {:.0} req/s | {} µs | p50 {:.2} ms",
                row.path,
                row.rps_32,
                row.rps_128,
                row.cpu_us.map_or("-".into(), |c| format!("{c:.0}")),
                row.paced_ms[0]
            );
            report.rows.push(row);
        }
    }

    // memory: idle, under load, and with many idle open streams
    let open_rss = idle_streams(&client, &one.url("/v1/chat/completions"), one.pid()).await;
    report.figures.push((
        "RSS idle (memory state, 1 worker), MiB".into(),
        format!("{:.1}", idle_rss as f64 / 1024.0),
    ));
    report.figures.push((
        "RSS after saturation (memory state, 1 worker), MiB".into(),
        format!("{:.1}", under_load_rss as f64 / 1024.0),
    ));
    // the same streams through the forwarder: hyper's own cost per
    // connection pair, the floor any hyper-based proxy pays
    let forwarder_url = format!("{}/v1/chat/completions", paths[1].base);
    let floor = idle_streams(&client, &forwarder_url, forwarder.id()).await;
    let per_stream = |(before, rss, opened): (u64, u64, usize)| {
        rss.saturating_sub(before) as f64 / opened.max(1) as f64
    };
    if let Some((before, rss, opened)) = open_rss {
        report.figures.push((
            format!("RSS with {opened} idle open streams, MiB"),
            format!("{:.1}", rss as f64 / 1024.0),
        ));
        let ours = per_stream((before, rss, opened));
        let against = floor
            .map(per_stream)
            .map(|f| format!(" ({:.2}× the bare forwarder's {f:.1})", ours / f.max(0.1)))
            .unwrap_or_default();
        report.figures.push((
            "per idle open stream (over the RSS just before they opened), KiB".into(),
            format!("{ours:.1}{against}"),
        ));
    }

    if Knobs::wants(&knobs.rows, "scale") {
        let base = &paths[2];
        report.scale = scale::run(
            dir.path(),
            &redis,
            &client,
            knobs.requests,
            PROXY_CORE,
            |url| {
                Path {
                    base: url,
                    ..base.clone()
                }
                .target("gpt-bench", false)
            },
        )
        .await;
    }

    let md = report.markdown();
    println!("\n{md}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    report.write(&out).unwrap();
    println!("written to {}", out.display());
    let _ = forwarder.kill();
    drop((one, multi, with_redis));
}

fn row(
    mode: &str,
    path: &str,
    s32: &Sample,
    s128: &Sample,
    cpu_us: Option<f64>,
    paced: &Sample,
    stream: bool,
) -> Row {
    let first = stream.then(|| [ms(paced.first_content(0.5)), ms(paced.first_content(0.99))]);
    let per_event = stream.then(|| {
        let after_first = paced.total(0.5).saturating_sub(paced.first_content(0.5));
        after_first.as_secs_f64() * 1e6 / 49.0
    });
    Row {
        mode: mode.into(),
        path: path.into(),
        rps_32: s32.rps(),
        rps_128: s128.rps(),
        cpu_us,
        paced_ms: [0.5, 0.9, 0.99, 0.999].map(|q| ms(paced.total(q))),
        first_content_ms: first,
        per_event_us: per_event,
        errors: s32.errors + s128.errors + paced.errors,
    }
}

/// Opens streams that send their first content and then stay open; returns
/// the proxy's RSS just before and with them open, and how many opened.
async fn idle_streams(client: &reqwest::Client, url: &str, pid: u32) -> Option<(u64, u64, usize)> {
    let before = system::rss_kib(pid);
    let body = json!({"model": "gpt-idle", "stream": true, "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let opens = (0..IDLE_STREAMS).map(|_| {
        let (client, body) = (client.clone(), body.clone());
        let url = url.to_owned();
        async move {
            let r = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some(r)
        }
    });
    let open: Vec<reqwest::Response> = futures_util::future::join_all(opens)
        .await
        .into_iter()
        .flatten()
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = system::rss_kib(pid);
    let opened = open.len();
    drop(open);
    (opened > 0).then_some((before, rss, opened))
}
