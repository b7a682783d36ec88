//! The whole cluster pipeline with real processes against the fake API
//! server: the operator compiles LlmAccounts and ModelRoutes into the two
//! objects, two proxies in `--kube` mode serve them, and edits, deletions,
//! invalid resources, hand edits, leader failover and cooldown resets all
//! reach the proxies. (The same flows against a real kube-apiserver, with
//! schema and CEL validation, are in `real_cluster.rs`.)

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use llmpool_e2e::harness::Process;
use llmpool_e2e::kubeapi::FakeApiServer;
use llmpool_e2e::mock::MockProvider;
use llmpool_e2e::redis::RedisServer;
use serde_json::{Value, json};

use crate::common::*;

const NS: &str = "team-a";

fn secret(keys: &[(&str, &str)]) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    let data: serde_json::Map<String, Value> = keys
        .iter()
        .map(|(k, v)| ((*k).to_owned(), b64.encode(v).into()))
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys", "namespace": NS}, "data": data})
}

fn account(name: &str, base_url: &str, key: &str) -> Value {
    json!({"apiVersion": "llmpool.dev/v1alpha1", "kind": "LlmAccount",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"provider": "openai-compatible", "baseUrl": base_url,
                 "credentials": {"secretRef": {"name": "keys", "key": key}}}})
}

fn route(names: &[&str], strategy: &str) -> Value {
    json!({"apiVersion": "llmpool.dev/v1alpha1", "kind": "ModelRoute",
        "metadata": {"name": "test", "namespace": NS},
        "spec": {"models": ["gpt-test"], "strategy": strategy, "targets": [{"accounts": {"names": names}}]}})
}

/// The fake API server, the mock, an operator and two proxies.
struct Stack {
    api: FakeApiServer,
    mock: MockProvider,
    kubeconfig: String,
    _dir: tempfile::TempDir,
    operators: Vec<Process>,
    proxies: Vec<Process>,
    http: reqwest::Client,
}

impl Stack {
    async fn start() -> Stack {
        let api = FakeApiServer::start().await.unwrap();
        let mock = MockProvider::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = api
            .kubeconfig(dir.path(), NS)
            .unwrap()
            .display()
            .to_string();
        Stack {
            api,
            mock,
            kubeconfig,
            _dir: dir,
            operators: Vec::new(),
            proxies: Vec::new(),
            http: reqwest::Client::new(),
        }
    }

    fn operator(&mut self, args: &[&str]) {
        let env = [("KUBECONFIG", self.kubeconfig.as_str())];
        let p = Process::operator(args, &env).unwrap_or_else(|f| panic!("{f:?}"));
        self.operators.push(p);
    }

    async fn proxies(&mut self, n: usize, args: &[&str]) {
        let env = [("KUBECONFIG", self.kubeconfig.as_str())];
        for _ in 0..n {
            let mut all = vec!["--kube"];
            all.extend_from_slice(args);
            let p = Process::launch(&all, &env).unwrap_or_else(|f| panic!("{f:?}"));
            self.proxies.push(p);
        }
        for p in &self.proxies {
            let url = p.url("/readyz");
            eventually("proxy loaded the operator's objects", || {
                let (http, url) = (self.http.clone(), url.clone());
                async move { http.get(url).send().await.unwrap().status() == 200 }
            })
            .await;
        }
    }

    async fn served(&self, n: usize) -> HashMap<String, usize> {
        served(&self.http, &self.proxies, n).await
    }

    async fn until_served_by(&self, labels: &[&str]) -> Duration {
        until_served_by(&self.http, &self.proxies, labels).await
    }

