//! The Helm chart, the plain manifests, the images and the dashboards, as a
//! platform engineer would check them before installing: `helm lint`, a
//! matrix of value sets rendered and inspected (least-privilege RBAC, probes
//! on real endpoints, grace periods, security contexts, CRDs identical to
//! crds/yaml, no secret in a ConfigMap), the schema refusing typos,
//! manifests/install.yaml in sync, the examples valid, the Dockerfile's
//! rules, and every metric a dashboard or alert queries exported by the real
//! proxy or operator. scripts/test.sh installs helm and sets LLMPOOL_HELM;
//! under CI it is required.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use llmpool_e2e::harness::{ConfigDir, Process};
use llmpool_e2e::kubeapi::FakeApiServer;
use llmpool_e2e::mock::MockProvider;
use serde_json::Value;

use crate::common::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> PathBuf {
    repo().join("charts/llmpool")
}

fn helm() -> Option<String> {
    match std::env::var("LLMPOOL_HELM") {
        Ok(h) => Some(h),
        Err(_) if std::env::var("CI").is_ok() => {
            panic!("LLMPOOL_HELM must be set under CI (scripts/test.sh installs helm)")
        }
        Err(_) => {
            eprintln!("chart test skipped: LLMPOOL_HELM is not set (scripts/test.sh sets it up)");
            None
        }
    }
}

/// `helm template` with `args`; Ok(objects) or Err(helm's message).
fn render(helm: &str, args: &[&str]) -> Result<Vec<Value>, String> {
    let out = Command::new(helm)
        .args(["template", "llmpool"])
        .arg(chart())
        .args(["--namespace", "pool"])
        .args(args)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).unwrap();
    Ok(docs(&text))
}

fn docs(text: &str) -> Vec<Value> {
    let mut reader = text.as_bytes();
    serde_saphyr::read::<_, Value>(&mut reader)
        .map(|d| d.unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}")))
        .filter(Value::is_object)
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

fn of_kind<'a>(objects: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
    objects.iter().filter(move |o| o["kind"] == kind)
}

const MATRIX: &[&[&str]] = &[
    &[],
    &["--set", "redis.mode=none", "--set", "proxy.replicas=1"],
    &[
        "--set",
        "redis.mode=external",
        "--set",
        "redis.external.url=rediss://redis.example:6380",
        "--set",
        "redis.external.caSecret=redis-ca",
    ],
    &["--set", "proxy.hpa.enabled=true"],
    &["--set", "operator.watch.allNamespaces=true"],
    &["--set", "operator.watch.namespaces={team-a,team-b}"],
    &["--set", "demo.enabled=true"],
    &["--set", "networkPolicy.enabled=true"],
    &[
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.prometheusRule.enabled=true",
    ],
];

fn rules(role: &Value) -> Vec<Value> {
    role["rules"].as_array().cloned().unwrap_or_default()
}

