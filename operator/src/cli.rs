//! Command line; every flag also reads an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// llmpool-operator: compiles LlmAccounts and ModelRoutes into the objects
/// the proxies watch.
#[derive(Debug, Parser)]
#[command(name = "llmpool-operator", version, about)]
pub struct Cli {
    /// Print the CRDs instead of running.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings of the controller.
    #[command(flatten)]
    pub run: Run,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions (or write one file per CRD).
    Crd {
        /// Write `<plural>.llmpool.dev.yaml` files into this directory.
        #[arg(long)]
        write: Option<PathBuf>,
    },
}

/// How the controller runs.
#[derive(Clone, Debug, Args)]
pub struct Run {
    /// Release name: writes `<name>-credentials` and `<name>-routes`.
    #[arg(long, env = "LLMPOOL_NAME", default_value = "llmpool")]
    pub name: String,
    /// Namespaces to watch, comma separated (default: the operator's own).
    #[arg(
        long,
        env = "LLMPOOL_NAMESPACES",
        value_delimiter = ',',
        conflicts_with = "all_namespaces"
    )]
    pub namespaces: Vec<String>,
    /// Watch every namespace.
    #[arg(long, env = "LLMPOOL_ALL_NAMESPACES")]
    pub all_namespaces: bool,
    /// The operator's own namespace (Lease, default watch scope); default:
    /// the in-cluster namespace or the kubeconfig context's.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// Shared Redis for health summaries and cooldown resets.
    #[arg(long, env = "LLMPOOL_REDIS_URL")]
    pub redis: Option<String>,
    /// Treat --redis as comma-separated Redis Cluster seed nodes.
    #[arg(long, env = "LLMPOOL_REDIS_CLUSTER")]
    pub redis_cluster: bool,
    /// CA certificate (PEM) for rediss:// with a private CA.
    #[arg(long, env = "LLMPOOL_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,
    /// Serve /metrics and /healthz here.
    #[arg(long, env = "LLMPOOL_METRICS", default_value = "0.0.0.0:8081")]
    pub metrics: SocketAddr,
    /// Reconcile every namespace at least this often.
    #[arg(long, env = "LLMPOOL_RESYNC", value_parser = humantime, default_value = "5m")]
    pub resync: Duration,
    /// How often account health is read from Redis into status.
    #[arg(long, env = "LLMPOOL_HEALTH_INTERVAL", value_parser = humantime, default_value = "30s")]
    pub health_interval: Duration,
    /// Refresh OAuth access tokens this long before they expire.
    #[arg(long, env = "LLMPOOL_OAUTH_SKEW", value_parser = humantime, default_value = "5m")]
    pub oauth_skew: Duration,
    /// Run without leader election (one replica only).
    #[arg(long, env = "LLMPOOL_NO_LEADER_ELECTION")]
    pub no_leader_election: bool,
    /// Lease duration for leader election.
    #[arg(long, env = "LLMPOOL_LEASE_DURATION", value_parser = humantime, default_value = "15s")]
    pub lease_duration: Duration,
    /// This replica's identity in the Lease and Events (default: POD_NAME or
    /// the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "LLMPOOL_LOG", default_value = "info")]
    pub log: String,
}

/// Parses `300ms`, `30s`, `5m`, `1h`.
fn humantime(text: &str) -> Result<Duration, String> {
    llmpool_crds::duration::parse_duration(text).map_err(|e| e.to_string())
}
