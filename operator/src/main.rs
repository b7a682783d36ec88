//! llmpool-operator: a thin entry point; the work is in the library.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
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

async fn serve_metrics(run: &Run, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(run.metrics)
        .await
        .with_context(|| format!("cannot listen on {}", run.metrics))?;
    let router = axum::Router::new()
        .route("/metrics", get(move || async move { metrics.render() }))
        .route("/healthz", get(|| async { "ok" }));
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    tracing::info!(addr = %addr, "listening");
    Ok(())
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
    serve_metrics(&run, metrics.clone()).await?;

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

    if run.no_leader_election {
        metrics.leader.set(1);
        tokio::select! {
            () = controller.run() => {}
            () = shutdown() => {}
        }
        return Ok(());
    }

    let election = Election {
        lease: format!("{}-operator", run.name),
        identity,
        duration: run.lease_duration,
    };
    let leases = Api::<Lease>::namespaced(client, &own);
    let retry = run.lease_duration / 3;
    // standby until the Lease is ours
    loop {
        tokio::select! {
            () = shutdown() => return Ok(()),
            () = tokio::time::sleep(Duration::ZERO) => {}
        }
        match election.try_lead(&leases, Timestamp::now()).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the leader Lease"),
        }
        tokio::select! {
            () = shutdown() => return Ok(()),
            () = tokio::time::sleep(retry) => {}
        }
    }
    tracing::info!(lease = %election.lease, "leading");
    metrics.leader.set(1);
    let work = tokio::spawn(controller.run());
    let mut renewed = tokio::time::Instant::now();
    let outcome = loop {
        tokio::select! {
            () = shutdown() => break Ok(()),
            () = tokio::time::sleep(retry) => {}
        }
        match election.try_lead(&leases, Timestamp::now()).await {
            Ok(true) => renewed = tokio::time::Instant::now(),
            Ok(false) => break Err(anyhow::anyhow!("lost the leader Lease to another replica")),
            Err(e) if renewed.elapsed() < run.lease_duration => {
                tracing::warn!(error = %e, "cannot renew the leader Lease; retrying");
            }
            Err(e) => {
                break Err(anyhow::anyhow!(
                    "could not renew the leader Lease in time: {e}"
                ));
            }
        }
    };
    // stop writing before anyone else may start
    work.abort();
    metrics.leader.set(0);
    if outcome.is_ok()
        && let Err(e) = election.release(&leases).await
    {
        tracing::warn!(error = %e, "could not release the leader Lease");
    }
    outcome
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