#[test]
fn the_chart_lints_and_every_value_set_renders_a_least_privilege_hardened_install() {
    let Some(helm) = helm() else { return };
    let lint = Command::new(&helm)
        .args(["lint", "--strict"])
        .arg(chart())
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stdout)
    );
    for entry in std::fs::read_dir(repo().join("crds/yaml")).unwrap() {
        let path = entry.unwrap().path();
        let copy = chart().join("files/crds").join(path.file_name().unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            std::fs::read_to_string(&copy).unwrap_or_default(),
            "{} differs from crds/yaml: copy it",
            copy.display()
        );
    }
    let crds_on_disk: Vec<Value> = std::fs::read_dir(repo().join("crds/yaml"))
        .unwrap()
        .map(|e| docs(&std::fs::read_to_string(e.unwrap().path()).unwrap()).remove(0))
        .collect();
    for args in MATRIX {
        let objects = render(&helm, args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let at = format!("{args:?}");

        // the proxy reads exactly its two objects, nothing else
        let proxy_role = find(&objects, "Role", "llmpool-proxy").unwrap();
        assert_eq!(
            serde_json::to_value(rules(proxy_role)).unwrap(),
            serde_json::json!([
                {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["llmpool-routes"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["llmpool-credentials"], "verbs": ["get", "list", "watch"]}
            ]),
            "{at}"
        );
        // the operator: namespaced Roles unless every namespace is watched
        let all = args.contains(&"operator.watch.allNamespaces=true");
        assert_eq!(
            of_kind(&objects, "ClusterRole").count(),
            usize::from(all),
            "{at}"
        );
        let operator_roles: Vec<&Value> = of_kind(&objects, "Role")
            .filter(|r| r["metadata"]["name"] == "llmpool-operator")
            .collect();
        let expected_roles = if all {
            0
        } else if args.contains(&"operator.watch.namespaces={team-a,team-b}") {
            2
        } else {
            1
        };
        assert_eq!(operator_roles.len(), expected_roles, "{at}");
        for role in operator_roles
            .iter()
            .copied()
            .chain(of_kind(&objects, "ClusterRole"))
        {
            for rule in rules(role) {
                let verbs = rule["verbs"].to_string();
                assert!(
                    !verbs.contains('*') && !rule["resources"].to_string().contains('*'),
                    "{at}: {rule}"
                );
            }
        }
        let lease = find(&objects, "Role", "llmpool-operator-lease").unwrap();
        assert_eq!(
            rules(lease)[0]["resources"],
            serde_json::json!(["leases"]),
            "{at}"
        );

        // probes on real endpoints, grace longer than the shutdown grace
        let proxy = find(&objects, "Deployment", "llmpool-proxy").unwrap();
        let spec = &proxy["spec"]["template"]["spec"];
        let c = &spec["containers"][0];
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz", "{at}");
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz", "{at}");
        // on the admin listener, outside the data port's connection cap
        for probe in ["readinessProbe", "livenessProbe"] {
            assert_eq!(c[probe]["httpGet"]["port"], "admin", "{at}");
        }
        assert!(
            c["args"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "--admin-listen=0.0.0.0:9090"),
            "{at}"
        );
        let grace: u64 = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|a| a.as_str()?.strip_prefix("--shutdown-grace="))
            .and_then(|g| g.trim_end_matches('s').parse().ok())
            .unwrap();
        let pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
            .as_u64()
            .unwrap();
        assert!(
            spec["terminationGracePeriodSeconds"].as_u64().unwrap() > grace + pre_stop,
            "{at}"
        );

        // every pod hardened
        for o in objects
            .iter()
            .filter(|o| matches!(o["kind"].as_str(), Some("Deployment" | "StatefulSet")))
        {
            let pod = &o["spec"]["template"]["spec"];
            assert_eq!(
                pod["securityContext"]["runAsNonRoot"], true,
                "{at}: {}",
                o["metadata"]["name"]
            );
            assert_eq!(
                pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
                "{at}"
            );
            for c in pod["containers"].as_array().unwrap() {
                let sc = &c["securityContext"];
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{at}: {}", c["name"]);
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{at}: {}", c["name"]);
                assert_eq!(
                    sc["capabilities"]["drop"],
                    serde_json::json!(["ALL"]),
                    "{at}"
                );
                assert!(
                    c["resources"]["requests"].is_object(),
                    "{at}: {} has no requests",
                    c["name"]
                );
            }
        }

        // CRDs exactly as crds/yaml (the chart's copies are byte-identical),
        // kept on uninstall
        let crds: Vec<&Value> = of_kind(&objects, "CustomResourceDefinition").collect();
        assert_eq!(crds.len(), crds_on_disk.len(), "{at}");
        for crd in crds {
            assert_eq!(
                crd["metadata"]["annotations"]["helm.sh/resource-policy"],
                "keep"
            );
            let mut stripped = crd.clone();
            stripped["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("annotations");
            assert!(
                crds_on_disk.contains(&stripped),
                "{at}: {} differs from crds/yaml",
                crd["metadata"]["name"]
            );
        }

        // no Secret value ends up in a ConfigMap
        let b64 = base64::engine::general_purpose::STANDARD;
        let secrets: Vec<String> = of_kind(&objects, "Secret")
            .flat_map(|s| s["data"].as_object().cloned().unwrap_or_default())
            .filter_map(|(_, v)| {
                use base64::Engine;
                String::from_utf8(b64.decode(v.as_str()?).ok()?).ok()
            })
            .chain(
                of_kind(&objects, "Secret")
                    .flat_map(|s| s["stringData"].as_object().cloned().unwrap_or_default())
                    .filter_map(|(_, v)| v.as_str().map(str::to_owned)),
            )
            .collect();
        for cm in of_kind(&objects, "ConfigMap") {
            let text = cm["data"].to_string();
            for s in &secrets {
                assert!(
                    !text.contains(s.as_str()),
                    "{at}: a Secret value is in ConfigMap {}",
                    cm["metadata"]["name"]
                );
            }
        }
    }
}

#[test]
fn the_schema_and_the_chart_refuse_what_cannot_work() {
    let Some(helm) = helm() else { return };
    for (args, expected) in [
        (
            &["--set", "proxy.replica=3"][..],
            "additional properties 'replica' not allowed",
        ),
        (
            &["--set", "proxy.replicas=two"][..],
            "got string, want integer",
        ),
        (&["--set", "redis.mode=memcached"][..], "redis/mode"),
        (&["--set", "image.digest=latest"][..], "image/digest"),
        (&["--set", "redis.mode=none"][..], "needs shared state"),
        (
            &["--set", "redis.mode=external"][..],
            "needs redis.external.url",
        ),
        (
            &["--set", "proxy.terminationGracePeriodSeconds=20"][..],
            "must exceed",
        ),
    ] {
        let err = render(&helm, args).expect_err(&format!("{args:?} rendered"));
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn install_yaml_is_the_chart_rendered_and_carries_no_secret() {
    let Some(helm) = helm() else { return };
    let dir = tempfile::tempdir().unwrap();
    // render into a copy of the repository's layout: the script writes manifests/
    let copy = dir.path();
    std::fs::create_dir_all(copy.join("manifests")).unwrap();
    std::fs::create_dir_all(copy.join("scripts")).unwrap();
    std::fs::copy(
        repo().join("scripts/render-manifests.sh"),
        copy.join("scripts/render-manifests.sh"),
    )
    .unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(chart().parent().unwrap())
        .arg(copy)
        .status()
        .unwrap();
    assert!(status.success());
    let out = Command::new("bash")
        .arg(copy.join("scripts/render-manifests.sh"))
        .env("LLMPOOL_HELM", &helm)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = std::fs::read_to_string(copy.join("manifests/install.yaml")).unwrap();
    let committed = std::fs::read_to_string(repo().join("manifests/install.yaml")).unwrap();
    assert!(
        fresh == committed,
        "manifests/install.yaml is stale: run scripts/render-manifests.sh"
    );
    let objects = docs(&committed);
    assert_eq!(
        of_kind(&objects, "Secret").count(),
        0,
        "a committed manifest must carry no Secret"
    );
    assert_eq!(
        of_kind(&objects, "Pod").count(),
        0,
        "no test hook in plain manifests"
    );
    assert!(
        objects
            .iter()
            .all(|o| o["kind"] == "CustomResourceDefinition"
                || o["kind"].as_str().is_some_and(|k| k.starts_with("Cluster"))
                || o["metadata"]["namespace"] == "llmpool")
    );
}

#[test]
fn the_examples_compile() {
    let dir = ConfigDir::new().unwrap();
    for entry in std::fs::read_dir(repo().join("manifests/examples")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        dir.write(&name, &std::fs::read_to_string(&path).unwrap())
            .unwrap();
    }
    let failure = Process::start(dir.path(), &[], &[])
        .err()
        .expect("OAuth needs the operator in local mode");
    // the only problem local mode finds is the OAuth account it cannot refresh
    let errors: Vec<&str> = failure
        .output
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", failure.output);
    assert!(
        errors[0].contains("oauth.yaml") && errors[0].contains("no access token yet"),
        "{}",
        failure.output
    );
    std::fs::remove_file(dir.path().join("oauth.yaml")).unwrap();
    Process::start(dir.path(), &[], &[]).unwrap_or_else(|f| panic!("examples: {}", f.output));
}

#[test]
fn the_dockerfile_keeps_the_rules_that_matter() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 4, "a build stage and three images");
    for from in &froms {
        // a digest, or a tag naming a version
        let image = from.split_whitespace().nth(1).unwrap();
        let pinned = match image.split_once("@sha256:") {
            Some((_, digest)) => {
                digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit())
            }
            None => image
                .rsplit_once(':')
                .is_some_and(|(_, tag)| tag != "latest" && tag.chars().any(|c| c.is_ascii_digit())),
        };
        assert!(pinned, "{from}: pin a version or a digest");
    }
    // every image stage runs as an unprivileged user
    for stage in text.split("\nFROM ").skip(2) {
        let user = stage
            .lines()
            .find_map(|l| l.strip_prefix("USER "))
            .unwrap_or_else(|| panic!("no USER in {stage}"));
        assert!(
            !user.starts_with('0') && !user.starts_with("root"),
            "{user}"
        );
    }
    assert!(text.contains("--locked"), "builds must use Cargo.lock");
    assert!(
        text.contains("--target x86_64-unknown-linux-gnu"),
        "the images' target"
    );
    for line in text
        .lines()
        .filter(|l| l.starts_with("ENV ") || l.starts_with("ARG "))
    {
        let upper = line.to_ascii_uppercase();
        assert!(
            !["KEY", "TOKEN", "PASSWORD", "SECRET"]
                .iter()
                .any(|w| upper.contains(w)),
            "{line}"
        );
    }
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l.trim() == "target/")
            && ignore.lines().any(|l| l.trim() == ".git/")
    );
}

