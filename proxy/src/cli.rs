//! Command-line flags; every flag also reads an LLMPOOL_* environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// llmpool-proxy: one endpoint for many LLM provider accounts.
#[derive(Parser, Debug, Clone)]
#[command(name = "llmpool-proxy", version, about)]
pub struct Args {
    /// Local mode: a directory of LlmAccount, ModelRoute and Secret YAML,
    /// watched for changes.
    #[arg(long, env = "LLMPOOL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Cluster mode: watch the operator's Secret and ConfigMap.
    #[arg(long, env = "LLMPOOL_KUBE", conflicts_with = "config")]
    pub kube: bool,
    /// Address to serve on (port 0 picks a free port; the log says which).
    #[arg(long, env = "LLMPOOL_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Separate address for /healthz, /readyz and /metrics (they are also
    /// served on --listen).
    #[arg(long, env = "LLMPOOL_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Shared state in Redis (`redis://[user:pass@]host:port`, `rediss://`
    /// for TLS); without it state is in memory, for one replica.
    #[arg(long, env = "LLMPOOL_REDIS_URL", hide_env_values = true)]
    pub redis: Option<String>,
    /// PEM file of the CA that signed Redis's certificate (for `rediss://`
    /// with a private CA).
    #[arg(long, env = "LLMPOOL_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,
    /// Treat --redis as comma-separated Redis Cluster seed nodes.
    #[arg(long, env = "LLMPOOL_REDIS_CLUSTER")]
    pub redis_cluster: bool,
    /// Limit for one Redis call; past it the replica serves on its local view.
    #[arg(long, env = "LLMPOOL_REDIS_TIMEOUT", default_value = "50ms", value_parser = parse_duration)]
    pub redis_timeout: Duration,
    /// How long a finished request's outcome waits for one of this
    /// replica's admissions to carry it to Redis before it is sent in a call
    /// of its own. Longer: fewer Redis calls at a low rate; other replicas
    /// see a released lease that much later.
    #[arg(long, env = "LLMPOOL_REDIS_OUTCOME_LINGER", default_value = "10ms", value_parser = parse_duration)]
    pub redis_outcome_linger: Duration,
    /// Replicas sharing each limit while Redis is unreachable (default: the
    /// live replicas last seen through Redis).
    #[arg(long, env = "LLMPOOL_REDIS_FALLBACK_REPLICAS")]
    pub redis_fallback_replicas: Option<u64>,
    /// Namespace of the configuration (the key prefix of shared state).
    /// Default: "default" in local mode, the pod's (or kubeconfig
    /// context's) namespace in cluster mode.
    #[arg(long, env = "LLMPOOL_NAMESPACE")]
    pub namespace: Option<String>,
    /// Cluster mode: the operator's objects are `<name>-routes` and
    /// `<name>-credentials` (the Helm release name).
    #[arg(long, env = "LLMPOOL_NAME", default_value = "llmpool")]
    pub name: String,
    /// File with one client API key per line; when set (or LLMPOOL_API_KEYS
    /// is), clients must send one of them.
    #[arg(long, env = "LLMPOOL_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// Comma-separated client API keys (environment only, so keys stay out
    /// of process listings).
    #[arg(skip)]
    pub api_keys: Vec<String>,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "LLMPOOL_MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted in a request body.
    #[arg(long, env = "LLMPOOL_MAX_JSON_DEPTH", default_value_t = 64)]
    pub max_json_depth: usize,
    /// Most elements in any JSON array of a request (messages, tools,
    /// content parts, embedding inputs).
    #[arg(long, env = "LLMPOOL_MAX_JSON_ELEMENTS", default_value_t = 10_000)]
    pub max_json_elements: usize,
    /// Streams relayed at once by this replica; above it a new streaming
    /// request gets a 503 with Retry-After.
    #[arg(long, env = "LLMPOOL_MAX_STREAMS", default_value_t = 10_000)]
    pub max_streams: usize,
    /// Largest non-streaming upstream response buffered, in bytes.
    #[arg(long, env = "LLMPOOL_MAX_RESPONSE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_response_bytes: usize,
    /// Longest line or event of an upstream stream buffered, in bytes; a
    /// stream that sends a longer one ends with the protocol's error event.
    #[arg(long, env = "LLMPOOL_MAX_STREAM_EVENT_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_stream_event_bytes: usize,
    /// Most session bindings kept in memory.
    #[arg(long, env = "LLMPOOL_MAX_SESSIONS", default_value_t = 100_000)]
    pub max_sessions: usize,
    /// How long the gateway remembers which account stored a response
    /// (Responses API `previous_response_id` goes back to that account).
    #[arg(long, env = "LLMPOOL_RESPONSE_TTL", default_value = "720h", value_parser = parse_duration)]
    pub response_ttl: Duration,
    /// Time for a client's request headers to arrive; also how long an idle
    /// keep-alive connection is kept.
    #[arg(long, env = "LLMPOOL_CLIENT_HEADER_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub client_header_timeout: Duration,
    /// Time for a client's whole request body to arrive once its handler
    /// starts reading it.
    #[arg(long, env = "LLMPOOL_CLIENT_BODY_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub client_body_timeout: Duration,
    /// Largest request head (request line and headers), in bytes.
    #[arg(long, env = "LLMPOOL_MAX_HEADER_BYTES", default_value_t = 64 * 1024)]
    pub max_header_bytes: usize,
    /// Open client connections above which new ones get a 503 with
    /// Retry-After (default: three quarters of the file descriptor limit,
    /// at most 16384).
    #[arg(long, env = "LLMPOOL_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// How often local mode checks the config directory.
    #[arg(long, env = "LLMPOOL_WATCH_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub watch_interval: Duration,
    /// How long streams may run on after SIGTERM before the process exits.
    #[arg(long, env = "LLMPOOL_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Runtime worker threads (default: the CPUs this process may use). `1`
    /// runs everything on one thread with no cross-thread wake-ups: the
    /// cheapest mode for a pod limited to one CPU or less. Use more where the
    /// pod has more than one CPU to spend.
    #[arg(long, env = "LLMPOOL_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "LLMPOOL_LOG", default_value = "info")]
    pub log: String,
}

impl Args {
    /// Parses flags and reads LLMPOOL_API_KEYS from the environment.
    pub fn from_env() -> Self {
        let mut args = Self::parse();
        if let Ok(keys) = std::env::var("LLMPOOL_API_KEYS") {
            args.api_keys = keys.split(',').map(str::to_owned).collect();
        }
        args
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    llmpool_crds::duration::parse_duration(text).map_err(|e| e.to_string())
}
