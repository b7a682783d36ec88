//! Replicas sharing one Redis: 1, 2 and 3 `llmpool-proxy` processes (one
//! worker each, on the measured core with the rest of the proxies), driven
//! together at saturation, with their CPU and Redis's per request.

use std::path::Path;

use llmpool_e2e::harness::Process;
use llmpool_e2e::redis::RedisServer;

use super::drive::{self, Target};
use super::report::ScaleRow;
use super::system;

/// Runs the replica counts in turn; `target` turns a proxy's base URL into
/// the request to send it.
pub async fn run(
    config: &Path,
    redis: &RedisServer,
    client: &reqwest::Client,
    requests: usize,
    core: usize,
    target: impl Fn(String) -> Target,
) -> Vec<ScaleRow> {
    let mut rows = Vec::new();
    for replicas in 1..=3 {
        let proxies: Vec<Process> = (0..replicas)
            .map(|_| {
                let args = [
                    "--worker-threads",
                    "1",
                    "--max-connections",
                    "8192",
                    "--redis",
                    &redis.url(),
                ];
                Process::start(config, &args, &[]).unwrap_or_else(|f| panic!("{f:?}"))
            })
            .collect();
        for p in &proxies {
            system::pin(p.pid(), core);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let targets: Vec<Target> = proxies.iter().map(|p| target(p.url(""))).collect();
        drive::saturate_all(client, &targets, requests / 10, 128).await;
        let cpu_before: Vec<_> = proxies.iter().map(|p| system::cpu_time(p.pid())).collect();
        let redis_before = redis.cpu_secs();
        let sample = drive::saturate_all(client, &targets, requests, 128).await;
        let proxy_cpu: f64 = proxies
            .iter()
            .zip(&cpu_before)
            .map(|(p, before)| (system::cpu_time(p.pid()) - *before).as_secs_f64())
            .sum();
        let n = requests as f64;
        rows.push(ScaleRow {
            replicas,
            rps: sample.rps(),
            proxy_cpu_us: proxy_cpu * 1e6 / n,
            redis_cpu_us: (redis.cpu_secs() - redis_before) * 1e6 / n,
            errors: sample.errors,
        });
    }
    rows
}
