//! llmpool-operator: a thin entry point; the work is in the library.

use anyhow::Context;
use clap::Parser;
use llmpool_operator::cli::{Cli, Command, Run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Crd { write: None }) => {
            let yaml = llmpool_crds::crd::crds_yaml()?;
            #[allow(clippy::print_stdout)]
            {
                print!("{yaml}");
            }
            Ok(())
        }
        Some(Command::Crd { write: Some(dir) }) => {
            for (file, yaml) in llmpool_crds::crd::crd_files()? {
                let path = dir.join(file);
                std::fs::write(&path, yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }
        None => run(cli.run).await,
    }
}

async fn run(run: Run) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(tracing_subscriber::EnvFilter::new(&run.log))
        .init();
    Ok(llmpool_operator::serve::run(run).await?)
}
