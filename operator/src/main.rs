//! llmpool-operator. This build only prints or writes the CRDs; the
//! reconciler that compiles LlmAccounts and ModelRoutes into the proxies'
//! Secret and ConfigMap comes with the operator work.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "llmpool-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions (or write one file per CRD).
    Crd {
        /// Write `<plural>.llmpool.dev.yaml` files into this directory.
        #[arg(long)]
        write: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
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
        None => anyhow::bail!(
            "the reconciler is not part of this build yet; `llmpool-operator crd` prints the CRDs"
        ),
    }
}
