//! llmpool-operator: a thin entry point; the work is in the library.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use llmpool_operator::cli::{Cli, Command, Run};
use llmpool_operator::controller::Controller;
use llmpool_operator::events::Events;
use llmpool_operator::leader::Election;
use llmpool_operator::metrics::Metrics;
use llmpool_operator::oauth::Refresher;
use llmpool_operator::reconcile::Reconciler;
use llmpool_operator::runtime::Shared;
use llmpool_state::RedisConfig;

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
    let config = kube::Config::infer()
        .await
        .context("no Kubernetes configuration (in-cluster or KUBECONFIG)")?;
    let own = run
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config).context("cannot build a Kubernetes client")?;
    let identity = run.identity.clone().unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "llmpool-operator".to_owned());
        format!("{host}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
    });
    let metrics = Arc::new(Metrics::new()?);
    let addr = llmpool_operator::metrics::serve(run.metrics, metrics.clone())
        .await
        .with_context(|| format!("cannot listen on {}", run.metrics))?;
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
    let scopes = if run.all_namespaces {
        vec![None]
    } else if run.namespaces.is_empty() {
        vec![Some(own.clone())]
    } else {
        run.namespaces.iter().cloned().map(Some).collect()
    };
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
