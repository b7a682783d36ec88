//! Accepting client connections, with the limits a public-facing server
//! needs: request headers must arrive within a time limit (which is also
//! how long an idle keep-alive connection is kept), headers have a size
//! limit, and above a connection cap a new connection gets an immediate 503
//! with `Retry-After` instead of waiting in an unbounded queue. Slow or
//! silent clients therefore cost a bounded number of file descriptors for a
//! bounded time, and health checks keep working.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use prometheus::{IntCounter, IntGauge};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Client connection limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Time for a request's headers to arrive, counted from when the
    /// connection starts waiting for them (so also the keep-alive idle time).
    pub header_timeout: Duration,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Open connections above which new ones are refused with a 503.
    pub max_connections: usize,
}

/// What the listener counts.
#[derive(Clone)]
pub struct Counters {
    /// Connections open now.
    pub open: IntGauge,
    /// Connections refused because the cap was reached.
    pub refused: IntCounter,
}

/// A default connection cap: three quarters of the process's file
/// descriptor limit (the rest is left for upstream connections and files),
/// at most 16,384.
pub fn default_max_connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<usize>().ok())
        })
        .unwrap_or(4096);
    (soft / 4 * 3).clamp(64, 16_384)
}

/// The answer to a connection over the cap: a 503 in the OpenAI error
/// shape (the protocol is not known before the request is read).
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 121\r\n\r\n\
{\"error\":{\"message\":\"too many open connections; retry after 1 s\",\"type\":\"server_error\",\"param\":null,\"code\":\"overloaded\"}}";

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting and asks every connection to finish its current request;
/// returns when all have closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    counters: Counters,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // out of file descriptors, say: wait a moment, keep serving
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // SSE events are small writes: without TCP_NODELAY each one can
        // wait for the client's delayed ACK (~40 ms on Linux)
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        if open.load(Ordering::Relaxed) >= limits.max_connections {
            counters.refused.inc();
            tokio::spawn(refuse(stream));
            continue;
        }
        let guard = OpenGuard::new(open.clone(), counters.open.clone());
        let (watcher, router, limits) = (graceful.watcher(), router.clone(), limits.clone());
        tokio::spawn(async move {
            let _guard = guard;
            connection(stream, router, &limits, watcher).await;
        });
    }
    graceful.shutdown().await;
}

/// Which protocol a client speaks, from its first bytes.
#[derive(Debug, PartialEq, Eq)]
enum Speaks {
    Http1,
    Http2,
}

/// The HTTP/2 connection preface (prior knowledge, cleartext).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits for the client's first bytes, within the header limit: a client
/// that sends nothing, or dribbles an HTTP/2 preface, is dropped like one
/// that dribbles its headers.
async fn sniff(stream: &TcpStream, within: Duration) -> Option<Speaks> {
    let mut buf = [0u8; PREFACE.len()];
    tokio::time::timeout(within, async {
        loop {
            let n = stream.peek(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            if !PREFACE.starts_with(&buf[..n]) {
                return Some(Speaks::Http1);
            }
            if n == PREFACE.len() {
                return Some(Speaks::Http2);
            }
            // a partial preface: more is on its way (peek does not wait)
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .ok()
    .flatten()
}

/// Serves one connection in the protocol it speaks.
async fn connection(stream: TcpStream, router: Router, limits: &Limits, watcher: Watcher) {
    let Some(speaks) = sniff(&stream, limits.header_timeout).await else {
        return;
    };
    let io = TokioIo::new(stream);
    let service = TowerToHyperService::new(router);
    let _ = match speaks {
        Speaks::Http1 => {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(limits.max_header_bytes.max(8192))
                .serve_connection(io, service);
            watcher.watch(conn).await
        }
        Speaks::Http2 => {
            let conn = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
                .serve_connection(io, service);
            watcher.watch(conn).await
        }
    };
}

/// Answers a connection over the cap and closes it, reading what the
/// client sent first so the close does not turn into a reset that hides
/// the answer.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut buf = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await;
        stream.write_all(REFUSAL).await?;
        stream.shutdown().await?;
        let mut drained = 0;
        while drained < 64 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// Counts one open connection for as long as it lives.
struct OpenGuard {
    open: Arc<AtomicUsize>,
    gauge: IntGauge,
}

impl OpenGuard {
    fn new(open: Arc<AtomicUsize>, gauge: IntGauge) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        gauge.inc();
        Self { open, gauge }
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_bytes_say_the_protocol_and_silence_says_nothing() {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        for (sent, wanted) in [
            (&b"GET / HTTP/1.1\r\n"[..], Some(Speaks::Http1)),
            (PREFACE, Some(Speaks::Http2)),
            (&b"PRI * HT"[..], None),
            (&b""[..], None),
        ] {
            let mut client = TcpStream::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            client
                .write_all(sent)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let (server, _) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                sniff(&server, Duration::from_millis(200)).await,
                wanted,
                "{sent:?}"
            );
        }
    }

    #[test]
    fn the_refusal_is_a_complete_http_answer() {
        let text = std::str::from_utf8(REFUSAL).unwrap_or_default();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert_eq!(body.len(), length);
        assert!(serde_json::from_str::<serde_json::Value>(body.trim_end()).is_ok());
    }
}
