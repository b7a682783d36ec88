//! How the upstream client reaches an account: straight to its host, or
//! through the account's egress proxy (a CONNECT tunnel for `https://`
//! accounts, a forwarded absolute-form request for plain `http://` ones).
//! There is no path from a proxied account to a direct connection.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

/// A connection error from any leg (TCP, TLS, the proxy's CONNECT answer).
pub type BoxError = Box<dyn StdError + Send + Sync>;

type Tcp = TokioIo<TcpStream>;
type Direct = HttpsConnector<HttpConnector>;
type Tunneled = HttpsConnector<Tunnel<Direct>>;

/// TLS settings shared by every client: the webpki roots, ring, TLS 1.2+.
/// Built once: a root store per account would cost memory for nothing.
static TLS: LazyLock<Result<rustls::ClientConfig, String>> = LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| format!("TLS could not be set up: {e}"))
});

/// TCP to one host; `connect_timeout` is the limit per address.
fn tcp(connect_timeout: Duration) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(30)));
    http.set_connect_timeout(Some(connect_timeout));
    http
}

/// TLS (when the URI says https) over `inner`; `h2` offers HTTP/2 by ALPN.
fn tls<C>(config: &rustls::ClientConfig, inner: C, h2: bool) -> HttpsConnector<C> {
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config.clone())
        .https_or_http()
        .enable_http1();
    if h2 {
        builder.enable_http2().wrap_connector(inner)
    } else {
        builder.wrap_connector(inner)
    }
}

/// Connects to accounts, directly or through one egress proxy.
#[derive(Clone)]
pub struct Connector {
    direct: Direct,
    egress: Option<Egress>,
}

#[derive(Clone)]
struct Egress {
    proxy: Uri,
    /// To the proxy itself (TLS when the proxy's URL is https), HTTP/1 only.
    to_proxy: Direct,
    /// TLS to the account inside a CONNECT tunnel through the proxy.
    tunnel: Tunneled,
}

impl Connector {
    /// A connector; `egress_proxy` is an `http://` or `https://` URL.
    pub fn new(connect_timeout: Duration, egress_proxy: Option<&str>) -> Result<Self, String> {
        let config = TLS.as_ref().map_err(Clone::clone)?;
        let egress = match egress_proxy {
            None => None,
            Some(text) => {
                let proxy = Uri::try_from(text)
                    .ok()
                    .filter(|u| matches!(u.scheme_str(), Some("http" | "https")))
                    .filter(|u| u.host().is_some_and(|h| !h.is_empty()))
                    .ok_or_else(|| {
                        "egress proxy is unusable: not an http:// or https:// URL with a host"
                            .to_owned()
                    })?;
                let to_proxy = tls(config, tcp(connect_timeout), false);
                let tunnel = tls(config, Tunnel::new(proxy.clone(), to_proxy.clone()), true);
                Some(Egress {
                    proxy,
                    to_proxy,
                    tunnel,
                })
            }
        };
        Ok(Self {
            direct: tls(config, tcp(connect_timeout), true),
            egress,
        })
    }
}

impl Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // every leg is always ready: HttpConnector, Tunnel and the TLS
        // wrapper hold no capacity of their own
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        match &mut self.egress {
            None => {
                let connecting = self.direct.call(dst);
                Box::pin(async move { Ok(Conn::Plain(connecting.await?, false)) })
            }
            Some(egress) if dst.scheme_str() == Some("https") => {
                let connecting = egress.tunnel.call(dst);
                Box::pin(async move { Ok(Conn::Tunneled(Box::new(connecting.await?))) })
            }
            Some(egress) => {
                // plain http through a proxy: the request goes to the proxy
                // in absolute form, as HTTP proxies expect
                let connecting = egress.to_proxy.call(egress.proxy.clone());
                Box::pin(async move { Ok(Conn::Plain(connecting.await?, true)) })
            }
        }
    }
}

/// One connection to an account, whichever way it was made.
// the plain variant is the one nearly every connection is; it stays inline
// (no pointer hop per read), the rare tunnel is boxed
#[allow(clippy::large_enum_variant)]
pub enum Conn {
    /// Straight to the account, or to the proxy for forwarding (`true`).
    Plain(MaybeHttpsStream<Tcp>, bool),
    /// Through a CONNECT tunnel (boxed: TLS inside TLS is large, and rare).
    Tunneled(Box<MaybeHttpsStream<MaybeHttpsStream<Tcp>>>),
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        match self {
            Conn::Plain(s, forwarded) => s.connected().proxy(*forwarded),
            Conn::Tunneled(s) => s.connected(),
        }
    }
}

impl Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_read(cx, buf),
            Conn::Tunneled(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_write(cx, buf),
            Conn::Tunneled(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tunneled(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s, _) => s.is_write_vectored(),
            Conn::Tunneled(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_flush(cx),
            Conn::Tunneled(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_shutdown(cx),
            Conn::Tunneled(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
