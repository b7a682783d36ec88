//! Several proxy processes sharing one real redis-server behave like one
//! gateway: cooldowns, rate windows, concurrency and sessions are shared,
//! and losing Redis never fails a client request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use llmpool_e2e::harness::{ConfigDir, Process};
use llmpool_e2e::mock::MockProvider;
use llmpool_e2e::redis::RedisServer;
use serde_json::Value;

use crate::common::*;
use crate::replicas::{Cluster, redis_leases};

#[tokio::test]
async fn a_429_seen_by_one_replica_cools_the_account_for_all() {
    let accounts = [
        (
            "a",
            "a?status=429&retry_after=30&times=1",
            "  priority: 0\n",
        ),
        ("b", "b", "  priority: 1\n"),
    ];
    let c = Cluster::start(3, &accounts, &one_tier(&["a", "b"], "fill-first", "")).await;
    assert_eq!(c.served_by(0).await, "b");
    for replica in [1, 2, 1, 2] {
        assert_eq!(
            c.served_by(replica).await,
            "b",
            "replica {replica} skips the cooled account"
        );
    }
    assert_eq!(c.mock.stats.get("a").requests, 1);
}

#[tokio::test]
async fn requests_per_minute_holds_across_replicas_under_concurrent_load() {
    let accounts = [("a", "a?latency_ms=20", "  limits: {requestsPerMinute: 7}\n")];
    let c = Cluster::start(3, &accounts, &one_tier(&["a"], "round-robin", "")).await;
    let body = chat_body("gpt-test", false);
    let all = join_all((0..24).map(|i| c.ask(i % 3, &body))).await;
    let ok = all.iter().filter(|r| r.status() == 200).count();
    assert_eq!(
        c.mock.stats.get("a").requests,
        7,
        "exactly the shared limit reached the provider"
    );
    assert_eq!(ok, 7);
    assert!(
        all.iter()
            .filter(|r| r.status() != 200)
            .all(|r| r.status() == 429)
    );
}

#[tokio::test]
async fn a_request_costs_one_redis_call_and_its_replica_sees_it_released_at_once() {
    // one request in flight at most: each must find the last one released,
    // whose outcome rides in the same Redis call as its own admission
    let accounts = [("a", "a", "  limits: {maxConcurrency: 1}\n")];
    // an outcome waits up to 2 s for an admission to carry it, so a slow
    // turn on a busy machine never sends one on its own here
    let route = one_tier(&["a"], "round-robin", "");
    let linger = ["--redis-outcome-linger", "2s"];
    let c = Cluster::start_full(2, &accounts, &route, &[], &linger).await;
    let whole = chat_body("gpt-test", false);
    let stream = chat_body("gpt-test", true);
    let before = c.redis.script_calls();
    for i in 0..60 {
        let body = if i % 2 == 0 { &whole } else { &stream };
        let r = c.ask(0, body).await;
        assert_eq!(r.status(), 200, "request {i}");
        r.bytes().await.unwrap();
    }
    let calls = c.redis.script_calls() - before;
    // two calls a request would be 120
    assert!(calls <= 62, "{calls} Redis calls for 60 requests");
    // the other replica finds the slot free once the last outcome is sent,
    // on its own after the linger
    eventually("the last outcome reached Redis", || async {
        c.ask(1, &whole).await.status() == 200
    })
    .await;
    assert_eq!(c.mock.stats.get("a").max_in_flight, 1);
}

#[tokio::test]
async fn max_concurrency_holds_across_replicas() {
    let accounts = [("a", "a?latency_ms=400", "  limits: {maxConcurrency: 2}\n")];
    let c = Cluster::start(3, &accounts, &one_tier(&["a"], "round-robin", "")).await;
    let body = chat_body("gpt-test", false);
    let all = join_all((0..9).map(|i| c.ask(i % 3, &body))).await;
    assert_eq!(c.mock.stats.get("a").max_in_flight, 2);
    assert_eq!(all.iter().filter(|r| r.status() == 200).count(), 2);
}