    fn condition(&self, kind: &str, name: &str, condition: &str) -> Option<Value> {
        let object = self.api.get(kind, NS, name)?;
        object["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == condition)
            .cloned()
    }

    fn events(&self) -> Vec<Value> {
        self.api.list("events", NS)
    }
}

#[tokio::test]
async fn the_operator_compiles_resources_and_both_proxies_follow_every_edit() {
    let mut s = Stack::start().await;
    let url = s.mock.base_url();
    s.api
        .apply("secrets", secret(&[("a", "a"), ("b", "b"), ("c", "c")]));
    for name in ["a", "b", "c"] {
        s.api.apply("llmaccounts", account(name, &url, name));
    }
    s.api
        .apply("modelroutes", route(&["a", "b", "c"], "round-robin"));
    s.operator(&["--namespace", NS]);
    s.proxies(2, &[]).await;

    let seen = s.served(6).await;
    assert_eq!(seen.len(), 3, "round-robin over a, b, c: {seen:?}");

    // status: conditions, observedGeneration and tier counts
    let ready = s.condition("llmaccounts", "a", "Ready").unwrap();
    assert_eq!(ready["status"], "True");
    let a = s.api.get("llmaccounts", NS, "a").unwrap();
    assert_eq!(a["status"]["observedGeneration"], 1);
    let route_status = s.api.get("modelroutes", NS, "test").unwrap()["status"].clone();
    assert_eq!(route_status["targets"], "3", "{route_status}");
    // each new condition became an Event
    let events = s.events();
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "Serving" && e["regarding"]["name"] == "test"),
        "{events:?}"
    );

    // disable b: no new requests reach it, within 2 s
    let mut b = account("b", &url, "b");
    b["spec"]["disabled"] = true.into();
    s.api.apply("llmaccounts", b);
    let took = s.until_served_by(&["a", "c"]).await;
    assert!(took < Duration::from_secs(2), "the edit took {took:?}");

    // delete c: gone from both proxies within 2 s
    s.api.delete("llmaccounts", NS, "c");
    let took = s.until_served_by(&["a"]).await;
    assert!(took < Duration::from_secs(2), "the deletion took {took:?}");

    // an account whose Secret does not exist is reported and breaks nothing
    let mut d = account("d", &url, "d");
    d["spec"]["credentials"]["secretRef"]["name"] = "missing".into();
    s.api.apply("llmaccounts", d);
    s.api
        .apply("modelroutes", route(&["a", "d"], "round-robin"));
    eventually("d says what is wrong", || async {
        s.condition("llmaccounts", "d", "CredentialsResolved")
            .is_some_and(|c| {
                c["status"] == "False"
                    && c["message"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("Secret missing")
            })
    })
    .await;
    assert_eq!(s.until_served_by(&["a"]).await.as_secs(), 0);

    // a hand-deleted credentials Secret is put back
    s.api.delete("secrets", NS, "llmpool-credentials");
    eventually("credentials Secret recreated", || async {
        s.api.get("secrets", NS, "llmpool-credentials").is_some()
    })
    .await;
    // a hand edit is overwritten
    let mut tampered = s.api.get("secrets", NS, "llmpool-credentials").unwrap();
    tampered["data"]["a"] = "dGFtcGVyZWQ=".into();
    s.api.apply("secrets", tampered);
    eventually("hand edit overwritten", || async {
        s.api.get("secrets", NS, "llmpool-credentials").unwrap()["data"]["a"]
            == base64::engine::general_purpose::STANDARD.encode("a")
    })
    .await;
    assert_eq!(s.until_served_by(&["a"]).await.as_secs(), 0);

    // the last account and route gone: both objects are deleted, and the
    // proxies keep serving the last good table
    for name in ["a", "b", "d"] {
        s.api.delete("llmaccounts", NS, name);
    }
    s.api.delete("modelroutes", NS, "test");
    eventually("both objects deleted", || async {
        s.api.get("secrets", NS, "llmpool-credentials").is_none()
            && s.api.get("configmaps", NS, "llmpool-routes").is_none()
    })
    .await;

    // no key ever reached a log line
    let logs = s.operators[0].logs().join("\n");
    assert!(!logs.contains("dGFtcGVyZWQ") && !logs.contains("tampered"));
    let metrics = metrics_of(&s.http, &s.operators[0]).await;
    assert!(
        metrics.contains("llmpool_operator_reconciles_total{result=\"ok\"}"),
        "{metrics}"
    );
    assert!(leads(&s.http, &s.operators[0]).await);
}

/// Whether an operator process says it holds the Lease.
async fn leads(http: &reqwest::Client, operator: &Process) -> bool {
    let text = metrics_of(http, operator).await;
    text.lines().any(|l| l == "llmpool_operator_leader 1")
}

