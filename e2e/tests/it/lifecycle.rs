//! Graceful shutdown: SIGTERM stops new work but lets open streams finish.

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