#[tokio::test]
async fn a_sticky_session_hits_the_same_account_through_any_replica() {
    let accounts = [("a", "a", ""), ("b", "b", ""), ("c", "c", "")];
    let c = Cluster::start(3, &accounts, &one_tier(&["a", "b", "c"], "sticky", "")).await;
    let mut body = chat_body("gpt-test", false);
    body["user"] = "user-42".into();
    let first = reply_label(&c.ask(0, &body).await.json().await.unwrap());
    for replica in [1, 2, 0, 2, 1] {
        let label = reply_label(&c.ask(replica, &body).await.json().await.unwrap());
        assert_eq!(label, first, "replica {replica}");
    }
}

#[tokio::test]
async fn losing_redis_fails_no_request_and_shared_limits_return_with_it() {
    let accounts = [
        ("a", "a", "  limits: {requestsPerMinute: 4}\n"),
        ("b", "b", ""),
    ];
    let spec = one_tier(&["a", "b"], "fill-first", "");
    let mut c = Cluster::start(2, &accounts, &spec).await;
    for i in 0..6 {
        assert_eq!(
            c.ask(i % 2, &chat_body("gpt-test", false)).await.status(),
            200
        );
    }
    assert_eq!(
        c.mock.stats.get("a").requests,
        4,
        "the shared window filled a, the rest went to b"
    );
    let mut at_rest = Vec::new();
    for p in &c.proxies {
        at_rest.push(Baseline::take(&c.http, p).await);
    }

    // four workers keep sending through both replicas while Redis dies
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (http, stop) = (c.http.clone(), stop.clone());
            let url = c.proxies[w % 2].url("/v1/chat/completions");
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let body = chat_body("gpt-test", statuses.len() % 3 == 0);
                    let r = http.post(&url).json(&body).send().await.unwrap();
                    statuses.push(r.status().as_u16());
                    let _ = r.bytes().await;
                }
                statuses
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.redis.kill();
    // each replica notices on its next Redis call; on a loaded machine that
    // can take longer than a fixed pause
    eventually("both replicas say they are degraded", || async {
        c.degraded(0).await && c.degraded(1).await
    })
    .await;
    let m = metrics_of(&c.http, &c.proxies[0]).await;
    assert!(m.contains("llmpool_state_degraded 1"));
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for w in workers {
        let statuses = w.await.unwrap();
        total += statuses.len();
        assert!(
            statuses.iter().all(|s| *s == 200),
            "a request failed while Redis was away: {statuses:?}"
        );
    }
    assert!(
        total > 20,
        "the load ran through the outage ({total} requests)"
    );

    // an empty Redis comes back: the replicas return to it and share limits again
    c.redis.restart().unwrap();
    for replica in 0..2 {
        eventually("replica back on Redis", || async {
            !c.degraded(replica).await
        })
        .await;
    }
    let before = c.mock.stats.get("a").requests;
    for i in 0..8 {
        assert_eq!(
            c.ask(i % 2, &chat_body("gpt-test", false)).await.status(),
            200
        );
    }
    assert_eq!(
        c.mock.stats.get("a").requests - before,
        4,
        "after the restart the (empty) shared window holds again across replicas"
    );
    let logged = c.proxies[0]
        .logs_settled()
        .await
        .iter()
        .filter(|l| l.contains("shared state unreachable"))
        .count();
    assert_eq!(logged, 1, "logged once per change");
    // the outage and the return leave no task behind (Redis connections
    // are back to one per replica)
    for (p, b) in c.proxies.iter().zip(&at_rest) {
        b.expect_back(&c.http, p, 16).await;
    }
}