#[tokio::test]
async fn a_standby_operator_takes_over_when_the_leader_dies() {
    let mut s = Stack::start().await;
    let url = s.mock.base_url();
    s.api.apply("secrets", secret(&[("a", "a"), ("b", "b")]));
    s.api.apply("llmaccounts", account("a", &url, "a"));
    s.api.apply("modelroutes", route(&["a"], "round-robin"));
    let lease = ["--lease-duration", "2s"];
    s.operator(&[&["--namespace", NS, "--identity", "op-1"][..], &lease].concat());
    eventually("op-1 leads", || async {
        s.api
            .get("leases", NS, "llmpool-operator")
            .is_some_and(|l| l["spec"]["holderIdentity"] == "op-1")
    })
    .await;
    s.operator(&[&["--namespace", NS, "--identity", "op-2"][..], &lease].concat());
    s.proxies(1, &[]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!leads(&s.http, &s.operators[1]).await, "one writer only");

    // the leader dies without giving the Lease up
    drop(s.operators.remove(0));
    s.api.apply("llmaccounts", account("b", &url, "b"));
    s.api.apply("modelroutes", route(&["b"], "round-robin"));
    let took = s.until_served_by(&["b"]).await;
    assert!(took < Duration::from_secs(15), "failover took {took:?}");
    assert!(
        leads(&s.http, &s.operators[0]).await,
        "the standby leads now"
    );
    let lease = s.api.get("leases", NS, "llmpool-operator").unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "op-2");
}

#[tokio::test]
async fn health_reaches_status_and_the_reset_annotation_clears_a_cooldown() {
    let mut s = Stack::start().await;
    let redis = RedisServer::start().unwrap();
    let url = s.mock.base_url();
    // flaky answers its first request with a 429 asking for 10 minutes
    s.api.apply(
        "secrets",
        secret(&[
            ("flaky", "flaky?status=429&retry_after=600&times=1"),
            ("steady", "steady"),
        ]),
    );
    let mut flaky = account("flaky", &url, "flaky");
    flaky["spec"]["priority"] = 0.into();
    let mut steady = account("steady", &url, "steady");
    steady["spec"]["priority"] = 1.into();
    s.api.apply("llmaccounts", flaky.clone());
    s.api.apply("llmaccounts", steady);
    s.api
        .apply("modelroutes", route(&["flaky", "steady"], "fill-first"));
    let r = redis.url();
    s.operator(&[
        "--namespace",
        NS,
        "--redis",
        &r,
        "--health-interval",
        "300ms",
    ]);
    s.proxies(2, &["--redis", &r, "--redis-timeout", "1s"])
        .await;

    // the 429 rotates to steady and cools flaky for every replica
    let seen = s.served(3).await;
    assert_eq!(seen.get("steady"), Some(&6), "{seen:?}");
    eventually("kubectl get llma shows flaky cooling down", || async {
        let health = &s.api.get("llmaccounts", NS, "flaky").unwrap()["status"]["health"];
        health["state"] == "CoolingDown"
            && health["lastErrorClass"] == "RateLimited"
            && health["coolingDownUntil"].is_string()
    })
    .await;
    let steady_health = s.api.get("llmaccounts", NS, "steady").unwrap()["status"]["health"].clone();
    assert_eq!(steady_health["state"], "Available");

    // the user asks for a reset: flaky serves again on every replica
    flaky["metadata"]["annotations"] = json!({"llmpool.dev/reset-cooldown": "1"});
    s.api.apply("llmaccounts", flaky);
    let took = s.until_served_by(&["flaky"]).await;
    assert!(took < Duration::from_secs(5), "the reset took {took:?}");
    let shown = s.api.get("llmaccounts", NS, "flaky").unwrap();
    assert_eq!(shown["status"]["cooldownReset"], "1");
    assert!(
        s.events()
            .iter()
            .any(|e| e["reason"] == "CooldownReset" && e["regarding"]["name"] == "flaky")
    );
    eventually("health back to Available", || async {
        s.api.get("llmaccounts", NS, "flaky").unwrap()["status"]["health"]["state"] == "Available"
    })
    .await;
}

fn llm_client(name: &str, secret: &str, limits: Value) -> Value {
    json!({"apiVersion": "llmpool.dev/v1alpha1", "kind": "LlmClient",
        "metadata": {"name": name, "namespace": NS, "generation": 1},
        "spec": {"keySecretRef": {"name": secret, "key": "key"}, "limits": limits}})
}

fn key_secret(name: &str, key: &str) -> Value {
    let mut s = secret(&[("key", key)]);
    s["metadata"]["name"] = name.into();
    s
}

