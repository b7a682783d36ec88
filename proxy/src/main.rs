use std::process::ExitCode;

use llmpool_proxy::cli::Args;
use tracing_subscriber::EnvFilter;

// JSON translation allocates many small objects; mimalloc's per-thread
// heaps keep that cheap on a multi-threaded runtime (see README: Performance)
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::from_env();
    // log lines are batched in memory and written by a thread of their own
    // at most every 20 ms, so a request never waits on a write to stdout
    // and never wakes another thread; nothing is dropped, and the guard
    // writes what is left at exit
    let (writer, _flush_at_exit) = llmpool_proxy::logwriter::batched(std::io::stdout());
    tracing_subscriber::fmt()
        .json()
        .event_format(llmpool_proxy::logline::JsonLines)
        .with_writer(writer)
        .with_env_filter(EnvFilter::try_new(&args.log).unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
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
    match llmpool_proxy::server::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "llmpool-proxy stopped");
            eprintln!("llmpool-proxy: {e}");
            ExitCode::from(2)
        }
    }
}