#[tokio::test]
async fn a_killed_replica_leaks_no_lease_beyond_its_expiry() {
    let accounts = [("a", "a?latency_ms=20000", "  limits: {maxConcurrency: 1}\n")];
    let spec = one_tier(
        &["a"],
        "round-robin",
        "  retry: {perTryTimeout: 2s, firstByteTimeout: 2s, maxAttempts: 1}\n",
    );
    let mut c = Cluster::start(2, &accounts, &spec).await;
    let url = c.proxies[0].url("/v1/chat/completions");
    let http = c.http.clone();
    let hanging = tokio::spawn(async move {
        http.post(url)
            .json(&chat_body("gpt-test", false))
            .send()
            .await
    });
    eventually("the slow request holds the slot", || async {
        c.mock.stats.get("a").in_flight == 1
    })
    .await;
    // replica 0 dies holding the only slot
    drop(c.proxies.remove(0));
    let _ = hanging.await;
    let r = c.ask(0, &chat_body("gpt-test", false)).await;
    assert_eq!(
        r.status(),
        429,
        "the dead replica's lease still holds the slot"
    );
    // the lease lasts perTryTimeout + 5 s; after that the slot is free again
    tokio::time::sleep(Duration::from_millis(7200)).await;
    let r = c.ask(0, &chat_body("gpt-test", false)).await;
    assert_ne!(r.status(), 429, "the lease expired by itself");
}

#[tokio::test]
async fn cooldowns_are_pushed_so_a_known_cold_account_costs_no_redis_call() {
    let accounts = [("a", "a?status=429&retry_after=30", "")];
    let c = Cluster::start(3, &accounts, &one_tier(&["a"], "round-robin", "")).await;
    assert_eq!(c.ask(0, &chat_body("gpt-test", false)).await.status(), 429);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = c.redis.script_calls();
    for replica in [1, 2, 1, 2, 0] {
        let r = c.ask(replica, &chat_body("gpt-test", false)).await;
        assert_eq!(r.status(), 429, "replica {replica}");
        assert!((29..=30).contains(&retry_after_secs(&r)));
    }
    assert_eq!(
        c.redis.script_calls(),
        before,
        "replicas knew from pub/sub; Redis was not asked"
    );
    assert_eq!(c.mock.stats.get("a").requests, 1);
}

#[tokio::test]
async fn a_client_limit_holds_exactly_across_replicas() {
    let key = "sk-team-a-2c8e6f1a9d4b7053";
    let clients = llmpool_e2e::harness::docs(&[
        llmpool_e2e::harness::secret("client-keys", &[("a", key)]),
        llmpool_e2e::harness::client(
            "team-a",
            "client-keys",
            "a",
            "  limits: {requestsPerMinute: 7, maxConcurrency: 5}\n",
        ),
    ]);
    let accounts = [
        ("a", "a?latency_ms=1500", ""),
        ("b", "b?latency_ms=1500", ""),
    ];
    let c = Cluster::start_with(
        3,
        &accounts,
        &one_tier(&["a", "b"], "round-robin", ""),
        &[("clients.yaml", clients)],
    )
    .await;
    let body = chat_body("gpt-test", false);
    let all = join_all((0..24).map(|i| {
        let url = c.proxies[i % 3].url("/v1/chat/completions");
        c.http.post(url).bearer_auth(key).json(&body).send()
    }))
    .await;
    let statuses: Vec<u16> = all
        .iter()
        .map(|r| r.as_ref().unwrap().status().as_u16())
        .collect();
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!((ok, limited), (5, 19), "{statuses:?}");
    let upstream = c.mock.stats.get("a").requests + c.mock.stats.get("b").requests;
    assert_eq!(upstream, 5, "five in flight at once is the client's limit");
    // one by one, the request window fills to exactly seven
    let mut served = 0;
    for i in 0..6 {
        let r = c.ask_as(i % 3, key, &body).await;
        served += usize::from(r.status() == 200);
    }
    assert_eq!(
        ok + served,
        7,
        "the client's requests per minute, across three replicas"
    );
}

#[tokio::test]
async fn replicas_under_traffic_are_back_on_redis_within_seconds_of_its_return() {
    let mut c = Cluster::start(2, &[("a", "a", "")], &one_tier(&["a"], "round-robin", "")).await;
    c.redis.kill();
    for replica in 0..2 {
        eventually("degraded", || async {
            let _ = c.ask(replica, &chat_body("gpt-test", false)).await;
            c.degraded(replica).await
        })
        .await;
    }
    c.redis.restart().unwrap();
    let back = std::time::Instant::now();
    for replica in 0..2 {
        eventually("replica back on Redis", || async {
            let r = c.ask(replica, &chat_body("gpt-test", false)).await;
            assert_eq!(r.status(), 200);
            !c.degraded(replica).await
        })
        .await;
    }
    // the heartbeat probes a lost Redis every 200 ms and the client library
    // reconnects with its own short backoff: 1.3-1.8 s measured on an idle
    // 2-core machine; the bound leaves room for a loaded one
    let took = back.elapsed();
    eprintln!("both replicas back on Redis {took:?} after it returned");
    assert!(took < Duration::from_secs(4), "recovery took {took:?}");
}

