//! Findings of a hostile-but-honest probe, each fixed and kept fixed: 429
//! semantics when every account is rate limited, a zero Retry-After, a
//! request no account could ever take, and client strings echoed whole.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn when_every_attempt_is_rate_limited_the_client_gets_a_429_with_the_earliest_retry_after() {
    // three accounts, three attempts, three 429s: the budget runs out on
    // rate limits, which the client must see as a 429, not a 502
    let accounts = [
        ("a", "a?status=429&retry_after=30", ""),
        ("b", "b?status=429&retry_after=7", ""),
        ("c", "c?status=429&retry_after=20", ""),
    ];
    let env = Env::start(&accounts, &one_tier(&["a", "b", "c"], "round-robin", "")).await;
    let r = env.chat(&chat_body("gpt-test", false)).await;
    assert_eq!(r.status(), 429);
    assert_eq!(retry_after_secs(&r), 7);
    let body: Value = r.json().await.unwrap();
    assert_eq!(openai_error(&body)["code"], "rate_limit_exceeded");
    assert_eq!(env.mock.stats.total(), 3);
}

#[tokio::test]
async fn a_zero_retry_after_still_cools_the_account() {
    let accounts = [
        ("zero", "zero?status=429&retry_after=0", ""),
        ("ok", "ok", ""),
    ];
    let env = Env::start(&accounts, &one_tier(&["zero", "ok"], "round-robin", "")).await;
    for _ in 0..20 {
        assert_eq!(env.served_by("gpt-test").await, "ok");
    }
    // without a minimum cooldown every other request tried `zero` first
    assert!(
        env.count("zero") <= 2,
        "zero was called {} times",
        env.count("zero")
    );
}

#[tokio::test]
async fn a_request_no_account_could_ever_take_is_a_400_not_an_endless_429() {
    let env = Env::start(
        &[("a", "a", "  limits: {tokensPerMinute: 2000}\n")],
        &one_tier(&["a"], "round-robin", ""),
    )
    .await;
    let mut body = chat_body("gpt-test", false);
    body["max_tokens"] = json!(u64::MAX);
    let r = env.chat(&body).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    let message = openai_error(&body)["message"].as_str().unwrap().to_owned();
    assert!(message.contains("2000"), "{message}");
    assert_eq!(body["error"]["param"], "max_tokens");
    assert_eq!(env.mock.stats.total(), 0);
    // a request that fits still goes through
    assert_eq!(env.served_by("gpt-test").await, "a");
}

#[tokio::test]
async fn client_strings_are_bounded_in_answers_and_logs() {
    let env = Env::start(&[("a", "a", "")], &one_tier(&["a"], "round-robin", "")).await;
    let model = "m".repeat(5 * 1024 * 1024);
    let r = env.chat(&chat_body(&model, false)).await;
    assert_eq!(r.status(), 404);
    let text = r.text().await.unwrap();
    assert!(text.len() < 2048, "a {} byte error body", text.len());
    let longest = env
        .proxy
        .logs_settled()
        .await
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(0);
    assert!(longest < 4096, "a {longest} byte log line");
}

#[tokio::test]
async fn a_file_caught_half_written_is_never_applied() {
    let env = Env::start(&[("a", "a", "")], &one_tier(&["a"], "round-robin", "")).await;
    // two routes in one file; cut after the first, it still parses, but
    // serves only `other-model`
    let path = env.dir.path().join("route.yaml");
    let full = format!(
        "{}\n---\n{}",
        llmpool_e2e::harness::route(
            "other",
            "  models: [other-model]\n  targets: [{accounts: {names: [a]}}]\n"
        ),
        std::fs::read_to_string(&path).unwrap()
    );
    let half = full[..full.find("---").unwrap()].to_owned();
    env.dir.write("route.yaml", &full).unwrap();
    let mut at_rest = None;
    // A half-written file that stands still for a whole poll interval is,
    // to any watcher, a finished file; the writer measures how long each
    // half stood, and a round in which the machine stalled it that long
    // proves nothing and is run again.
    for round in 1..=3 {
        eventually("both routes served", || async {
            env.ask("gpt-test").await.0 == 200 && env.ask("other-model").await.0 == 200
        })
        .await;
        if at_rest.is_none() {
            at_rest = Some(Baseline::take(&env.http, &env.proxy).await);
        }
        let (failed, sent, longest) = rewrite_under_requests(&env, &path, &half, &full).await;
        assert!(sent > 50, "only {sent} requests");
        if longest >= Duration::from_millis(200) {
            eprintln!("round {round}: a half-written file stood for {longest:?}; running again");
            continue;
        }
        assert_eq!(
            failed, 0,
            "{failed} of {sent} requests failed while the file was rewritten \
             (no half stood longer than {longest:?})"
        );
        // a hundred reloads leave no task, descriptor or memory behind
        at_rest.unwrap().expect_back(&env.http, &env.proxy, 4).await;
        return;
    }
    panic!("the writer was stalled for a whole poll interval in every round");
}

