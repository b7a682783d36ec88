//! The ceiling the load bench measures llmpool against: a forwarder with no
//! logic at all. One thread, hyper's HTTP/1 server and hyper-util's pooled
//! keep-alive client; each request goes to the upstream with its method,
//! path, headers and body as they are, and the answer streams back as it
//! arrives. Any proxy on the same core does at least this much work.
//!
//!     bare-forwarder <listen address> <upstream http://host:port>

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Upstream = Client<HttpConnector, Incoming>;
type Answer = Response<Either<Incoming, Empty<Bytes>>>;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bare-forwarder <listen address> <upstream http://host:port>";
    let listen: SocketAddr = args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let upstream: Uri = args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(listen, upstream))
}

async fn serve(listen: SocketAddr, upstream: Uri) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let client: Upstream = Client::builder(TokioExecutor::new()).build_http();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (client, upstream) = (client.clone(), upstream.clone());
        tokio::spawn(async move {
            let service =
                service_fn(move |request| forward(client.clone(), upstream.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn forward(
    client: Upstream,
    upstream: Uri,
    request: Request<Incoming>,
) -> Result<Answer, Infallible> {
    let (mut parts, body) = request.into_parts();
    let mut uri = upstream.into_parts();
    uri.path_and_query = parts.uri.path_and_query().cloned();
    parts.uri = Uri::from_parts(uri).unwrap_or_default();
    parts.headers.remove(http::header::HOST);
    Ok(
        match client.request(Request::from_parts(parts, body)).await {
            Ok(response) => response.map(Either::Left),
            Err(_) => {
                let mut answer = Response::new(Either::Right(Empty::new()));
                *answer.status_mut() = StatusCode::BAD_GATEWAY;
                answer
            }
        },
    )
}
