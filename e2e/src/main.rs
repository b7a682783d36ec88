//! `mock-provider`: a scriptable OpenAI-format provider for local runs and
//! load benches. Each API key scripts its own behaviour (see the library's
//! `mock::behaviour` docs): `acct-a` answers normally, `acct-b?status=429&
//! retry_after=5` is rate limited, and so on.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "mock-provider",
    about = "A scriptable mock LLM provider (OpenAI wire format)"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "MOCK_PROVIDER_LISTEN", default_value = "127.0.0.1:9901")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt().json().init();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "mock provider listening");
    llmpool_e2e::mock::serve(listener, Arc::new(llmpool_e2e::mock::Stats::default())).await;
    Ok(())
}