/// Rewrites `path` in place fifty times, pausing between the first half and
/// the rest, while requests keep coming: a 77 ms cycle drifts against the
/// 200 ms polls, so some poll lands in a half-written moment. Returns the
/// failed and sent requests and the longest a half stood on disk.
async fn rewrite_under_requests(
    env: &Env,
    path: &std::path::Path,
    half: &str,
    full: &str,
) -> (usize, usize, Duration) {
    let (path, half, full) = (path.to_owned(), half.to_owned(), full.to_owned());
    let writer = std::thread::spawn(move || {
        let mut longest = Duration::ZERO;
        for _ in 0..50 {
            std::fs::write(&path, &half).unwrap();
            let written = Instant::now();
            std::thread::sleep(Duration::from_millis(30));
            longest = longest.max(written.elapsed());
            std::fs::write(&path, &full).unwrap();
            std::thread::sleep(Duration::from_millis(47));
        }
        longest
    });
    let (mut failed, mut sent) = (0, 0);
    while !writer.is_finished() {
        let (status, body) = env.ask("gpt-test").await;
        sent += 1;
        if status != 200 {
            if failed == 0 {
                eprintln!("first failure: {status} {body}");
            }
            failed += 1;
        }
    }
    (failed, sent, writer.join().unwrap())
}

