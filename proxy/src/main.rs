use std::process::ExitCode;

use llmpool_proxy::cli::Args;
use tracing_subscriber::EnvFilter;

// JSON translation allocates many small objects; mimalloc's per-thread
// heaps keep that cheap on a multi-threaded runtime (see README: Performance)
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::from_env();
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(EnvFilter::try_new(&args.log).unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    match llmpool_proxy::server::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "llmpool-proxy stopped");
            eprintln!("llmpool-proxy: {e}");
            ExitCode::from(2)
        }
    }
}
