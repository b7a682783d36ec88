use std::time::Duration;

use llmpool_e2e::harness::{self, ConfigDir, Process};
use llmpool_e2e::mock::MockProvider;
use serde_json::{Value, json};

/// A mock, a config dir and a proxy serving it.
pub struct Env {
    pub mock: MockProvider,
    pub dir: ConfigDir,
    pub proxy: Process,
    pub http: reqwest::Client,
}

/// Account lines: (name, mock key, extra spec lines).
pub type Acct<'a> = (&'a str, &'a str, &'a str);

impl Env {
    /// Starts a mock and a proxy with `accounts` and one route `spec` for
    /// model `gpt-test` (and the `*-test` glob).
    pub async fn start(accounts: &[Acct<'_>], route_spec: &str) -> Env {
        Self::start_with(accounts, route_spec, &[], &[]).await
    }

    pub async fn start_with(
        accounts: &[Acct<'_>],
        route_spec: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Env {
        let mock = MockProvider::start().await.unwrap();
        let dir = ConfigDir::new().unwrap();
        write_config(&dir, &mock, accounts, route_spec);
        let proxy = Process::start(dir.path(), args, env)
            .unwrap_or_else(|f| panic!("proxy did not start: {f:?}"));
        Env {
            mock,
            dir,
            proxy,
            http: reqwest::Client::new(),
        }
    }

    pub async fn chat(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(self.proxy.url("/v1/chat/completions"))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// A non-streaming request; returns (status, body JSON).
    pub async fn ask(&self, model: &str) -> (u16, Value) {
        let r = self.chat(&chat_body(model, false)).await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Which label served a successful answer ("mock reply from X" → X).
    pub async fn served_by(&self, model: &str) -> String {
        let (status, body) = self.ask(model).await;
        assert_eq!(status, 200, "{body}");
        reply_label(&body)
    }

    pub fn count(&self, label: &str) -> u64 {
        self.mock.stats.get(label).requests
    }

    /// GET `path` and parse the JSON answer.
    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.http.get(self.proxy.url(path)).send().await.unwrap();
        r.json().await.unwrap()
    }

    /// Waits until /metrics contains `line`.
    pub async fn wait_for_metric(&self, line: &str) {
        eventually(line, || async { self.metrics().await.contains(line) }).await;
    }

    pub async fn metrics(&self) -> String {
        metrics_of(&self.http, &self.proxy).await
    }
}

/// The /readyz answer of a proxy.
pub async fn readyz(http: &reqwest::Client, process: &Process) -> Value {
    let r = http.get(process.url("/readyz")).send().await.unwrap();
    r.json().await.unwrap()
}

/// The /metrics text of a proxy or operator process.
pub async fn metrics_of(http: &reqwest::Client, process: &Process) -> String {
    let url = process.url("/metrics");
    http.get(url).send().await.unwrap().text().await.unwrap()
}

/// The sum of every sample of `metric` (all label sets) in a /metrics text.
pub fn metric_sum(text: &str, metric: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Tasks alive on a proxy's runtime now (`llmpool_runtime_tasks`).
pub async fn runtime_tasks(http: &reqwest::Client, process: &Process) -> u64 {
    metric_sum(&metrics_of(http, process).await, "llmpool_runtime_tasks")
}

/// What a proxy holds at rest, to compare with once a fault is over.
pub struct Baseline {
    fds: usize,
    tasks: u64,
    rss_kib: u64,
}

impl Baseline {
    /// Reads it now (through `http`, which must also do the later check).
    pub async fn take(http: &reqwest::Client, proxy: &Process) -> Self {
        Self {
            fds: proxy.open_fds(),
            tasks: runtime_tasks(http, proxy).await,
            rss_kib: proxy.rss_kib(),
        }
    }

    /// Waits until the proxy is back at rest: whatever descriptors are left
    /// over are connections kept for reuse (at most `kept`: pooled upstream
    /// ones, and clients' keep-alive ones), every task left over holds one
    /// of them (no task per request, stream, retry or Redis call outlives
    /// it; a few per account's HTTP client are allowed), and memory grew by
    /// less than 64 MiB.
    pub async fn expect_back(&self, http: &reqwest::Client, proxy: &Process, kept: usize) {
        eventually("descriptors and tasks back to the baseline", || async {
            let fds = proxy.open_fds();
            let tasks = runtime_tasks(http, proxy).await;
            let extra_fds = fds.saturating_sub(self.fds);
            // plus each account's HTTP client's pool reaper, started with
            // its first pooled connection, and a little slack
            let back = fds <= self.fds + kept && tasks <= self.tasks + extra_fds as u64 + 8;
            if !back {
                eprintln!(
                    "not yet at rest: {} -> {fds} descriptors (keeping up to {kept}), {} -> {tasks} tasks",
                    self.fds, self.tasks
                );
            }
            back
        })
        .await;
        let grown = proxy.rss_kib().saturating_sub(self.rss_kib);
        assert!(grown < 64 * 1024, "the proxy grew by {grown} KiB");
    }
}

pub fn write_config(dir: &ConfigDir, mock: &MockProvider, accounts: &[Acct<'_>], route_spec: &str) {
    let keys: Vec<(String, String)> = accounts
        .iter()
        .map(|(n, k, _)| (n.to_string(), k.to_string()))
        .collect();
    let key_refs: Vec<(&str, &str)> = keys.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let mut parts = vec![harness::secret("keys", &key_refs)];
    for (name, _, extra) in accounts {
        parts.push(harness::account(name, &mock.base_url(), name, extra));
    }
    dir.write("accounts.yaml", &harness::docs(&parts)).unwrap();
    dir.write("route.yaml", &harness::route("test", route_spec))
        .unwrap();
}

/// A route spec over the named accounts in one tier.
pub fn one_tier(names: &[&str], strategy: &str, extra: &str) -> String {
    format!(
        "  models: [gpt-test, \"*-test\"]\n  strategy: {strategy}\n  targets:\n    - accounts: {{names: [{}]}}\n{extra}",
        names.join(", ")
    )
}

pub fn chat_body(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}]
    })
}

pub fn reply_label(body: &Value) -> String {
    let text = body
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .unwrap_or_default();
    text.strip_prefix("mock reply from ")
        .unwrap_or(text)
        .to_owned()
}

/// Reads a whole SSE response; returns (concatenated content, data payloads).
pub async fn read_stream(r: reqwest::Response) -> (String, Vec<String>) {
    let text = r.text().await.unwrap_or_default();
    let mut content = String::new();
    let mut payloads = Vec::new();
    for line in text.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        payloads.push(data.to_owned());
        if let Ok(v) = serde_json::from_str::<Value>(data)
            && let Some(c) = v
                .pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        {
            content.push_str(c);
        }
    }
    (content, payloads)
}

/// [`read_stream`], failing the test if the stream is still open after
/// 30 s (a stream the gateway should have ended itself).
pub async fn read_stream_within_30s(r: reqwest::Response) -> (String, Vec<String>) {
    tokio::time::timeout(Duration::from_secs(30), read_stream(r))
        .await
        .expect("the stream was still open after 30 s")
}

/// Asserts the OpenAI error shape and returns `error`.
pub fn openai_error(body: &Value) -> &Value {
    let e = &body["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no message in {body}"
    );
    assert!(e["type"].as_str().is_some(), "no type in {body}");
    assert!(e.get("code").is_some(), "no code in {body}");
    e
}

pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// The `Retry-After` header in whole seconds.
pub fn retry_after_secs(r: &reqwest::Response) -> u64 {
    let value = r.headers()["retry-after"].to_str().unwrap();
    value.parse().unwrap()
}

/// Who answers `n` requests through each proxy, by account label (or
/// "status N" for a failure).
pub async fn served(
    http: &reqwest::Client,
    proxies: &[Process],
    n: usize,
) -> std::collections::HashMap<String, usize> {
    let mut seen = std::collections::HashMap::new();
    for p in proxies {
        for _ in 0..n {
            let r = http
                .post(p.url("/v1/chat/completions"))
                .json(&chat_body("gpt-test", false))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let who = if status == 200 {
                reply_label(&body)
            } else {
                format!("status {status}")
            };
            *seen.entry(who).or_default() += 1;
        }
    }
    seen
}

/// Polls until every proxy is served only by `labels`; returns how long
/// that took (fails after 20 s).
pub async fn until_served_by(
    http: &reqwest::Client,
    proxies: &[Process],
    labels: &[&str],
) -> Duration {
    let start = std::time::Instant::now();
    loop {
        let seen = served(http, proxies, 6).await;
        if seen.keys().all(|k| labels.contains(&k.as_str())) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still served by {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
