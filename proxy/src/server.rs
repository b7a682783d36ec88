//! Startup, serving and graceful shutdown.

use std::sync::Arc;

use llmpool_crds::Compiled;
use tokio::net::TcpListener;

use crate::app::{App, Buffers, Settings};
use crate::cli::Args;
use crate::clients::ClientKeys;
use crate::config::dir;
use crate::ingress;
use crate::listen;
use crate::metrics::Metrics;
use crate::snapshot::{Shared, Snapshot, SnapshotStore};
use crate::state::{Clock, MemoryStore, RedisConfig, RedisStore, StateStore};

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Neither --config nor --kube.
    #[error("give --config DIR (local mode) or --kube (cluster mode)")]
    NoSource,
    /// No Kubernetes client configuration (in-cluster or KUBECONFIG).
    #[error("cluster mode needs in-cluster credentials or KUBECONFIG: {0}")]
    Kube(#[source] kube::Error),
    /// The config directory could not be read.
    #[error(transparent)]
    Dir(#[from] dir::DirError),
    /// The configuration has errors; each is listed.
    #[error("the configuration has {} error(s):\n{}", .0.len(), .0.join("\n"))]
    Invalid(Vec<String>),
    /// The client key file could not be read.
    #[error("cannot read the API key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Metrics registration failed.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Serving failed.
    #[error("server: {0}")]
    Serve(#[source] std::io::Error),
}

/// Where the configuration comes from.
enum Source {
    Dir {
        dir: std::path::PathBuf,
        digest: [u8; 32],
        compiled: Compiled,
        namespace: String,
    },
    Kube {
        client: kube::Client,
        namespace: String,
    },
}

/// Runs the proxy until SIGTERM/SIGINT and the grace period.
pub async fn run(args: Args) -> Result<(), StartError> {
    let source = if args.kube {
        let client = kube::Client::try_default()
            .await
            .map_err(StartError::Kube)?;
        let namespace = args
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        Source::Kube { client, namespace }
    } else {
        let dir = args.config.clone().ok_or(StartError::NoSource)?;
        let contents = dir::read(&dir)?;
        let compiled = dir::compile(&contents);
        if compiled.has_errors() {
            return Err(StartError::Invalid(
                compiled.errors().map(ToString::to_string).collect(),
            ));
        }
        for d in &compiled.diagnostics {
            tracing::warn!(problem = %d, "config warning");
        }
        let namespace = args
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        Source::Dir {
            dir,
            digest: contents.digest,
            compiled,
            namespace,
        }
    };

    let mut keys: Vec<String> = args.api_keys.clone();
    if let Some(path) = &args.api_keys_file {
        let text = std::fs::read_to_string(path).map_err(|source| StartError::KeyFile {
            path: path.clone(),
            source,
        })?;
        keys.extend(text.lines().map(str::to_owned));
    }
    let settings = Settings {
        max_body_bytes: args.max_body_bytes,
        body_timeout: args.client_body_timeout,
        max_json_depth: args.max_json_depth.max(2),
        max_json_elements: args.max_json_elements.max(1),
        max_streams: args.max_streams,
        buffers: Buffers {
            response: args.max_response_bytes,
            stream_event: args.max_stream_event_bytes.max(1024),
        },
        client_keys: ClientKeys::new(keys.iter().map(String::as_str)),
        response_ttl: args.response_ttl,
    };
    let shared = Shared::default();
    let empty = Compiled::default();
    let (compiled, namespace) = match &source {
        Source::Dir {
            compiled,
            namespace,
            ..
        } => (compiled, namespace.clone()),
        Source::Kube { namespace, .. } => (&empty, namespace.clone()),
    };
    let snapshot = Snapshot::build(compiled, &namespace, 1, &shared);
    let metrics = Metrics::new()?;
    metrics.config_generation.set(1);
    let store: Arc<dyn StateStore> = match &args.redis {
        Some(url) => {
            let store = RedisStore::start(
                RedisConfig {
                    url: url.clone(),
                    cluster: args.redis_cluster,
                    call_timeout: args.redis_timeout,
                    fallback_replicas: args.redis_fallback_replicas,
                    namespace: namespace.clone(),
                    ca_file: args.redis_ca_file.clone(),
                },
                Clock::system(),
                args.max_sessions,
            );
            store.set_outcome_linger(args.redis_outcome_linger);
            store
        }
        None => Arc::new(MemoryStore::new(args.max_sessions, Clock::system())),
    };
    let app = Arc::new(App::new(
        SnapshotStore::new(snapshot),
        shared,
        store,
        metrics,
        settings,
    ));

    let (routes, accounts) = (compiled.table.routes.len(), compiled.table.accounts.len());
    match source {
        Source::Dir {
            dir: config_dir,
            digest,
            ..
        } => {
            app.mark_loaded();
            app.note_auth_mode();
            tokio::spawn(dir::watch(
                app.clone(),
                config_dir,
                namespace,
                digest,
                args.watch_interval,
            ));
        }
        Source::Kube { client, namespace } => {
            tracing::info!(namespace = %namespace, name = %args.name, "watching the operator's objects");
            tokio::spawn(crate::config::kube::watch(
                app.clone(),
                client,
                namespace,
                args.name.clone(),
            ));
        }
    }

    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(StartError::Serve)?;
    let limits = listen::Limits {
        header_timeout: args.client_header_timeout,
        max_header_bytes: args.max_header_bytes,
        max_connections: args
            .max_connections
            .unwrap_or_else(listen::default_max_connections),
    };
    let counters = listen::Counters {
        open: app.metrics.connections_open.clone(),
        refused: app.metrics.connections_refused.clone(),
    };
    if let Some(admin) = args.admin_listen {
        let admin_listener = TcpListener::bind(admin)
            .await
            .map_err(|source| StartError::Bind {
                addr: admin,
                source,
            })?;
        let router = ingress::admin_router(app.clone());
        // probes keep their own small allowance, outside the data plane's cap
        let limits = listen::Limits {
            max_connections: 64,
            ..limits.clone()
        };
        let counters = counters.clone();
        let never = std::future::pending::<()>();
        tokio::spawn(listen::serve(
            admin_listener,
            router,
            limits,
            counters,
            never,
        ));
    }
    tracing::info!(
        addr = %addr,
        routes,
        accounts,
        client_auth = app.auth_mode().as_str(),
        "listening"
    );

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let drain_app = app.clone();
    let store = app.store.clone();
    let router = ingress::router(app);
    let server = listen::serve(listener, router, limits, counters, async move {
        shutdown_signal().await;
        drain_app.start_draining();
        tracing::info!("shutting down: no new connections, finishing open requests");
        let _ = stop_tx.send(true);
    });
    let grace = args.shutdown_grace;
    tokio::select! {
        () = server => {},
        _ = async {
            let _ = stop_rx.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_secs = grace.as_secs(), "grace period over; closing the remaining streams");
        }
    }
    // outcomes still waiting for the shared store go before the process does
    if tokio::time::timeout(std::time::Duration::from_secs(2), store.send_all())
        .await
        .is_err()
    {
        tracing::warn!(
            "shared state did not take the last outcomes in time; their leases expire by themselves"
        );
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
