//! Running the operator: Kubernetes client, metrics endpoint, shared
//! state, watch scopes, controller, leader election and signals, from the
//! command line's settings (what the Helm chart sets). `main` only parses
//! flags and sets up logging.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use llmpool_state::RedisConfig;

use crate::cli::Run;
use crate::controller::Controller;
use crate::events::Events;
use crate::leader::{Election, Lost};
use crate::metrics::Metrics;
use crate::oauth::Refresher;
use crate::reconcile::Reconciler;
use crate::runtime::Shared;

/// Why the operator stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No Kubernetes configuration (in-cluster or KUBECONFIG).
    #[error("no Kubernetes configuration (in-cluster or KUBECONFIG): {0}")]
    Config(#[source] kube::config::InferConfigError),
    /// The client could not be built.
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// Metrics registration failed.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The metrics address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Leadership was lost (another replica takes over).
    #[error(transparent)]
    Lost(#[from] Lost),
}

/// The watch scopes: every namespace (None), the listed ones, or `own`.
pub fn scopes(run: &Run, own: &str) -> Vec<Option<String>> {
    if run.all_namespaces {
        vec![None]
    } else if run.namespaces.is_empty() {
        vec![Some(own.to_owned())]
    } else {
        run.namespaces.iter().cloned().map(Some).collect()
    }
}

/// Runs the operator until SIGTERM/SIGINT or lost leadership.
pub async fn run(run: Run) -> Result<(), RunError> {
    let config = kube::Config::infer().await.map_err(RunError::Config)?;
    let own = run
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config).map_err(RunError::Client)?;
    let identity = run.identity.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "llmpool-operator".to_owned());
        format!("{host}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
    });
    let metrics = Arc::new(Metrics::new()?);
    let addr = crate::metrics::serve(run.metrics, metrics.clone())
        .await
        .map_err(|source| RunError::Listen {
            addr: run.metrics,
            source,
        })?;
    tracing::info!(addr = %addr, "listening");

    let shared = match &run.redis {
        Some(url) => Shared::connect(RedisConfig {
            url: url.clone(),
            cluster: run.redis_cluster,
            call_timeout: Duration::from_secs(2),
            fallback_replicas: None,
            namespace: own.clone(),
            ca_file: run.redis_ca_file.clone(),
        }),
        None => Shared::Off,
    };
    let scopes = scopes(&run, &own);
    tracing::info!(name = %run.name, ?scopes, %identity, redis = shared.configured(), "starting");
    let controller = Controller {
        reconciler: Reconciler {
            client: client.clone(),
            name: run.name.clone(),
            oauth: Refresher::new(run.oauth_skew, Duration::from_secs(10)),
        },
        events: Events::new(client.clone(), &identity),
        metrics: metrics.clone(),
        shared,
        scopes,
        resync: run.resync,
        health_interval: run.health_interval,
    };

    // one listener for the whole run, so no signal falls between two waits
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown().await;
        let _ = stop_tx.send(true);
    });
    if run.no_leader_election {
        metrics.leader.set(1);
        let mut stop = stop;
        tokio::select! {
            () = controller.run() => {}
            _ = stop.wait_for(|s| *s) => {}
        }
        return Ok(());
    }
    let election = Election {
        lease: format!("{}-operator", run.name),
        identity,
        duration: run.lease_duration,
    };
    let leases = Api::<Lease>::namespaced(client, &own);
    let gauge = metrics.clone();
    election
        .lead(&leases, controller.run(), stop, move |leading| {
            gauge.leader.set(i64::from(leading));
        })
        .await?;
    Ok(())
}

/// SIGTERM or Ctrl-C.
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::scopes;
    use crate::cli::Cli;

    fn run_of(args: &[&str]) -> crate::cli::Run {
        let mut all = vec!["llmpool-operator"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap().run
    }

    #[test]
    fn the_charts_watch_settings_become_scopes() {
        assert_eq!(scopes(&run_of(&[]), "own"), [Some("own".to_owned())]);
        assert_eq!(
            scopes(&run_of(&["--namespaces=team-a,team-b"]), "own"),
            [Some("team-a".to_owned()), Some("team-b".to_owned())]
        );
        assert_eq!(scopes(&run_of(&["--all-namespaces"]), "own"), [None]);
        // the chart never sets both; the command line refuses it
        assert!(
            Cli::try_parse_from(["llmpool-operator", "--all-namespaces", "--namespaces=a"])
                .is_err()
        );
        let run = run_of(&["--name=rel", "--metrics=0.0.0.0:9000"]);
        assert_eq!((run.name.as_str(), run.metrics.port()), ("rel", 9000));
    }
}
