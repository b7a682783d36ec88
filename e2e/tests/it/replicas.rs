//! Several proxy processes on one config and one real redis-server, for
//! the tests of shared state.

use llmpool_e2e::harness::{ConfigDir, Process};
use llmpool_e2e::mock::MockProvider;
use llmpool_e2e::redis::RedisServer;
use serde_json::Value;

use crate::common::*;

/// A mock, one redis-server and `n` proxies on the same config.
pub(crate) struct Cluster {
    pub(crate) mock: MockProvider,
    pub(crate) redis: RedisServer,
    pub(crate) _dir: ConfigDir,
    pub(crate) proxies: Vec<Process>,
    pub(crate) http: reqwest::Client,
}

impl Cluster {
    pub(crate) async fn start(n: usize, accounts: &[Acct<'_>], route_spec: &str) -> Cluster {
        Self::start_with(n, accounts, route_spec, &[]).await
    }

    /// Like `start`, with more config files (name, YAML).
    pub(crate) async fn start_with(
        n: usize,
        accounts: &[Acct<'_>],
        route_spec: &str,
        files: &[(&str, String)],
    ) -> Cluster {
        Self::start_full(n, accounts, route_spec, files, &[]).await
    }

    /// Like `start_with`, with more flags for every replica.
    pub(crate) async fn start_full(
        n: usize,
        accounts: &[Acct<'_>],
        route_spec: &str,
        files: &[(&str, String)],
        flags: &[&str],
    ) -> Cluster {
        let mock = MockProvider::start().await.unwrap();
        let redis = RedisServer::start().unwrap();
        let dir = ConfigDir::new().unwrap();
        write_config(&dir, &mock, accounts, route_spec);
        for (name, yaml) in files {
            dir.write(name, yaml).unwrap();
        }
        let url = redis.url();
        let proxies = (0..n)
            .map(|_| {
                let mut args = vec!["--redis", url.as_str(), "--redis-timeout", "1s"];
                args.extend_from_slice(flags);
                Process::start(dir.path(), &args, &[]).unwrap_or_else(|f| panic!("{f:?}"))
            })
            .collect();
        let cluster = Cluster {
            mock,
            redis,
            _dir: dir,
            proxies,
            http: reqwest::Client::new(),
        };
        for i in 0..n {
            let url = cluster.proxies[i].url("/readyz");
            let http = cluster.http.clone();
            eventually("replica connected to Redis", || {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    let r: Value = http.get(url).send().await.unwrap().json().await.unwrap();
                    r["stateDegraded"] == false
                }
            })
            .await;
        }
        cluster
    }

    pub(crate) async fn ask(&self, replica: usize, body: &Value) -> reqwest::Response {
        let url = self.proxies[replica].url("/v1/chat/completions");
        self.http.post(url).json(body).send().await.unwrap()
    }

    pub(crate) async fn ask_as(
        &self,
        replica: usize,
        key: &str,
        body: &Value,
    ) -> reqwest::Response {
        let url = self.proxies[replica].url("/v1/chat/completions");
        let r = self.http.post(url).bearer_auth(key).json(body);
        r.send().await.unwrap()
    }

    pub(crate) async fn served_by(&self, replica: usize) -> String {
        let r = self.ask(replica, &chat_body("gpt-test", false)).await;
        assert_eq!(r.status(), 200);
        reply_label(&r.json().await.unwrap())
    }

    pub(crate) async fn degraded(&self, replica: usize) -> bool {
        readyz(&self.http, &self.proxies[replica]).await["stateDegraded"] == true
    }
}

/// Leases an account holds in Redis now (unexpired).
pub(crate) fn redis_leases(redis: &RedisServer, account: &str) -> u64 {
    // a lease's score is its expiry; expired entries are pruned lazily, the
    // next time an admission looks at the account, and count for nothing
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "zcount"])
        .arg(format!("llmpool:{{default}}:acct:{account}:leases"))
        .args([format!("({now_ms}"), "+inf".to_owned()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(u64::MAX)
}