#[tokio::test]
async fn an_llmclient_reaches_both_proxies_its_usage_reaches_status_and_deleting_it_revokes_the_key()
 {
    let (team_a, team_b) = ("sk-team-a-d41c7e09b3a25f86", "sk-team-b-7a3f0c5e9d21b648");
    let mut s = Stack::start().await;
    let redis = RedisServer::start().unwrap();
    let url = s.mock.base_url();
    s.api.apply("secrets", secret(&[("a", "a")]));
    s.api.apply("llmaccounts", account("a", &url, "a"));
    s.api.apply("modelroutes", route(&["a"], "round-robin"));
    let r = redis.url();
    s.operator(&[
        "--namespace",
        NS,
        "--redis",
        &r,
        "--health-interval",
        "300ms",
    ]);
    s.proxies(2, &["--redis", &r, "--redis-timeout", "1s"])
        .await;
    let ask = |proxy: usize, key: Option<&str>| {
        let mut req = s
            .http
            .post(s.proxies[proxy].url("/v1/chat/completions"))
            .json(&chat_body("gpt-test", false));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(ask(0, None).await, 200, "no client yet: open");

    s.api.apply("secrets", key_secret("team-a-key", team_a));
    s.api.apply("secrets", key_secret("team-b-key", team_b));
    s.api.apply(
        "llmclients",
        llm_client("team-a", "team-a-key", json!({"requestsPerMinute": 2})),
    );
    let started = std::time::Instant::now();
    eventually("both proxies require keys", || async {
        ask(0, None).await == 401 && ask(1, None).await == 401
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    s.api
        .apply("llmclients", llm_client("team-b", "team-b-key", json!({})));
    eventually("team-b accepted", || async {
        ask(1, Some(team_b)).await == 200
    })
    .await;

    // the client's window is shared through Redis by both proxies
    assert_eq!(ask(0, Some(team_a)).await, 200);
    assert_eq!(ask(1, Some(team_a)).await, 200);
    assert_eq!(ask(0, Some(team_a)).await, 429);
    assert_eq!(ask(1, Some(team_a)).await, 429);
    eventually("kubectl get llmc shows team-a's use", || async {
        let shown = s.api.get("llmclients", NS, "team-a").unwrap();
        shown["status"]["usage"]["requestsLastMinute"] == 2
            && shown["status"]["conditions"][0]["status"] == "True"
    })
    .await;

    s.api.delete("llmclients", NS, "team-a");
    let started = std::time::Instant::now();
    eventually("team-a revoked on both proxies", || async {
        ask(0, Some(team_a)).await == 401 && ask(1, Some(team_a)).await == 401
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(ask(0, Some(team_b)).await, 200);

    let mut seen = s.operators[0].logs().join("\n");
    for p in &s.proxies {
        seen.push_str(&p.logs_settled().await.join("\n"));
        seen.push_str(&metrics_of(&s.http, p).await);
    }
    seen.push_str(&metrics_of(&s.http, &s.operators[0]).await);
    for object in s.api.list("llmclients", NS).into_iter().chain(s.events()) {
        seen.push_str(&object.to_string());
    }
    let routes = s.api.get("configmaps", NS, "llmpool-routes").unwrap();
    seen.push_str(&routes.to_string());
    assert!(
        !seen.contains(team_a) && !seen.contains(team_b),
        "a client key leaked"
    );
}

/// `object` moved to namespace `ns`.
fn in_ns(mut object: Value, ns: &str) -> Value {
    object["metadata"]["namespace"] = ns.into();
    object
}

#[tokio::test]
async fn one_operator_serves_every_namespace_and_a_broken_one_harms_no_other() {
    let mut s = Stack::start().await;
    let url = s.mock.base_url();
    for ns in [NS, "team-b"] {
        s.api.apply("secrets", in_ns(secret(&[("a", "a")]), ns));
        s.api
            .apply("llmaccounts", in_ns(account("a", &url, "a"), ns));
    }
    s.api.apply("modelroutes", route(&["a"], "round-robin"));
    // team-b's route names an account that does not exist
    s.api.apply(
        "modelroutes",
        in_ns(route(&["nobody"], "round-robin"), "team-b"),
    );
    s.operator(&["--all-namespaces", "--namespace", NS]);
    s.proxies(1, &[]).await;
    assert_eq!(s.until_served_by(&["a"]).await.as_secs(), 0);

    eventually(
        "team-b compiled too, with its problem on its route",
        || async {
            let ready = s
                .api
                .get("modelroutes", "team-b", "test")
                .and_then(|r| r["status"]["conditions"].get(0).cloned());
            s.api
                .get("configmaps", "team-b", "llmpool-routes")
                .is_some()
                && ready.is_some_and(|c| {
                    c["status"] == "False"
                        && c["message"].as_str().unwrap_or_default().contains("nobody")
                })
        },
    )
    .await;
    assert_eq!(
        s.condition("modelroutes", "test", "Ready").unwrap()["status"],
        "True"
    );
    // the watches were cluster-wide, not one per namespace
    let requests = s.api.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET /apis/llmpool.dev/v1alpha1/llmaccounts?")),
        "{requests:?}"
    );
}

// multi-threaded: terminate() blocks this thread while the fake API server
// must keep answering the leader's last calls
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_with_sigterm_hands_over_without_waiting_for_the_lease() {
    let mut s = Stack::start().await;
    let url = s.mock.base_url();
    s.api.apply("secrets", secret(&[("a", "a")]));
    s.api.apply("llmaccounts", account("a", &url, "a"));
    // the standby looks every 3 s; without a release it would wait 9 s
    let lease = ["--lease-duration", "9s"];
    s.operator(&[&["--namespace", NS, "--identity", "op-1"][..], &lease].concat());
    let holder = |s: &Stack| {
        s.api
            .get("leases", NS, "llmpool-operator")
            .map(|l| l["spec"]["holderIdentity"].clone())
    };
    eventually("op-1 leads", || async { holder(&s) == Some("op-1".into()) }).await;
    s.operator(&[&["--namespace", NS, "--identity", "op-2"][..], &lease].concat());

    let status = s.operators[0].terminate(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "clean exit: {status:?}"
    );
    let start = std::time::Instant::now();
    while holder(&s) != Some("op-2".into()) {
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "no handover: {:?}",
            holder(&s)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_operator_killed_mid_reconcile_leaves_the_proxies_serving_and_a_new_one_finishes_the_job()
 {
    let mut s = Stack::start().await;
    let url = s.mock.base_url();
    let names: Vec<String> = (0..40).map(|i| format!("acct-{i:02}")).collect();
    let keys: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), n.as_str())).collect();
    s.api.apply("secrets", secret(&keys));
    for n in &names {
        s.api.apply("llmaccounts", account(n, &url, n));
    }
    let first: Vec<&str> = names[..20].iter().map(String::as_str).collect();
    s.api.apply("modelroutes", route(&first, "round-robin"));
    // a short Lease: the new operator takes over once the dead one's expires
    let lease = ["--namespace", NS, "--lease-duration", "3s"];
    s.operator(&lease);
    s.proxies(2, &[]).await;
    assert!(
        s.served(4)
            .await
            .keys()
            .all(|k| first.contains(&k.as_str()))
    );

    // traffic throughout; the route moves to the other 20 accounts and the
    // operator is killed while it works on that change
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (http, urls, stop) = (
            s.http.clone(),
            s.proxies
                .iter()
                .map(|p| p.url("/v1/chat/completions"))
                .collect::<Vec<_>>(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for url in &urls {
                    let r = http
                        .post(url)
                        .json(&chat_body("gpt-test", false))
                        .send()
                        .await
                        .unwrap();
                    statuses.push(r.status().as_u16());
                }
            }
            statuses
        })
    };
    let second: Vec<&str> = names[20..].iter().map(String::as_str).collect();
    s.api.apply("modelroutes", route(&second, "round-robin"));
    tokio::time::sleep(Duration::from_millis(120)).await;
    drop(s.operators.remove(0)); // SIGKILL, debounce over, reconcile under way
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.operator(&lease);
    let took = s.until_served_by(&second).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses = traffic.await.unwrap();
    eprintln!(
        "operator killed mid-reconcile: {} requests, all 200: {}; the change served {took:?} after the new operator started",
        statuses.len(),
        statuses.iter().all(|&c| c == 200)
    );
    assert!(
        took < Duration::from_secs(10),
        "the new operator took {took:?}"
    );
    assert!(statuses.iter().all(|&c| c == 200), "{statuses:?}");
    // the two objects are a matching pair again
    let cm = s.api.get("configmaps", NS, "llmpool-routes").unwrap();
    let secret = s.api.get("secrets", NS, "llmpool-credentials").unwrap();
    let hash = |o: &Value| o["metadata"]["annotations"]["llmpool.dev/content-hash"].clone();
    assert_eq!(hash(&cm), hash(&secret));
}
