//! The opt-in tier against a real API server (`KUBECONFIG`, or
//! `KUBE_APISERVER` naming a kube-apiserver binary started here with its
//! own etcd): the CRDs and their validation as the server enforces them,
//! then the operator and two proxies out of cluster, driven with kubectl.
//! Skipped, in one line, when neither is set.

use std::time::Duration;

use llmpool_e2e::harness::Process;
use llmpool_e2e::mock::MockProvider;
use llmpool_e2e::realapi::RealApiServer;
use serde_json::Value;

use crate::common::*;

fn crd_dir() -> String {
    format!("{}/../crds/yaml", env!("CARGO_MANIFEST_DIR"))
}

/// kubectl as admin; panics with its stderr when it fails.
fn kubectl(api: &RealApiServer, args: &[&str], stdin: Option<&str>) -> String {
    let out = api.kubectl(args, stdin).unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// kubectl that must be refused; returns the server's message.
fn refused(api: &RealApiServer, ns: &str, yaml: &str) -> String {
    let out = api
        .kubectl(&["-n", ns, "apply", "-f", "-"], Some(yaml))
        .unwrap();
    assert!(!out.status.success(), "accepted: {yaml}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn condition(api: &RealApiServer, ns: &str, kind: &str, name: &str, which: &str) -> Value {
    let text = kubectl(api, &["-n", ns, "get", kind, name, "-o", "json"], None);
    let object: Value = serde_json::from_str(&text).unwrap();
    object["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == which).cloned())
        .unwrap_or(Value::Null)
}

/// The chart's RBAC rule files: the one source of truth for what each
/// component may do (`charts/llmpool/files/rbac/`).
fn rules(file: &str) -> String {
    let path = format!(
        "{}/../charts/llmpool/files/rbac/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).unwrap()
}

/// A Role named `name` in `ns` with `rules` (YAML list), bound to user `name`.
fn role(name: &str, ns: &str, rules: &str) -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: {name}, namespace: {ns}}}
rules:
{rules}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {name}, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {name}}}
subjects: [{{kind: User, name: {name}}}]
"
    )
}

/// The Role a proxy gets from the chart: its two objects only.
fn proxy_role(ns: &str) -> String {
    role(
        "llmpool-proxy",
        ns,
        &rules("proxy-rules.yaml").replace("NAME-", "llmpool-"),
    )
}

/// The operator's rights in one namespace (its own: the Lease too), as the
/// chart grants them.
fn operator_role(ns: &str) -> String {
    let all = format!(
        "{}{}",
        rules("operator-rules.yaml"),
        rules("operator-lease-rules.yaml")
    );
    role("llmpool-operator", ns, &all)
}

fn resources(base_url: &str) -> String {
    let account = |name: &str| {
        format!(
            "apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {{name: {name}}}
spec:
  provider: openai-compatible
  baseUrl: {base_url}
  credentials: {{secretRef: {{name: keys, key: {name}}}}}
---
"
        )
    };
    format!(
        "apiVersion: v1
kind: Secret
metadata: {{name: keys}}
stringData: {{a: a, b: b, c: c}}
---
{}{}{}apiVersion: llmpool.dev/v1alpha1
kind: ModelRoute
metadata: {{name: test}}
spec:
  models: [gpt-test]
  targets: [{{accounts: {{names: [a, b, c]}}}}]
",
        account("a"),
        account("b"),
        account("c")
    )
}