#[tokio::test]
async fn half_the_upstream_calls_failing_loses_no_count_and_leaks_no_lease() {
    let accounts = [
        ("a", "a?fail_pct=50", ""),
        ("b", "b?fail_pct=50", ""),
        ("c", "c?fail_pct=50", ""),
    ];
    let c = Cluster::start(2, &accounts, &one_tier(&["a", "b", "c"], "round-robin", "")).await;
    // warm both replicas' connection pools, then take the baseline
    for i in 0..8 {
        let _ = c.ask(i % 2, &chat_body("gpt-test", false)).await;
    }
    let fds_before: Vec<usize> = c.proxies.iter().map(Process::open_fds).collect();
    let mut tasks_before = Vec::new();
    for p in &c.proxies {
        tasks_before.push(runtime_tasks(&c.http, p).await);
    }
    let started = std::time::Instant::now();
    // its own client, so its connections close when it is dropped
    let load = reqwest::Client::new();
    let results = join_all((0..200).map(|i| {
        let body = chat_body("gpt-test", i % 2 == 0);
        let url = c.proxies[i % 2].url("/v1/chat/completions");
        let http = load.clone();
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            let _ = r.bytes().await;
            status
        }
    }))
    .await;
    let took = started.elapsed();
    let ok = results.iter().filter(|&&s| s == 200).count();
    assert!(
        results.iter().all(|s| [200, 502, 503].contains(s)),
        "{results:?}"
    );
    let unavailable = results.iter().filter(|&&s| s == 503).count();
    eprintln!("50% upstream 5xx: {ok}/200 served, {unavailable} 503 (circuits open), in {took:?}");
    // three attempts would serve 87.5% if the accounts stayed in; five
    // failures in a row open an account's circuit, which costs some
    assert!(
        ok >= 100,
        "retries rotate past the failures: {ok}/200 served"
    );

    // every upstream call is counted once, by exactly one replica
    let mut attempts = 0;
    let mut answered = 0;
    let mut refused = 0;
    for p in &c.proxies {
        let m = metrics_of(&c.http, p).await;
        attempts += metric_sum(&m, "llmpool_upstream_attempts_total");
        answered += metric_sum(&m, "llmpool_requests_total");
        refused += metric_sum(&m, "llmpool_gateway_errors_total");
    }
    assert_eq!(
        attempts,
        c.mock.stats.total(),
        "attempts counted vs calls the provider saw"
    );
    assert_eq!(
        answered + refused,
        200 + 8,
        "each request (and the 8 warm-ups) counted once"
    );
    // and every lease is back, in Redis and on each replica
    eventually("no lease left in Redis", || async {
        ["a", "b", "c"]
            .iter()
            .all(|a| redis_leases(&c.redis, a) == 0)
    })
    .await;
    for p in &c.proxies {
        let m = metrics_of(&c.http, p).await;
        assert_eq!(metric_sum(&m, "llmpool_account_in_flight"), 0, "{m}");
    }
    // once the clients hang up, a replica keeps only its pooled upstream
    // connections (at most one per concurrent attempt it made): no leak
    drop(load);
    for ((p, before), tasks) in c.proxies.iter().zip(&fds_before).zip(&tasks_before) {
        eventually("client connections closed", || async {
            p.open_fds() <= before + 120
        })
        .await;
        // each task left over is a pooled upstream connection's, which
        // also holds a descriptor: no task per request, stream or retry
        let pooled = p.open_fds().saturating_sub(*before) as u64;
        let tasks_now = runtime_tasks(&c.http, p).await;
        eprintln!(
            "fds: {before} before, {} after 200 requests; tasks {tasks} before, {tasks_now} after",
            p.open_fds()
        );
        assert!(
            tasks_now <= tasks + pooled + 4,
            "tasks {tasks} -> {tasks_now} with {pooled} more descriptors"
        );
    }
}

