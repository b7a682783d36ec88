//! Load drivers: closed-loop saturation (N clients, each sending its next
//! request when the last one ends) and open-loop pacing (requests started
//! at a fixed rate whatever the answers do), each timing whole exchanges
//! and, for streams, the first content.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

/// Where requests go and what they say.
#[derive(Clone)]
pub struct Target {
    /// Full URL.
    pub url: String,
    /// Bearer key (the mock reads its script from it; proxies ignore it).
    pub key: String,
    /// The JSON body.
    pub body: String,
}

/// What one request took.
#[derive(Clone, Copy)]
pub struct Timing {
    /// Until the whole answer was read.
    pub total: Duration,
    /// Until the first content arrived (the mock's text starts with
    /// "mock reply"), for streams.
    pub first_content: Option<Duration>,
}

/// A run's timings and failures.
#[derive(Default)]
pub struct Sample {
    /// Successful requests.
    pub timings: Vec<Timing>,
    /// Failed requests.
    pub errors: usize,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Sample {
    /// Successful requests per second.
    pub fn rps(&self) -> f64 {
        self.timings.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile of the whole-exchange time.
    pub fn total(&self, q: f64) -> Duration {
        quantile(self.timings.iter().map(|t| t.total).collect(), q)
    }

    /// The `q` quantile of the time to first content.
    pub fn first_content(&self, q: f64) -> Duration {
        quantile(
            self.timings
                .iter()
                .filter_map(|t| t.first_content)
                .collect(),
            q,
        )
    }
}

fn quantile(mut all: Vec<Duration>, q: f64) -> Duration {
    all.sort();
    let at = ((all.len() as f64 - 1.0) * q).round() as usize;
    all.get(at).copied().unwrap_or_default()
}

/// One request, timed.
async fn once(client: &reqwest::Client, target: &Target) -> Option<Timing> {
    let started = Instant::now();
    let response = client
        .post(&target.url)
        .bearer_auth(&target.key)
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .body(target.body.clone())
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let mut first_content = None;
    let mut tail: Vec<u8> = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.ok()?;
        if first_content.is_none() {
            // the marker may straddle two reads: keep a short tail
            tail.extend_from_slice(&chunk);
            if memchr_find(&tail, b"reply") {
                first_content = Some(started.elapsed());
            }
            let keep = tail.len().saturating_sub(8);
            tail.drain(..keep);
        }
    }
    Some(Timing {
        total: started.elapsed(),
        first_content,
    })
}

fn memchr_find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `requests` requests from `concurrency` clients, each sending its next
/// request as soon as the last one ended.
pub async fn saturate(
    client: &reqwest::Client,
    target: &Target,
    requests: usize,
    concurrency: usize,
) -> Sample {
    saturate_all(client, std::slice::from_ref(target), requests, concurrency).await
}

/// As [`saturate`], the clients spread evenly over `targets` (replicas).
pub async fn saturate_all(
    client: &reqwest::Client,
    targets: &[Target],
    requests: usize,
    concurrency: usize,
) -> Sample {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers = (0..concurrency).map(|i| {
        let target = targets[i % targets.len()].clone();
        let (client, next) = (client.clone(), next.clone());
        tokio::spawn(async move {
            let mut sample = Sample::default();
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                match once(&client, &target).await {
                    Some(t) => sample.timings.push(t),
                    None => sample.errors += 1,
                }
            }
            sample
        })
    });
    let mut all = Sample::default();
    for worker in futures_util::future::join_all(workers).await {
        let Ok(sample) = worker else {
            all.errors += 1;
            continue;
        };
        all.timings.extend(sample.timings);
        all.errors += sample.errors;
    }
    all.elapsed = started.elapsed();
    all
}

/// Requests started at `rate` per second for `duration`, each on its own
/// task, so a slow answer never delays the next start (no coordinated
/// omission).
pub async fn paced(
    client: &reqwest::Client,
    target: &Target,
    rate: f64,
    duration: Duration,
) -> Sample {
    let count = (rate * duration.as_secs_f64()).round() as usize;
    let gap = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        tokio::time::sleep_until((started + gap * i as u32).into()).await;
        let (client, target) = (client.clone(), target.clone());
        tasks.push(tokio::spawn(async move { once(&client, &target).await }));
    }
    let mut sample = Sample::default();
    for task in futures_util::future::join_all(tasks).await {
        match task.ok().flatten() {
            Some(t) => sample.timings.push(t),
            None => sample.errors += 1,
        }
    }
    sample.elapsed = started.elapsed();
    sample
}
