//! Process lifecycle: SIGTERM stops new work but lets open streams finish;
//! the runtime runs on one worker thread when told to.

use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_running_stream_finish_then_exits_cleanly() {
    let accounts = [("a", "a?chunks=6&chunk_ms=200", "")];
    let mut env = Env::start(&accounts, &one_tier(&["a"], "round-robin", "")).await;
    let stream = env.chat(&chat_body("gpt-test", true)).await;
    assert_eq!(stream.status(), 200);
    let reader = tokio::spawn(read_stream(stream));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let proxy = &mut env.proxy;
    let status = tokio::task::block_in_place(|| proxy.terminate(Duration::from_secs(10)));
    let (content, payloads) = reader.await.unwrap();
    assert_eq!(
        content, "mock reply from a . .",
        "the stream ran to its end"
    );
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "clean exit after the stream"
    );
    assert!(env.proxy.logs().iter().any(|l| l.contains("shutting down")));
}

#[tokio::test]
async fn one_worker_thread_serves_whole_answers_and_streams() {
    let accounts = [("a", "a", ""), ("b", "b", "")];
    let env = Env::start_with(
        &accounts,
        &one_tier(&["a", "b"], "round-robin", ""),
        &["--worker-threads", "1"],
        &[],
    )
    .await;
    let answers = futures_util::future::join_all((0..20).map(|_| env.ask("gpt-test"))).await;
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    let r = env.chat(&chat_body("gpt-test", true)).await;
    let (content, payloads) = read_stream(r).await;
    assert!(content.starts_with("mock reply"), "{content}");
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    // the runtime is the main thread: what else runs is the blocking pool
    // (file reads, name lookups), not one worker per CPU
    let default = Env::start(&accounts, &one_tier(&["a", "b"], "round-robin", "")).await;
    let _ = default.ask("gpt-test").await;
    eprintln!(
        "threads: {} with one worker, {} by default",
        env.proxy.threads(),
        default.proxy.threads()
    );
    assert!(env.proxy.threads() < default.proxy.threads() || num_cpus() == 1);
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