#[tokio::test]
async fn a_429_storm_on_every_account_is_not_amplified() {
    let accounts = [
        ("a", "a?status=429&retry_after=5", ""),
        ("b", "b?status=429&retry_after=5", ""),
        ("c", "c?status=429&retry_after=5", ""),
    ];
    let c = Cluster::start(3, &accounts, &one_tier(&["a", "b", "c"], "round-robin", "")).await;
    let mut at_rest = Vec::new();
    for p in &c.proxies {
        at_rest.push(Baseline::take(&c.http, p).await);
    }
    let results = join_all((0..150).map(|i| {
        let url = c.proxies[i % 3].url("/v1/chat/completions");
        let http = c.http.clone();
        async move {
            let r = http
                .post(url)
                .json(&chat_body("gpt-test", false))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.headers().contains_key("retry-after"))
        }
    }))
    .await;
    assert!(
        results.iter().all(|&(s, retry)| s == 429 && retry),
        "every client is told to come back later: {results:?}"
    );
    // requests admitted before the first 429s came back each reach an
    // account (131-154 calls measured); retries onto accounts that are
    // already cooling do not multiply them (the budget would allow 450)
    let calls = c.mock.stats.total();
    eprintln!("150 concurrent requests in a 429 storm reached the provider {calls} times");
    assert!(calls <= 2 * 150, "the storm was amplified: {calls} calls");
    // and while the accounts cool (5 s), the next wave costs no upstream call
    let body = chat_body("gpt-test", false);
    let wave = join_all((0..60).map(|i| c.ask(i % 3, &body))).await;
    assert!(wave.iter().all(|r| r.status() == 429));
    assert_eq!(c.mock.stats.total(), calls, "cooled accounts were called");
    // 50 clients' connections per replica stay open for reuse, and up to
    // one pooled upstream connection per concurrent attempt
    for (p, b) in c.proxies.iter().zip(&at_rest) {
        b.expect_back(&c.http, p, 120).await;
    }
}

#[tokio::test]
async fn a_replica_killed_during_100_streams_breaks_only_its_own_and_its_leases_expire() {
    let accounts = [
        ("a", "a?chunk_ms=150&chunks=12", ""),
        ("b", "b?chunk_ms=150&chunks=12", ""),
    ];
    let spec = one_tier(
        &["a", "b"],
        "round-robin",
        "  retry: {perTryTimeout: 4s, firstByteTimeout: 2s}\n",
    );
    let mut c = Cluster::start(2, &accounts, &spec).await;
    let survivor_at_rest = Baseline::take(&c.http, &c.proxies[1]).await;
    let streams: Vec<_> = (0..100)
        .map(|i| {
            let url = c.proxies[i % 2].url("/v1/chat/completions");
            let http = c.http.clone();
            tokio::spawn(async move {
                let r = http
                    .post(url)
                    .json(&chat_body("gpt-test", true))
                    .send()
                    .await;
                let Ok(r) = r else { return Err(()) };
                // a stream that breaks off is an error, not a short answer
                let text = r.text().await.map_err(|_| ())?;
                let (content, _) = read_stream_text(&text);
                Ok(content)
            })
        })
        .collect();
    eventually("all 100 streams are flowing", || async {
        c.mock.stats.get("a").in_flight + c.mock.stats.get("b").in_flight == 100
    })
    .await;
    let killed = std::time::Instant::now();
    drop(c.proxies.remove(0)); // SIGKILL
    let mut survived = 0;
    let mut broken = 0;
    for (i, s) in streams.into_iter().enumerate() {
        match s.await.unwrap() {
            Ok(content) if i % 2 == 1 => {
                assert!(content.starts_with("mock reply"), "{content}");
                survived += 1;
            }
            Ok(content) => panic!("a stream of the killed replica ended normally: {content}"),
            Err(()) => {
                assert_eq!(i % 2, 0, "a stream of the live replica broke");
                broken += 1;
            }
        }
    }
    let over = killed.elapsed();
    eprintln!(
        "SIGKILL during 100 streams: {survived} finished, {broken} broken, all done {over:?} after the kill"
    );
    assert_eq!((survived, broken), (50, 50));
    assert!(over < Duration::from_secs(5), "a client waited {over:?}");
    // the live replica returned its leases at once; the dead one's expire
    // after perTryTimeout + 5 s
    let m = metrics_of(&c.http, &c.proxies[0]).await;
    assert_eq!(metric_sum(&m, "llmpool_account_in_flight"), 0);
    // the survivor's 50 streams left nothing but reusable connections
    survivor_at_rest
        .expect_back(&c.http, &c.proxies[0], 110)
        .await;
    let held = redis_leases(&c.redis, "a") + redis_leases(&c.redis, "b");
    assert!(held <= 50, "only the dead replica's leases remain: {held}");
    tokio::time::sleep(Duration::from_secs(9)).await;
    let body = chat_body("gpt-test", false);
    let _ = c.ask(0, &body).await;
    eventually("the dead replica's leases expired", || async {
        redis_leases(&c.redis, "a") + redis_leases(&c.redis, "b") == 0
    })
    .await;
}