#[tokio::test]
async fn a_provider_that_quotes_the_api_key_never_gets_it_to_the_client_or_the_logs() {
    // some providers echo the key they were sent in an error message; the
    // gateway relays errors, so it must mask the key on the way out
    let key = "leak?status=404&echo_key=1";
    let env = Env::start(
        &[("leak", key, "")],
        &one_tier(&["leak"], "round-robin", ""),
    )
    .await;
    // the mock does quote it when called directly
    let direct = env
        .http
        .post(format!("{}/chat/completions", env.mock.base_url()))
        .bearer_auth(key)
        .json(&chat_body("gpt-test", false))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(direct.contains(key), "{direct}");
    // same protocol: the error is passed through, minus the key
    let r = env.chat(&chat_body("gpt-test", false)).await;
    assert_eq!(r.status(), 404);
    let text = r.text().await.unwrap();
    assert!(!text.contains(key), "{text}");
    assert!(text.contains("Incorrect API key provided"), "{text}");
    // another protocol: the translated error is clean too
    let r = env
        .http
        .post(env.proxy.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "gpt-test", "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let text = r.text().await.unwrap();
    assert!(!text.contains(key), "{text}");
    assert!(text.contains("\"type\":\"error\""), "{text}");
    let logs = env.proxy.logs_settled().await.join("\n");
    assert!(!logs.contains(key), "the key reached the logs");
}

#[tokio::test]
async fn a_stream_that_goes_silent_ends_with_an_error_event_after_the_idle_limit() {
    let accounts = [
        (
            "stall",
            "stall?fault=stall&after=2&chunks=4",
            "  priority: 0\n",
        ),
        ("slow", "slow?chunk_ms=150&chunks=6", "  priority: 1\n"),
    ];
    let retry = "  retry: {streamIdleTimeout: 400ms}\n";
    let env = Env::start(
        &accounts,
        &one_tier(&["stall", "slow"], "fill-first", retry),
    )
    .await;
    let at_rest = Baseline::take(&env.http, &env.proxy).await;
    let r = env.chat(&chat_body("gpt-test", true)).await;
    assert_eq!(r.status(), 200);
    // without the idle limit this waits out the 10-minute per-try limit
    let (content, payloads) = read_stream_within_30s(r).await;
    assert_eq!(content, "mock reply", "the content sent before the silence");
    let last: Value = serde_json::from_str(payloads.last().unwrap()).unwrap();
    let message = openai_error(&last)["message"].as_str().unwrap().to_owned();
    assert!(message.contains("streamIdleTimeout"), "{message}");
    env.wait_for_metric("llmpool_streams_open 0").await;
    at_rest.expect_back(&env.http, &env.proxy, 4).await;
    // the limit is on silence, not on length: 6 chunks 150 ms apart (900 ms
    // in all) pass a 400 ms limit
    let env = Env::start(&accounts[1..], &one_tier(&["slow"], "fill-first", retry)).await;
    let r = env.chat(&chat_body("gpt-test", true)).await;
    let (content, payloads) = read_stream(r).await;
    assert!(content.len() > "mock reply".len(), "{content}");
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn hanging_accounts_cost_a_request_its_request_timeout_not_one_first_byte_limit_each() {
    // three accounts that never answer, a 60 s first-byte limit, three
    // attempts: 180 s before the client heard anything, without a limit on
    // the request as a whole
    let accounts = [
        ("a", "a?fault=hang", ""),
        ("b", "b?fault=hang", ""),
        ("c", "c?fault=hang", ""),
    ];
    let retry = "  retry: {maxAttempts: 3, firstByteTimeout: 60s, requestTimeout: 1s}\n";
    let env = Env::start(&accounts, &one_tier(&["a", "b", "c"], "round-robin", retry)).await;
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        env.chat(&chat_body("gpt-test", false)),
    )
    .await
    .expect("no answer 30 s after a 1 s request timeout");
    assert_eq!(r.status(), 504);
    let body: Value = r.json().await.unwrap();
    openai_error(&body);
    assert_eq!(
        env.mock.stats.total(),
        1,
        "no attempt starts past the limit"
    );
    // an attempt the request's limit cut short says nothing against its
    // account: six in a row would otherwise open its breaker (after five
    // failures) and the sixth request would never reach it
    let env = Env::start(&accounts[..1], &one_tier(&["a"], "round-robin", retry)).await;
    for _ in 0..6 {
        assert_eq!(env.chat(&chat_body("gpt-test", false)).await.status(), 504);
    }
    assert_eq!(env.count("a"), 6);
}

#[tokio::test]
async fn an_upstream_redirect_is_never_followed() {
    // `moved` answers 307 pointing back at itself: a client that follows
    // redirects would call it again, with the account's key, up to its limit
    let accounts = [
        ("moved", "moved?status=307", "  priority: 0\n"),
        ("ok", "ok", "  priority: 1\n"),
    ];
    let env = Env::start(&accounts, &one_tier(&["moved", "ok"], "fill-first", "")).await;
    assert_eq!(env.served_by("gpt-test").await, "ok");
    assert_eq!(env.count("moved"), 1, "the redirect was followed");
    let metrics = env.metrics().await;
    assert!(
        metrics.contains(
            "llmpool_upstream_attempts_total{account=\"moved\",outcome=\"server_error\",route=\"test\"} 1"
        ),
        "{metrics}"
    );
    // with nowhere else to go, the client gets a 502 saying why, not the 307
    let env = Env::start(&accounts[..1], &one_tier(&["moved"], "fill-first", "")).await;
    let (status, body) = env.ask("gpt-test").await;
    assert_eq!(status, 502, "{body}");
    let message = openai_error(&body)["message"].as_str().unwrap_or_default();
    assert!(message.contains("redirect"), "{message}");
}

#[tokio::test]
async fn an_egress_proxy_that_refuses_or_hangs_fails_the_attempt_and_never_goes_direct() {
    // one proxy address with nothing listening, one that accepts and never answers
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused_port = refused.local_addr().unwrap().port();
    drop(refused);
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hanging_port = hanging.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hanging.accept().await {
            held.push(socket);
        }
    });
    let refusing = format!("  priority: 0\n  egressProxy: http://127.0.0.1:{refused_port}\n");
    let hangs = format!("  priority: 1\n  egressProxy: http://127.0.0.1:{hanging_port}\n");
    let accounts = [
        ("refusing", "refusing", refusing.as_str()),
        ("hangs", "hangs", hangs.as_str()),
        ("ok", "ok", "  priority: 2\n"),
    ];
    let spec = one_tier(
        &["refusing", "hangs", "ok"],
        "fill-first",
        "  retry: {maxAttempts: 3, firstByteTimeout: 1s}\n",
    );
    let env = Env::start(&accounts, &spec).await;
    let started = std::time::Instant::now();
    assert_eq!(env.served_by("gpt-test").await, "ok");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(env.count("refusing"), 0, "went around the refusing proxy");
    assert_eq!(env.count("hangs"), 0, "went around the hanging proxy");
    let metrics = env.metrics().await;
    for line in [
        "llmpool_upstream_attempts_total{account=\"refusing\",outcome=\"connect_error\",route=\"test\"} 1",
        "llmpool_upstream_attempts_total{account=\"hangs\",outcome=\"timeout\",route=\"test\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
}

