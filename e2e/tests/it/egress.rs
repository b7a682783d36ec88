//! Accounts behind an egress proxy: plain `http://` accounts are reached by
//! forwarding through the proxy, `https://` ones through a CONNECT tunnel
//! with TLS inside it. (A proxy that refuses or hangs: hardening.rs.)

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use llmpool_e2e::harness::{self, ConfigDir, Process};
use llmpool_e2e::mock::MockProvider;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{chat_body, metrics_of, one_tier, read_stream, reply_label};

/// A minimal HTTP proxy that records the first request line of each
/// connection, then splices it to where that line points.
struct EgressProxy {
    addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
}

impl EgressProxy {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(relay(socket, seen.clone()));
            }
        });
        Self { addr, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

async fn relay(mut client: TcpStream, seen: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let line = text.lines().next().unwrap_or_default().to_owned();
    seen.lock().unwrap().push(line.clone());
    let mut words = line.split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let host = if method == "CONNECT" {
        target.to_owned()
    } else {
        let rest = target.strip_prefix("http://").unwrap_or(target);
        rest.split('/').next().unwrap_or_default().to_owned()
    };
    let Ok(mut upstream) = TcpStream::connect(&host).await else {
        return;
    };
    if method == "CONNECT" {
        let _ = client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await;
    } else if upstream.write_all(&head).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// Accepts connections and records each one's first byte (0x16 opens a TLS
/// handshake), then closes it.
async fn first_bytes() -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut byte = [0u8; 1];
            if socket.read_exact(&mut byte).await.is_ok() {
                record.lock().unwrap().push(byte[0]);
            }
        }
    });
    (addr, seen)
}

/// Starts a proxy over `accounts` (name, base URL, extra lines) and one
/// fill-first route over them. Names are short: each is also the account's
/// key, which the gateway redacts from what it relays.
fn start(accounts: &[(&str, String, String)]) -> (ConfigDir, Process) {
    let names: Vec<&str> = accounts.iter().map(|(n, _, _)| *n).collect();
    let keys: Vec<(&str, &str)> = names.iter().map(|n| (*n, *n)).collect();
    let mut parts = vec![harness::secret("keys", &keys)];
    for (name, base_url, extra) in accounts {
        parts.push(harness::account(name, base_url, name, extra));
    }
    let dir = ConfigDir::new().unwrap();
    dir.write("accounts.yaml", &harness::docs(&parts)).unwrap();
    let spec = one_tier(&names, "fill-first", "  retry: {maxAttempts: 2}\n");
    dir.write("route.yaml", &harness::route("test", &spec))
        .unwrap();
    let proxy = Process::start(dir.path(), &[], &[])
        .unwrap_or_else(|f| panic!("proxy did not start: {f:?}"));
    (dir, proxy)
}

#[tokio::test]
async fn a_plain_http_account_is_reached_through_its_egress_proxy() {
    let mock = MockProvider::start().await.unwrap();
    let egress = EgressProxy::start().await;
    let via = format!("  egressProxy: http://{}\n", egress.addr);
    let (_dir, proxy) = start(&[("px", mock.base_url(), via)]);
    let http = reqwest::Client::new();
    let url = proxy.url("/v1/chat/completions");
    for stream in [false, true, false] {
        let r = http
            .post(&url)
            .json(&chat_body("gpt-test", stream))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        if stream {
            let (text, _) = read_stream(r).await;
            assert!(text.contains("px"), "{text}");
        } else {
            assert_eq!(reply_label(&r.json().await.unwrap()), "px");
        }
    }
    assert_eq!(mock.stats.get("px").requests, 3);
    // every connection went to the proxy, asking in absolute form for the
    // account's own URL (keep-alive may carry several requests on one)
    let lines = egress.lines();
    let expected = format!("POST {}/chat/completions HTTP/1.1", mock.base_url());
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|l| *l == expected), "{lines:?}");
}

#[tokio::test]
async fn an_https_account_is_reached_through_a_connect_tunnel_with_tls_inside() {
    let mock = MockProvider::start().await.unwrap();
    let egress = EgressProxy::start().await;
    // the "https" account is a listener that records the first byte it gets
    // and hangs up: the TLS handshake fails, so the request moves on
    let (tls_addr, first) = first_bytes().await;
    let via = format!("  priority: 0\n  egressProxy: http://{}\n", egress.addr);
    let (_dir, proxy) = start(&[
        ("tl", format!("https://{tls_addr}/v1"), via),
        ("ok", mock.base_url(), "  priority: 1\n".to_owned()),
    ]);
    let http = reqwest::Client::new();
    let r = http
        .post(proxy.url("/v1/chat/completions"))
        .json(&chat_body("gpt-test", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(reply_label(&r.json().await.unwrap()), "ok");
    assert_eq!(egress.lines(), [format!("CONNECT {tls_addr} HTTP/1.1")]);
    assert_eq!(
        *first.lock().unwrap(),
        [0x16],
        "no TLS handshake in the tunnel"
    );
    let metrics = metrics_of(&http, &proxy).await;
    let line = "llmpool_upstream_attempts_total{account=\"tl\",outcome=\"connect_error\",route=\"test\"} 1";
    assert!(metrics.contains(line), "{metrics}");
}
