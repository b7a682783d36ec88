//! Connecting to Redis (single node or Cluster; `redis://`, `rediss://` for
//! TLS, ACL user and password in the URL), and the replica heartbeat that
//! tells the fallback view how many replicas share each limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use tokio::sync::OnceCell;

use super::keys::Keys;
use super::{HEARTBEAT, Health, PROBE_MS, REPLICA_TTL_MS};
use crate::clock::Clock;

/// How to reach Redis.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` or `rediss://...` for TLS.
    /// For Cluster, several node URLs separated by commas.
    pub url: String,
    /// Treat `url` as Redis Cluster seed nodes.
    pub cluster: bool,
    /// Limit for one call; past it the replica serves on its local view.
    pub call_timeout: Duration,
    /// Replicas sharing each limit in the fallback view (default: the live
    /// replicas seen through the heartbeat).
    pub fallback_replicas: Option<u64>,
    /// Namespace whose heartbeat this replica writes.
    pub namespace: String,
    /// PEM file of the CA that signed Redis's TLS certificate (`rediss://`
    /// with a private CA); default: the system's web PKI roots.
    pub ca_file: Option<std::path::PathBuf>,
}

impl RedisConfig {
    fn certificates(&self) -> redis::RedisResult<Option<redis::TlsCertificates>> {
        let Some(path) = &self.ca_file else {
            return Ok(None);
        };
        let pem = std::fs::read(path).map_err(|e| {
            redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "cannot read the Redis CA file",
                e.to_string(),
            ))
        })?;
        Ok(Some(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        }))
    }

    /// A client for one node URL, with the CA when one is configured.
    fn client(&self, url: &str) -> redis::RedisResult<redis::Client> {
        match self.certificates()? {
            Some(certs) => redis::Client::build_with_tls(url, certs),
            None => redis::Client::open(url),
        }
    }
}

/// A multiplexed, auto-reconnecting connection.
#[derive(Clone)]
pub enum Conn {
    /// One Redis server (or a primary behind a service).
    Single(ConnectionManager),
    /// Redis Cluster.
    Cluster(ClusterConnection),
}

impl Conn {
    pub(crate) async fn invoke<T: redis::FromRedisValue>(
        &mut self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> redis::RedisResult<T> {
        match self {
            Conn::Single(c) => invocation.invoke_async(c).await,
            Conn::Cluster(c) => invocation.invoke_async(c).await,
        }
    }

    pub(crate) async fn command<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        match self {
            Conn::Single(c) => cmd.query_async(c).await,
            Conn::Cluster(c) => cmd.query_async(c).await,
        }
    }

    async fn query<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Pipeline,
    ) -> redis::RedisResult<T> {
        match self {
            Conn::Single(c) => cmd.query_async(c).await,
            Conn::Cluster(c) => cmd.query_async(c).await,
        }
    }
}

pub(super) async fn connect(config: &RedisConfig) -> redis::RedisResult<Conn> {
    if config.cluster {
        let nodes: Vec<&str> = config.url.split(',').map(str::trim).collect();
        let mut builder = redis::cluster::ClusterClient::builder(nodes);
        if let Some(certs) = config.certificates()? {
            builder = builder.certs(certs);
        }
        let client = builder
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(config.call_timeout.max(Duration::from_millis(200)))
            .build()?;
        return Ok(Conn::Cluster(client.get_async_connection().await?));
    }
    let client = config.client(&config.url)?;
    let manager = ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(config.call_timeout.max(Duration::from_millis(200)))
        .set_number_of_retries(2)
        .set_factor(50)
        .set_max_delay(500);
    Ok(Conn::Single(
        ConnectionManager::new_with_config(client, manager).await?,
    ))
}

/// Connects (retrying every second until it works), then keeps a heartbeat.
pub(super) async fn connect_and_heartbeat(
    config: RedisConfig,
    cell: Arc<OnceCell<Conn>>,
    replicas: Arc<AtomicU64>,
    health: Arc<Health>,
    clock: Clock,
) {
    let mut logged = false;
    let mut conn = loop {
        match connect(&config).await {
            Ok(c) => break c,
            Err(e) => {
                if !logged {
                    // the error text of redis-rs never includes the password
                    tracing::warn!(error = %e, "cannot reach Redis yet; serving on the local view and retrying");
                    logged = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let _ = cell.set(conn.clone());
    tracing::info!(cluster = config.cluster, "connected to Redis");
    let key = Keys::new(&config.namespace).replicas();
    let me = uuid::Uuid::new_v4().simple().to_string();
    loop {
        let now = clock.now_ms();
        let mut pipe = redis::pipe();
        pipe.zadd(&key, &me, now)
            .ignore()
            .zrembyscore(&key, "-inf", now.saturating_sub(REPLICA_TTL_MS))
            .ignore()
            .pexpire(&key, i64::try_from(REPLICA_TTL_MS * 4).unwrap_or(i64::MAX))
            .ignore()
            .zcard(&key);
        // the heartbeat doubles as the health probe: an idle replica notices
        // Redis coming back without waiting for traffic
        match conn.query::<(u64,)>(&pipe).await {
            Ok((live,)) => {
                replicas.store(live.max(1), Ordering::Relaxed);
                health.mark(Ok(()));
            }
            Err(e) => health.mark(Err(e.to_string())),
        }
        let pause = if health.is_degraded() {
            Duration::from_millis(PROBE_MS)
        } else {
            HEARTBEAT
        };
        tokio::time::sleep(pause).await;
    }
}

/// Listens for cooldown events and feeds the cold cache, resubscribing after
/// every disconnect. In Cluster mode PUBLISH reaches every node, so the first
/// seed node is enough.
pub(super) async fn follow_cooldowns(
    config: RedisConfig,
    cache: Arc<super::cold::ColdCache>,
    clock: Clock,
) {
    use futures_util::StreamExt;
    let url = config
        .url
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let channel = Keys::new(&config.namespace).events();
    loop {
        let subscribed = async {
            let client = config.client(&url)?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        if let Ok(mut pubsub) = subscribed.await {
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                if let Ok(text) = msg.get_payload::<String>() {
                    cache.apply(&text, clock.now_ms());
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