/// Opens a TCP connection to `addr`.
async fn connect(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(addr).await.unwrap()
}

/// Whether the server closed `conn` (EOF or reset) within `within`.
async fn closed_within(conn: &mut tokio::net::TcpStream, within: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn slow_and_silent_clients_are_cut_off_and_a_full_server_says_503_at_once() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin_addr = admin.local_addr().unwrap();
    drop(admin);
    let admin_arg = admin_addr.to_string();
    let args = [
        "--client-header-timeout",
        "1s",
        "--client-body-timeout",
        "1s",
        "--max-connections",
        "30",
        "--admin-listen",
        &admin_arg,
    ];
    let env = Env::start_with(
        &[("a", "a", "")],
        &one_tier(&["a"], "round-robin", ""),
        &args,
        &[],
    )
    .await;
    let addr = env.proxy.addr;
    assert_eq!(env.served_by("gpt-test").await, "a");
    let fds_before = env.proxy.open_fds();
    let tasks_before = runtime_tasks(&env.http, &env.proxy).await;

    // slowloris: headers one byte every 200 ms are cut off after the header limit
    let mut slow = Vec::new();
    for _ in 0..20 {
        slow.push(connect(addr).await);
    }
    let dribble = async {
        for byte in b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" {
            for c in slow.iter_mut() {
                if c.write_all(&[*byte]).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), dribble).await;
    for c in slow.iter_mut() {
        assert!(
            closed_within(c, Duration::from_millis(1500)).await,
            "a slowloris connection stayed open"
        );
    }

    // silent connections fill the cap: the next one gets a 503 with
    // Retry-After at once, and the separate admin port still answers
    let mut silent = Vec::new();
    for _ in 0..30 {
        silent.push(connect(addr).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut over = connect(addr).await;
    over.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), over.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    let health = reqwest::get(format!("http://{admin_addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(
        health.status(),
        200,
        "probes have their own port and allowance"
    );
    // the silent ones are closed after the header limit; the server is whole again
    for c in silent.iter_mut() {
        assert!(
            closed_within(c, Duration::from_millis(2500)).await,
            "a silent connection stayed open"
        );
    }
    assert_eq!(env.served_by("gpt-test").await, "a");

    // a body that stops halfway gets a 408 in the client's protocol
    let mut partial = connect(addr).await;
    partial
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model\":")
        .await
        .unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), partial.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");

    let metrics = env.metrics().await;
    assert!(
        metrics.contains("llmpool_client_connections_refused_total 1"),
        "{metrics}"
    );
    // nothing of the 52 cut-off connections is left: descriptors and tasks
    // are back to what one served client needed
    drop(partial);
    eventually("descriptors and tasks back to the baseline", || async {
        env.proxy.open_fds() <= fds_before + 1
            && runtime_tasks(&env.http, &env.proxy).await <= tasks_before + 1
    })
    .await;
}

