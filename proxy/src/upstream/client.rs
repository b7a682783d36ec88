//! The HTTP client that calls accounts: hyper-util's pooled client over
//! [`Connector`], with keep-alive, HTTP/2 by ALPN, no redirects followed,
//! no proxy from the environment and no decompression. Bodies go out as
//! one buffer and come back as hyper's stream of frames.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::Target;
use super::connect::Connector;

/// Idle keep-alive connections are closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(90);
/// Idle keep-alive connections kept per host.
const POOL_MAX_IDLE: usize = 256;

/// A pooled client for one account (cheap to clone: clones share the pool).
#[derive(Clone)]
pub struct Client {
    inner: legacy::Client<Connector, Full<Bytes>>,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The upstream URL is not a valid absolute URI.
    #[error("the upstream URL is not valid: {0}")]
    Url(#[source] http::Error),
    /// Connecting, the TLS handshake, the proxy, or the exchange failed.
    #[error("{}", chain(.0))]
    Request(#[source] legacy::Error),
}

impl SendError {
    /// The failure was a connect time limit running out.
    pub fn is_timeout(&self) -> bool {
        let mut source: Option<&(dyn StdError + 'static)> = Some(self);
        while let Some(e) = source {
            if e.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::TimedOut)
            {
                return true;
            }
            source = e.source();
        }
        false
    }
}

/// An error and its causes on one line: hyper's own errors say little
/// ("client error (Connect)") without the reason underneath.
fn chain(e: &legacy::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Client {
    /// A client whose connections are made by `connector`.
    pub fn new(connect_timeout: Duration, egress_proxy: Option<&str>) -> Result<Self, String> {
        let connector = Connector::new(connect_timeout, egress_proxy)?;
        let inner = legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_MAX_IDLE)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Self { inner })
    }

    /// POSTs `body` with `headers` to `target` and waits for the response head.
    pub async fn post<'h>(
        &self,
        target: &Target,
        headers: impl Iterator<Item = (&'h HeaderName, &'h HeaderValue)>,
        body: Bytes,
    ) -> Result<Response<Incoming>, SendError> {
        let uri = target.uri().map_err(SendError::Url)?;
        let mut request = Request::post(uri)
            .body(Full::new(body))
            .map_err(SendError::Url)?;
        let map = request.headers_mut();
        for (name, value) in headers {
            map.append(name.clone(), value.clone());
        }
        self.inner
            .request(request)
            .await
            .map_err(SendError::Request)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_says_why_on_one_line() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let client = Client::new(Duration::from_secs(1), None).unwrap();
        let target = Target::parsed(format!("http://127.0.0.1:{port}/v1/chat/completions"));
        let err = client
            .post(&target, std::iter::empty(), Bytes::new())
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("refused"), "{text}");
        assert!(!err.is_timeout());
    }

    #[tokio::test]
    async fn a_connect_that_outlasts_its_limit_is_a_timeout() {
        // a listener that never accepts, its queue filled: the next SYN is
        // dropped, so connecting hangs until the connect limit
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut held = Vec::new();
        for _ in 0..8 {
            let connecting = tokio::net::TcpStream::connect(addr);
            match tokio::time::timeout(Duration::from_secs(1), connecting).await {
                Ok(Ok(stream)) => held.push(stream),
                _ => break,
            }
        }
        let client = Client::new(Duration::from_millis(200), None).unwrap();
        let target = Target::parsed(format!("http://{addr}/v1/chat/completions"));
        let started = std::time::Instant::now();
        let sending = client.post(&target, std::iter::empty(), Bytes::new());
        let err = tokio::time::timeout(Duration::from_secs(5), sending)
            .await
            .expect("the connect limit did not end the attempt")
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        drop((listener, held));
    }

    #[tokio::test]
    async fn a_url_that_does_not_parse_fails_the_send() {
        let client = Client::new(Duration::from_secs(1), None).unwrap();
        let target = Target::parsed("http://exa mple/".to_owned());
        let err = client
            .post(&target, std::iter::empty(), Bytes::new())
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Url(_)), "{err}");
    }

    #[test]
    fn an_egress_proxy_that_is_not_http_is_refused() {
        for bad in ["socks5://127.0.0.1:1080", "127.0.0.1:3128", "http://"] {
            let err = Client::new(Duration::from_secs(1), Some(bad)).err();
            assert!(err.is_some_and(|e| e.contains("unusable")), "{bad}");
        }
        assert!(Client::new(Duration::from_secs(1), Some("https://proxy.internal:3129")).is_ok());
    }
}
