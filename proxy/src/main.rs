use std::process::ExitCode;

use llmpool_proxy::cli::Args;
use tracing_subscriber::EnvFilter;

// JSON translation allocates many small objects; mimalloc's per-thread
// heaps keep that cheap on a multi-threaded runtime (see README: Performance)
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::from_env();
    let runtime = match args.worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n.max(1))
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    match runtime {
        Ok(runtime) => runtime.block_on(serve(args)),
        Err(e) => {
            eprintln!("llmpool-proxy: cannot start the runtime: {e}");
            ExitCode::from(2)
        }
    }
}

async fn serve(args: Args) -> ExitCode {
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
