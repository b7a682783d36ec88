//! Reaching Redis the ways production does: ACL user and password in the
//! URL, TLS with a private CA, and Redis Cluster with the namespace's keys
//! in one hash slot.

use std::process::Command;
use std::time::Duration;

use llmpool_e2e::redis::RedisServer;
use llmpool_state::{Clock, RedisConfig, RedisStore, StateStore};

use crate::{START_MS, state_suite};

fn config(url: String) -> RedisConfig {
    RedisConfig {
        url,
        cluster: false,
        call_timeout: Duration::from_secs(5),
        fallback_replicas: None,
        namespace: "ns".to_owned(),
        ca_file: None,
    }
}

#[tokio::test]
async fn acl_user_and_password_from_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("users.acl");
    std::fs::write(
        &acl,
        "user llmpool on >s3cret-pass ~* &* +@all\nuser default off\n",
    )
    .unwrap();
    let server = RedisServer::start_with(&["--aclfile".into(), acl.display().to_string()]).unwrap();
    let clock = Clock::manual(START_MS);
    let good = RedisStore::start(
        config(format!(
            "redis://llmpool:s3cret-pass@127.0.0.1:{}",
            server.port
        )),
        clock.clone(),
        10,
    );
    assert!(good.connected(Duration::from_secs(10)).await);
    state_suite::requests_per_minute_is_a_sliding_window_exact_at_the_boundary(&*good, &clock)
        .await;
    assert!(!good.degraded());

    let bad = RedisStore::start(
        config(format!("redis://llmpool:wrong@127.0.0.1:{}", server.port)),
        clock.clone(),
        10,
    );
    assert!(
        !bad.connected(Duration::from_secs(2)).await,
        "a wrong password never connects"
    );
    assert!(
        bad.degraded(),
        "and the replica says it serves on its local view"
    );
}

#[tokio::test]
async fn tls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let sh = |cmd: &str| {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(dir.path())
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "{cmd}");
    };
    sh(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=llmpool-test-ca",
    );
    sh(
        "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost",
    );
    sh("printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf");
    sh(
        "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 1 -extfile ext.cnf",
    );
    let path = |f: &str| dir.path().join(f).display().to_string();
    let server = RedisServer::start_with(&[
        "--tls-port".into(),
        "--tls-cert-file".into(),
        path("server.crt"),
        "--tls-key-file".into(),
        path("server.key"),
        "--tls-ca-cert-file".into(),
        path("ca.crt"),
        "--tls-auth-clients".into(),
        "no".into(),
    ])
    .unwrap();
    let url = format!("rediss://localhost:{}", server.port);
    let clock = Clock::manual(START_MS);
    let mut trusted = config(url.clone());
    trusted.ca_file = Some(dir.path().join("ca.crt"));
    let store = RedisStore::start(trusted, clock.clone(), 10);
    assert!(
        store.connected(Duration::from_secs(10)).await,
        "TLS with the private CA"
    );
    state_suite::a_429_cools_the_account_model_pair_then_one_probe_goes_first(&*store, &clock)
        .await;
    assert!(!store.degraded());

    let untrusted = RedisStore::start(config(url), clock, 10);
    assert!(
        !untrusted.connected(Duration::from_secs(2)).await,
        "an unknown CA is refused"
    );
}

#[tokio::test]
async fn redis_cluster_with_every_key_in_one_slot() {
    let dir = tempfile::tempdir().unwrap();
    let nodes: Vec<RedisServer> = (0..3)
        .map(|i| {
            RedisServer::start_with(&[
                "--cluster-enabled".into(),
                "yes".into(),
                "--dir".into(),
                dir.path().display().to_string(),
                "--cluster-config-file".into(),
                format!("nodes-{i}.conf"),
            ])
        })
        .collect::<Result<_, _>>()
        .unwrap();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let created = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stdout)
    );
    for _ in 0..100 {
        let info = Command::new("redis-cli")
            .args(["-p", &nodes[0].port.to_string(), "cluster", "info"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let urls: Vec<String> = addrs.iter().map(|a| format!("redis://{a}")).collect();
    let mut cluster = config(urls.join(","));
    cluster.cluster = true;
    let clock = Clock::manual(START_MS);
    let store = RedisStore::start(cluster, clock.clone(), 10);
    assert!(store.connected(Duration::from_secs(10)).await);
    state_suite::sessions_stick_to_their_account_and_rebind_on_failover(&*store, &clock).await;
    state_suite::a_429_cools_the_account_model_pair_then_one_probe_goes_first(&*store, &clock)
        .await;
    assert!(
        !store.degraded(),
        "the scripts ran on the cluster, not the fallback"
    );
    let calls: u64 = nodes.iter().map(RedisServer::script_calls).sum();
    assert!(calls > 0);
}

#[tokio::test]
async fn without_redis_each_replica_takes_its_share_of_every_limit() {
    use llmpool_crds::table::CompiledLimits;
    use llmpool_state::{Admission, AdmitRequest, Candidate};

    // nothing listens on this port: the store never connects
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut unreachable = config(format!("redis://127.0.0.1:{port}"));
    unreachable.fallback_replicas = Some(2);
    let clock = Clock::manual(START_MS);
    let store = RedisStore::start(unreachable, clock.clone(), 10);
    let c = [Candidate {
        account: "a".into(),
        tier: 0,
        model: "m".into(),
        project: None,
        limits: CompiledLimits {
            requests_per_minute: Some(4),
            ..Default::default()
        },
        fingerprint: "f".into(),
    }];
    let req = AdmitRequest {
        namespace: "ns",
        candidates: &c,
        excluded: &[],
        least_busy: false,
        session: None,
        estimated_tokens: 1,
        lease_ttl: Duration::from_secs(60),
        client: None,
    };
    let mut admitted = 0;
    for _ in 0..4 {
        if let Admission::Admitted(lease) = store.admit(&req).await.unwrap() {
            assert!(lease.fallback);
            admitted += 1;
        }
    }
    assert_eq!(admitted, 2, "4 per minute shared by 2 replicas");
    assert!(store.degraded());

    // a client's limits are shared out the same way
    let unlimited = [Candidate {
        account: "b".into(),
        limits: CompiledLimits::default(),
        ..c[0].clone()
    }];
    let client = llmpool_state::ClientCharge {
        name: "team-a".into(),
        limits: CompiledLimits {
            requests_per_minute: Some(6),
            ..Default::default()
        },
        first_attempt: true,
    };
    let with_client = AdmitRequest {
        candidates: &unlimited,
        client: Some(&client),
        ..req.clone()
    };
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        outcomes.push(match store.admit(&with_client).await.unwrap() {
            Admission::Admitted(_) => "admitted",
            Admission::ClientLimited { .. } => "client limited",
            Admission::Unavailable { .. } => "unavailable",
        });
    }
    assert_eq!(
        outcomes,
        [
            "admitted",
            "admitted",
            "admitted",
            "client limited",
            "client limited"
        ],
        "6 per minute shared by 2 replicas"
    );
}