#[test]
fn the_dashboards_and_alerts_are_what_their_generator_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .arg(chart().join("dashboards/generate.py"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["pool.json", "gateway.json", "operator.json", "alerts.json"] {
        let committed = if name == "alerts.json" {
            chart().join("files").join(name)
        } else {
            chart().join("dashboards").join(name)
        };
        assert_eq!(
            std::fs::read_to_string(dir.path().join(name)).unwrap(),
            std::fs::read_to_string(&committed).unwrap(),
            "{name} is stale: run charts/llmpool/dashboards/generate.py"
        );
    }
}

/// Metric names in PromQL: identifiers starting with `llmpool_`, without
/// the histogram suffixes.
fn queried_metrics(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("llmpool_") {
        let start = i + at;
        let end = start
            + text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(text.len() - start);
        let preceded =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if !preceded {
            let name = &text[start..end];
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.insert(base.to_owned());
        }
        i = end;
    }
    names
}

fn exported(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn every_metric_a_dashboard_or_alert_queries_is_exported() {
    let mut queried = BTreeSet::new();
    for file in [
        "dashboards/pool.json",
        "dashboards/gateway.json",
        "dashboards/operator.json",
        "files/alerts.json",
    ] {
        queried.extend(queried_metrics(
            &std::fs::read_to_string(chart().join(file)).unwrap(),
        ));
    }
    assert!(queried.len() > 20, "{queried:?}");

    // a proxy with traffic: answers, streams, a 429 (cooldown), a zero
    // remaining budget, a refused key (blocked), gateway errors, a fallback
    // tier, config reloads applied and rejected
    let accounts = [
        ("busy", "busy?status=429&retry_after=60", ""),
        (
            "tight",
            "tight?remaining=0&reset=30s",
            "  limits: {requestsPerMinute: 1000, tokensPerMinute: 1000000, maxConcurrency: 10, dailyTokens: 10000000}\n",
        ),
        ("bad", "bad?status=401", ""),
        ("ok", "ok", ""),
    ];
    let spec = "  models: [gpt-test]\n  strategy: sticky\n  retry: {maxAttempts: 4}\n  targets:\n    - accounts: {names: [busy, tight, bad]}\n    - accounts: {names: [ok]}\n";
    let env = Env::start(&accounts, spec).await;
    for stream in [false, true, false, true] {
        let r = env.chat(&chat_body("gpt-test", stream)).await;
        let _ = r.bytes().await;
    }
    env.ask("no-such-model").await;
    let mock = MockProvider::start().await.unwrap();
    write_config(&env.dir, &mock, &accounts, spec);
    env.dir
        .write(
            "broken.yaml",
            "apiVersion: llmpool.dev/v1alpha1\nkind: ModelRoute\nmetadata: {name: x}\nspec: {}\n",
        )
        .unwrap();
    eventually("a rejected reload", || async {
        env.metrics().await.contains("result=\"rejected\"")
    })
    .await;
    let mut proxy_metrics = exported(&env.metrics().await);

    // then a client key (LlmClient) and a request made with it
    std::fs::remove_file(env.dir.path().join("broken.yaml")).unwrap();
    let key = "sk-dashboard-team-5e0c2a9f71b4";
    let clients = llmpool_e2e::harness::docs(&[
        llmpool_e2e::harness::secret("client-keys", &[("k", key)]),
        llmpool_e2e::harness::client(
            "team",
            "client-keys",
            "k",
            "  limits: {requestsPerMinute: 100, dailyTokens: 1000000}\n",
        ),
    ]);
    env.dir.write("clients.yaml", &clients).unwrap();
    eventually("a client's request is counted", || async {
        let url = env.proxy.url("/v1/chat/completions");
        let r = env
            .http
            .post(url)
            .bearer_auth(key)
            .json(&chat_body("gpt-test", false));
        let _ = r.send().await.unwrap().bytes().await;
        env.metrics().await.contains("llmpool_client_tokens_total")
    })
    .await;
    proxy_metrics.extend(exported(&env.metrics().await));

    // an operator against the fake API server, with an account and a route
    // to reconcile
    let api = FakeApiServer::start().await.unwrap();
    api.apply(
        "secrets",
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "keys", "namespace": "team-a"}, "data": {"k": "c2stdGVzdA=="}}),
    );
    api.apply(
        "llmaccounts",
        serde_json::json!({"apiVersion": "llmpool.dev/v1alpha1", "kind": "LlmAccount",
            "metadata": {"name": "a", "namespace": "team-a"},
            "spec": {"provider": "openai-compatible", "baseUrl": mock.base_url(),
                     "credentials": {"secretRef": {"name": "keys", "key": "k"}}}}),
    );
    api.apply(
        "modelroutes",
        serde_json::json!({"apiVersion": "llmpool.dev/v1alpha1", "kind": "ModelRoute",
            "metadata": {"name": "r", "namespace": "team-a"},
            "spec": {"models": ["m"], "targets": [{"accounts": {"names": ["a"]}}]}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api
        .kubeconfig(dir.path(), "team-a")
        .unwrap()
        .display()
        .to_string();
    let operator = Process::operator(&[], &[("KUBECONFIG", kubeconfig.as_str())]).unwrap();
    let http = reqwest::Client::new();
    eventually("the operator reconciled", || async {
        metrics_of(&http, &operator)
            .await
            .contains("llmpool_operator_reconciles_total")
    })
    .await;
    let operator_metrics = exported(&metrics_of(&http, &operator).await);

    // reconcile errors appear only after a failed reconcile, which the fake
    // API server cannot cause; the operator registers the family
    let rare = ["llmpool_operator_reconcile_errors_total"];
    let source = std::fs::read_to_string(repo().join("operator/src/metrics.rs")).unwrap();
    let missing: Vec<&String> = queried
        .iter()
        .filter(|m| !proxy_metrics.contains(*m) && !operator_metrics.contains(*m))
        .filter(|m| !(rare.contains(&m.as_str()) && source.contains(&format!("\"{m}\""))))
        .collect();
    assert!(
        missing.is_empty(),
        "queried but not exported: {missing:?}\nproxy: {proxy_metrics:?}\noperator: {operator_metrics:?}"
    );
}

/// `kubectl apply --dry-run=client` of a file, against the discovery-only
/// server; returns kubectl's output.
fn dry_run(server: &str, file: &std::path::Path) -> (bool, String) {
    let out = Command::new("kubectl")
        .args([
            "apply",
            "--dry-run=client",
            "--validate=false",
            "--server",
            server,
        ])
        .arg("-f")
        .arg(file)
        .env("KUBECONFIG", "/dev/null")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn install_yaml_and_every_example_pass_a_kubectl_client_dry_run() {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").is_err(),
            "kubectl is on every machine of this kind"
        );
        eprintln!("kubectl dry run skipped: no kubectl");
        return;
    }
    let (addr, _server) = llmpool_e2e::discovery::start().await.unwrap();
    let server = format!("http://{addr}");
    let mut files = vec![repo().join("manifests/install.yaml")];
    for entry in std::fs::read_dir(repo().join("manifests/examples")).unwrap() {
        files.push(entry.unwrap().path());
    }
    for file in files {
        let server = server.clone();
        let (ok, text) = tokio::task::spawn_blocking({
            let file = file.clone();
            move || dry_run(&server, &file)
        })
        .await
        .unwrap();
        assert!(
            ok && text.contains("(dry run)"),
            "{}: {text}",
            file.display()
        );
    }
}