/// The content of an SSE text.
fn read_stream_text(text: &str) -> (String, usize) {
    let mut content = String::new();
    let mut events = 0;
    for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        events += 1;
        if let Ok(v) = serde_json::from_str::<Value>(data)
            && let Some(c) = v
                .pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        {
            content.push_str(c);
        }
    }
    (content, events)
}

/// A TCP proxy in front of Redis that holds every chunk for `delay` ms
/// before passing it on.
async fn slow_link(to: u16, delay: Arc<std::sync::atomic::AtomicU64>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            type Read = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
            type Write = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;
            let pairs: [(Read, Write); 2] =
                [(Box::new(cr), Box::new(sw)), (Box::new(sr), Box::new(cw))];
            for (mut from, mut into) in pairs {
                let delay = delay.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = from.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let wait = delay.load(Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                        if into.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        }
    });
    port
}

#[tokio::test]
async fn a_slow_redis_costs_a_request_its_call_limit_not_its_latency() {
    let mock = MockProvider::start().await.unwrap();
    let redis = RedisServer::start().unwrap();
    let delay = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let port = slow_link(redis.port, delay.clone()).await;
    let dir = ConfigDir::new().unwrap();
    write_config(
        &dir,
        &mock,
        &[("a", "a", "")],
        &one_tier(&["a"], "round-robin", ""),
    );
    let url = format!("redis://127.0.0.1:{port}");
    let proxies: Vec<Process> = (0..2)
        .map(|_| {
            let args = ["--redis", url.as_str(), "--redis-timeout", "50ms"];
            Process::start(dir.path(), &args, &[]).unwrap_or_else(|f| panic!("{f:?}"))
        })
        .collect();
    let http = reqwest::Client::new();
    let degraded = async |p: &Process| readyz(&http, p).await["stateDegraded"] == true;
    for p in &proxies {
        eventually("connected", || async { !degraded(p).await }).await;
    }
    // Redis now answers 2 × 300 ms late, six times the call limit
    delay.store(300, Ordering::Relaxed);
    let mut slowest = Duration::ZERO;
    for i in 0..40 {
        let started = std::time::Instant::now();
        let r = http
            .post(proxies[i % 2].url("/v1/chat/completions"))
            .json(&chat_body("gpt-test", i % 4 == 0))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let _ = r.bytes().await;
        slowest = slowest.max(started.elapsed());
    }
    eprintln!("Redis 600 ms slow: 40 of 40 served, slowest {slowest:?}");
    assert!(
        slowest < Duration::from_millis(500),
        "a request waited on Redis: {slowest:?}"
    );
    for p in &proxies {
        assert!(degraded(p).await, "the replica serves on its local view");
    }
    // Redis fast again: the replicas return to it
    delay.store(0, Ordering::Relaxed);
    for p in &proxies {
        eventually("back on Redis", || async {
            let _ = http
                .post(p.url("/v1/chat/completions"))
                .json(&chat_body("gpt-test", false))
                .send()
                .await;
            !degraded(p).await
        })
        .await;
    }
}