#[tokio::test]
async fn operator_and_two_proxies_against_a_real_api_server() {
    let api = match RealApiServer::from_env() {
        Ok(Some(api)) => api,
        Ok(None) => {
            // straight to stderr: the harness captures eprintln! of passing tests
            use std::io::Write;
            let _ = std::io::stderr().write_all(
                b"real API server tier skipped: set KUBECONFIG or KUBE_APISERVER to run it\n",
            );
            return;
        }
        Err(e) => panic!("the real API server named by the environment is unusable: {e}"),
    };
    let ns = format!("llmpool-e2e-{}", std::process::id());
    kubectl(&api, &["create", "namespace", &ns], None);
    kubectl(&api, &["apply", "-f", &crd_dir()], None);
    kubectl(
        &api,
        &[
            "wait",
            "--for=condition=established",
            "--timeout=60s",
            "crd/llmaccounts.llmpool.dev",
            "crd/modelroutes.llmpool.dev",
            "crd/llmclients.llmpool.dev",
        ],
        None,
    );

    // the schema and its CEL rules, as the API server enforces them
    let bad = [
        (
            "kind: LlmAccount\nmetadata: {name: x}\nspec: {provider: azure}",
            "Unsupported value: \"azure\"",
        ),
        (
            "kind: LlmAccount\nmetadata: {name: x}\nspec: {provider: openai-compatible}",
            "openai-compatible accounts need a baseUrl",
        ),
        (
            "kind: LlmAccount\nmetadata: {name: x}\nspec: {provider: openai}",
            "need credentials",
        ),
        (
            "kind: LlmAccount\nmetadata: {name: x}\nspec: {provider: openai, credentials: {secretRef: {name: s, key: k}, oauth: {tokenUrl: \"https://t\", clientId: c, refreshTokenRef: {name: r, key: k}}}}",
            "exactly one of",
        ),
        (
            "kind: LlmAccount\nmetadata: {name: x}\nspec: {provider: openai, credentials: {secretRef: {name: s, key: k}}, limits: {requestsPerMinute: 0}}",
            "should be greater than or equal to 1",
        ),
        (
            "kind: ModelRoute\nmetadata: {name: x}\nspec: {models: [m], targets: [{accounts: {names: [a]}}], cooldown: {default: 2h, max: 1h}}",
            "must not be longer than cooldown.max",
        ),
        (
            "kind: ModelRoute\nmetadata: {name: x}\nspec: {models: [m], targets: [{accounts: {}}]}",
            "name accounts or give a label selector",
        ),
    ];
    for (doc, message) in bad {
        let said = refused(
            &api,
            &ns,
            &format!("apiVersion: llmpool.dev/v1alpha1\n{doc}\n"),
        );
        assert!(said.contains(message), "{doc}\n-> {said}");
    }

    let mock = MockProvider::start().await.unwrap();
    kubectl(
        &api,
        &["-n", &ns, "apply", "-f", "-"],
        Some(&resources(&mock.base_url())),
    );
    kubectl(&api, &["apply", "-f", "-"], Some(&proxy_role(&ns)));
    kubectl(&api, &["apply", "-f", "-"], Some(&operator_role(&ns)));
    // the operator runs with exactly the rights the README gives it
    let operator_config = api
        .user("llmpool-operator", &ns)
        .unwrap()
        .display()
        .to_string();
    let operator = Process::operator(
        &["--namespace", &ns],
        &[("KUBECONFIG", operator_config.as_str())],
    )
    .unwrap_or_else(|f| panic!("{f:?}"));
    // the proxies run as a user that may read only their two objects
    let proxy_config = api
        .user("llmpool-proxy", &ns)
        .unwrap()
        .display()
        .to_string();
    let http = reqwest::Client::new();
    let mut proxies = Vec::new();
    for _ in 0..2 {
        let p = Process::launch(
            &["--kube", "--namespace", &ns],
            &[("KUBECONFIG", proxy_config.as_str())],
        )
        .unwrap_or_else(|f| panic!("{f:?}"));
        proxies.push(p);
    }
    for p in &proxies {
        let url = p.url("/readyz");
        eventually("proxy ready", || {
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(url).send().await.unwrap().status() == 200 }
        })
        .await;
    }
    let seen = served(&http, &proxies, 6).await;
    assert_eq!(seen.len(), 3, "{seen:?}");

    // status and events
    assert_eq!(condition(&api, &ns, "llma", "a", "Ready")["status"], "True");
    assert_eq!(
        condition(&api, &ns, "mroute", "test", "Ready")["status"],
        "True"
    );
    let table = kubectl(&api, &["-n", &ns, "get", "mroute", "test"], None);
    assert!(
        table.contains("TARGETS") && table.contains(" 3 "),
        "{table}"
    );
    let events = kubectl(&api, &["-n", &ns, "get", "events"], None);
    assert!(events.contains("Serving"), "{events}");

    // an edit with kubectl reaches both proxies within 2 s
    kubectl(
        &api,
        &[
            "-n",
            &ns,
            "patch",
            "llma",
            "b",
            "--type=merge",
            "-p",
            r#"{"spec":{"disabled":true}}"#,
        ],
        None,
    );
    let took = until_served_by(&http, &proxies, &["a", "c"]).await;
    assert!(took < Duration::from_secs(2), "the edit took {took:?}");

    // a deletion too
    kubectl(&api, &["-n", &ns, "delete", "llma", "c"], None);
    let took = until_served_by(&http, &proxies, &["a"]).await;
    assert!(took < Duration::from_secs(2), "the deletion took {took:?}");

    // client keys: applied with kubectl, required by both proxies within 2 s
    let (team_a, team_b) = ("sk-team-a-5b0e9c3d7f12a846", "sk-team-b-c2864f1a0e9d3b75");
    let clients = format!(
        "apiVersion: v1
kind: Secret
metadata: {{name: client-keys}}
stringData: {{team-a: {team_a}, team-b: {team_b}}}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmClient
metadata: {{name: team-a}}
spec:
  keySecretRef: {{name: client-keys, key: team-a}}
  models: [gpt-test]
  limits: {{requestsPerMinute: 100}}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmClient
metadata: {{name: team-b}}
spec: {{keySecretRef: {{name: client-keys, key: team-b}}}}
"
    );
    let status_with = |key: Option<&'static str>| {
        let http = http.clone();
        let urls: Vec<String> = proxies
            .iter()
            .map(|p| p.url("/v1/chat/completions"))
            .collect();
        async move {
            let mut statuses = Vec::new();
            for url in urls {
                let mut req = http.post(url).json(&chat_body("gpt-test", false));
                if let Some(key) = key {
                    req = req.bearer_auth(key);
                }
                statuses.push(req.send().await.unwrap().status().as_u16());
            }
            statuses
        }
    };
    kubectl(&api, &["-n", &ns, "apply", "-f", "-"], Some(&clients));
    let started = std::time::Instant::now();
    eventually("both proxies require a client key", || async {
        status_with(None).await == [401, 401] && status_with(Some(team_a)).await == [200, 200]
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let table = kubectl(&api, &["-n", &ns, "get", "llmc", "team-a"], None);
    assert!(
        table.contains("MODELS") && table.contains("RPM") && table.contains("100"),
        "{table}"
    );
    eventually("team-a is Ready", || async {
        condition(&api, &ns, "llmc", "team-a", "Ready")["status"] == "True"
    })
    .await;
    // deleting a client revokes its key within 2 s; the other keeps working
    kubectl(&api, &["-n", &ns, "delete", "llmc", "team-a"], None);
    let started = std::time::Instant::now();
    eventually("team-a's key revoked", || async {
        status_with(Some(team_a)).await == [401, 401]
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(status_with(Some(team_b)).await, [200, 200]);
    kubectl(&api, &["-n", &ns, "delete", "llmc", "team-b"], None);
    eventually("open again", || async {
        status_with(None).await == [200, 200]
    })
    .await;

    // valid for the schema, not for compile(): a clear condition, nothing else changes
    let missing = "apiVersion: llmpool.dev/v1alpha1\nkind: LlmAccount\nmetadata: {name: d}\nspec: {provider: openai, credentials: {secretRef: {name: openai-key, key: apiKey}}}\n";
    kubectl(&api, &["-n", &ns, "apply", "-f", "-"], Some(missing));
    eventually("d explains itself", || async {
        let c = condition(&api, &ns, "llma", "d", "CredentialsResolved");
        c["status"] == "False"
            && c["message"]
                .as_str()
                .is_some_and(|m| m.contains("Secret openai-key"))
    })
    .await;
    assert_eq!(until_served_by(&http, &proxies, &["a"]).await.as_secs(), 0);

    // the credentials Secret deleted by hand comes back
    kubectl(
        &api,
        &["-n", &ns, "delete", "secret", "llmpool-credentials"],
        None,
    );
    eventually("credentials Secret recreated", || async {
        api.kubectl(&["-n", &ns, "get", "secret", "llmpool-credentials"], None)
            .unwrap()
            .status
            .success()
    })
    .await;

    let denied: Vec<String> = operator
        .logs()
        .into_iter()
        .filter(|l| l.contains("forbidden") || l.contains("Forbidden"))
        .collect();
    assert!(
        denied.is_empty(),
        "the documented RBAC is not enough: {denied:?}"
    );

    kubectl(&api, &["delete", "namespace", &ns, "--wait=false"], None);
}

/// A kubeconfig for `token` on the admin kubeconfig's server.
fn token_kubeconfig(
    api: &RealApiServer,
    token: &str,
    namespace: &str,
    dir: &std::path::Path,
    name: &str,
) -> String {
    let server = kubectl(
        api,
        &[
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
        None,
    );
    let ca = kubectl(
        api,
        &[
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority}",
        ],
        None,
    );
    let ca_data = kubectl(
        api,
        &[
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ],
        None,
    );
    let authority = if ca_data.is_empty() {
        format!("certificate-authority: \"{ca}\"")
    } else {
        format!("certificate-authority-data: {ca_data}")
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"{server}\", {authority}}}\nusers:\n- name: u\n  user: {{token: \"{token}\"}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u, namespace: {namespace}}}\ncurrent-context: x\n"
    );
    let path = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn the_chart_installs_and_its_service_accounts_are_enough() {
    let api = match RealApiServer::from_env() {
        Ok(Some(api)) => api,
        Ok(None) => {
            use std::io::Write;
            let _ = std::io::stderr().write_all(
                b"real API server chart tier skipped: set KUBECONFIG or KUBE_APISERVER to run it\n",
            );
            return;
        }
        Err(e) => panic!("the real API server named by the environment is unusable: {e}"),
    };
    let helm = std::env::var("LLMPOOL_HELM").expect("scripts/test.sh sets LLMPOOL_HELM");
    let ns = format!("llmpool-chart-{}", std::process::id());
    let chart = format!("{}/../charts/llmpool", env!("CARGO_MANIFEST_DIR"));
    // on a shared cluster the CRDs may exist already, owned by nobody
    let own_server = std::env::var("KUBE_APISERVER").is_ok();
    let out = std::process::Command::new(&helm)
        .args([
            "install",
            "llmpool",
            &chart,
            "--namespace",
            &ns,
            "--create-namespace",
        ])
        .args([
            "--set",
            "redis.mode=none",
            "--set",
            "proxy.replicas=1",
            "--set",
            "proxy.pdb.enabled=false",
        ])
        .args(["--set", &format!("crds.enabled={own_server}")])
        .env("KUBECONFIG", api.kubeconfig())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if !own_server {
        kubectl(&api, &["apply", "-f", &crd_dir()], None);
    }
    kubectl(
        &api,
        &[
            "wait",
            "--for=condition=established",
            "--timeout=60s",
            "crd/llmaccounts.llmpool.dev",
            "crd/modelroutes.llmpool.dev",
        ],
        None,
    );

    // every example applies, as the server validates it
    let examples_ns = format!("{ns}-examples");
    kubectl(&api, &["create", "namespace", &examples_ns], None);
    let examples = format!("{}/../manifests/examples", env!("CARGO_MANIFEST_DIR"));
    kubectl(&api, &["-n", &examples_ns, "apply", "-f", &examples], None);

    // the operator and a proxy out of cluster, as the chart's ServiceAccounts
    let dir = tempfile::tempdir().unwrap();
    let token = |sa: &str| {
        kubectl(&api, &["-n", &ns, "create", "token", sa], None)
            .trim()
            .to_owned()
    };
    let operator_kc = token_kubeconfig(
        &api,
        &token("llmpool-operator"),
        &ns,
        dir.path(),
        "operator",
    );
    let proxy_kc = token_kubeconfig(&api, &token("llmpool-proxy"), &ns, dir.path(), "proxy");
    let mock = MockProvider::start().await.unwrap();
    kubectl(
        &api,
        &["-n", &ns, "apply", "-f", "-"],
        Some(&resources(&mock.base_url())),
    );
    let operator = Process::operator(
        &["--namespace", &ns, "--name", "llmpool"],
        &[("KUBECONFIG", operator_kc.as_str())],
    )
    .unwrap_or_else(|f| panic!("{f:?}"));
    let proxy = Process::launch(
        &["--kube", "--name", "llmpool", "--namespace", &ns],
        &[("KUBECONFIG", proxy_kc.as_str())],
    )
    .unwrap_or_else(|f| panic!("{f:?}"));
    let http = reqwest::Client::new();
    let ready = proxy.url("/readyz");
    eventually("the proxy loaded the operator's objects", || {
        let (http, ready) = (http.clone(), ready.clone());
        async move { http.get(ready).send().await.unwrap().status() == 200 }
    })
    .await;
    let key = kubectl(
        &api,
        &[
            "-n",
            &ns,
            "get",
            "secret",
            "llmpool-client-keys",
            "-o",
            "jsonpath={.data.keys}",
        ],
        None,
    );
    use base64::Engine;
    let key = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .unwrap(),
    )
    .unwrap();
    let r = http
        .post(proxy.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&chat_body("gpt-test", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);

    // the proxy's account reads its two objects and nothing else
    let as_proxy = |args: &[&str]| {
        std::process::Command::new("kubectl")
            .env("KUBECONFIG", &proxy_kc)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(
        as_proxy(&["-n", &ns, "get", "configmap", "llmpool-routes"])
            .status
            .success()
    );
    for forbidden in [
        &["-n", ns.as_str(), "get", "secrets"][..],
        &["-n", ns.as_str(), "get", "secret", "llmpool-client-keys"][..],
        &["-n", ns.as_str(), "get", "llmaccounts"][..],
    ] {
        let out = as_proxy(forbidden);
        assert!(!out.status.success(), "{forbidden:?} allowed");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("forbidden"),
            "{forbidden:?}"
        );
    }
    // the operator's rights are enough for everything it did
    tokio::time::sleep(Duration::from_secs(2)).await;
    let denied: Vec<String> = operator
        .logs()
        .into_iter()
        .filter(|l| l.contains("forbidden"))
        .collect();
    assert!(
        denied.is_empty(),
        "the chart's operator RBAC is not enough: {denied:?}"
    );
    kubectl(
        &api,
        &["delete", "namespace", &ns, &examples_ns, "--wait=false"],
        None,
    );
}