#[tokio::test]
async fn when_the_accounts_are_failing_the_client_is_told_so_not_that_it_is_rate_limited() {
    // an account that times out five times in a row opens its circuit
    let spec = one_tier(
        &["slow"],
        "round-robin",
        "  retry: {maxAttempts: 1, firstByteTimeout: 200ms}\n",
    );
    let env = Env::start(&[("slow", "slow?fault=hang", "")], &spec).await;
    // llmpool_state::BREAKER_FAILURES (the state crate tests against this one)
    const BREAKER_FAILURES: u64 = 5;
    for _ in 0..BREAKER_FAILURES {
        let (status, body) = env.ask("gpt-test").await;
        assert_eq!(status, 504, "{body}");
    }
    let r = env.chat(&chat_body("gpt-test", false)).await;
    assert_eq!(r.status(), 503, "an outage is not a rate limit");
    assert!(retry_after_secs(&r) >= 1);
    let body: Value = r.json().await.unwrap();
    let message = openai_error(&body)["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("1 failing (circuit open"), "{message}");
    assert!(!message.contains("rate limit"), "{message}");
    assert_eq!(env.count("slow"), BREAKER_FAILURES);
}

#[tokio::test]
async fn too_many_messages_or_streams_get_a_clear_refusal_in_the_clients_protocol() {
    let args = ["--max-json-elements", "50", "--max-streams", "2"];
    let accounts = [("slow", "slow?chunk_ms=400&chunks=5", "")];
    let env = Env::start_with(
        &accounts,
        &one_tier(&["slow"], "round-robin", ""),
        &args,
        &[],
    )
    .await;
    let turn = json!({"role": "user", "content": "hi"});
    let many = vec![turn; 51];
    let openai = env
        .chat(&json!({"model": "gpt-test", "messages": many}))
        .await;
    assert_eq!(openai.status(), 400);
    let body: Value = openai.json().await.unwrap();
    let message = openai_error(&body)["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("more than 50 elements"), "{message}");
    let anthropic = env
        .http
        .post(env.proxy.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "gpt-test", "max_tokens": 8, "messages": many}))
        .send()
        .await
        .unwrap();
    assert_eq!(anthropic.status(), 400);
    let body: Value = anthropic.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    let parts: Vec<Value> = (0..51).map(|_| json!({"text": "x"})).collect();
    let gemini = env
        .http
        .post(env.proxy.url("/v1beta/models/gpt-test:generateContent"))
        .json(&json!({"contents": [{"role": "user", "parts": parts}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(gemini.status(), 400);
    let body: Value = gemini.json().await.unwrap();
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT", "{body}");
    assert_eq!(env.mock.stats.total(), 0, "nothing reached the provider");

    // two slow streams are this replica's limit: a third gets a 503 at once
    let streamed = chat_body("gpt-test", true);
    let open: Vec<reqwest::Response> =
        futures_util::future::join_all((0..2).map(|_| env.chat(&streamed))).await;
    assert!(open.iter().all(|r| r.status() == 200));
    let third = env.chat(&chat_body("gpt-test", true)).await;
    assert_eq!(third.status(), 503);
    assert!(retry_after_secs(&third) >= 1);
    // a whole answer is not a stream
    assert_eq!(env.ask("gpt-test").await.0, 200);
    for r in open {
        let (text, _) = read_stream(r).await;
        assert!(text.contains("mock reply"), "{text}");
    }
    assert_eq!(
        env.chat(&chat_body("gpt-test", true)).await.status(),
        200,
        "room again"
    );
}

#[tokio::test]
async fn an_upstream_event_that_never_ends_is_cut_off_at_the_buffer_limit() {
    let accounts = [("endless", "endless?fault=endless&after=1", "")];
    let env = Env::start_with(
        &accounts,
        &one_tier(&["endless"], "fill-first", ""),
        &["--max-stream-event-bytes", "65536"],
        &[],
    )
    .await;
    let rss_before = env.proxy.rss_kib();
    let tasks_before = runtime_tasks(&env.http, &env.proxy).await;
    let r = env.chat(&chat_body("gpt-test", true)).await;
    assert_eq!(r.status(), 200);
    // without the bound the gateway keeps reading the one event forever
    let (content, payloads) = read_stream_within_30s(r).await;
    assert!(
        content.starts_with("mock"),
        "content before the event: {content}"
    );
    let last: Value = serde_json::from_str(payloads.last().unwrap()).unwrap();
    let message = openai_error(&last)["message"].as_str().unwrap().to_owned();
    assert!(message.contains("over-long"), "{message}");
    env.wait_for_metric("llmpool_streams_open 0").await;
    // and the upstream request was given up, not left streaming
    let mut waited = 0;
    while env.mock.stats.get("endless").in_flight > 0 && waited < 50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(
        env.mock.stats.get("endless").in_flight,
        0,
        "upstream left open"
    );
    // the pooled upstream connection is not reused (the answer never
    // ended): its task is gone with it
    eventually("tasks back to the baseline", || async {
        runtime_tasks(&env.http, &env.proxy).await <= tasks_before
    })
    .await;
    let grown = env.proxy.rss_kib().saturating_sub(rss_before);
    assert!(
        grown < 32 * 1024,
        "the proxy grew by {grown} KiB for one stream"
    );
}
