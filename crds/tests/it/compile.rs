use llmpool_crds::manifest::Resources;
use llmpool_crds::{Compiled, Severity, Strategy};

fn compile(yaml: &str) -> Compiled {
    let mut r = Resources::default();
    r.add_yaml(yaml, "test.yaml");
    r.compile()
}

fn messages(c: &Compiled) -> Vec<String> {
    c.diagnostics.iter().map(ToString::to_string).collect()
}

const GOOD: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: keys}
stringData: {a: sk-aaa, b: sk-bbb}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {name: acct-a, labels: {pool: gpt}}
spec:
  provider: openai
  credentials: {secretRef: {name: keys, key: a}}
  limits: {requestsPerMinute: 60, maxConcurrency: 4}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {name: acct-b, labels: {pool: gpt}}
spec:
  provider: openai-compatible
  baseUrl: https://llm.internal/v1/
  credentials: {secretRef: {name: keys, key: b}}
  weight: 3
---
apiVersion: llmpool.dev/v1alpha1
kind: ModelRoute
metadata: {name: gpt}
spec:
  models: ["gpt-4o", "gpt-4o-*"]
  strategy: sticky
  targets:
    - accounts: {selector: {matchLabels: {pool: gpt}}}
    - accounts: {names: [acct-a]}
      model: gpt-4o-mini
  retry: {maxAttempts: 2, firstByteTimeout: 1500ms}
  cooldown: {default: 10s, max: 5m}
"#;

#[test]
fn a_valid_configuration_compiles_with_every_default_resolved() {
    let c = compile(GOOD);
    assert!(!c.has_errors(), "{:?}", messages(&c));
    let a = &c.table.accounts["acct-a"];
    assert_eq!(a.base_url, "https://api.openai.com/v1");
    assert_eq!(a.limits.requests_per_minute, Some(60));
    assert_eq!(
        c.table.accounts["acct-b"].base_url,
        "https://llm.internal/v1"
    );
    assert_eq!(c.table.accounts["acct-b"].weight, 3);
    assert_eq!(c.credentials.get("acct-a"), Some("sk-aaa"));
    let r = &c.table.routes[0];
    assert!(r.ready);
    assert_eq!(r.strategy, Strategy::Sticky);
    assert_eq!(r.tiers[0].accounts, ["acct-a", "acct-b"]);
    assert_eq!(r.tiers[1].model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(r.retry.max_attempts, 2);
    assert_eq!(r.retry.first_byte_timeout_ms, 1500);
    assert_eq!(r.cooldown.default_ms, 10_000);
    assert_eq!(r.cooldown.max_ms, 300_000);
    assert_eq!(r.session.header, "x-session-id");
}

#[test]
fn the_table_survives_a_json_round_trip_without_secrets() {
    let c = compile(GOOD);
    let json = serde_json::to_string(&c.table).unwrap();
    assert!(!json.contains("sk-aaa") && !json.contains("sk-bbb"));
    let back: llmpool_crds::RouteTable = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c.table);
    assert!(!format!("{:?}", c.credentials).contains("sk-"));
}

#[test]
fn every_problem_is_reported_at_once_with_resource_and_field() {
    let c = compile(
        r#"
apiVersion: v1
kind: Secret
metadata: {name: keys}
stringData: {a: sk-aaa}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {name: bad}
spec:
  provider: openai
  baseUrl: ftp://example.com
  credentials: {secretRef: {name: keys, key: apiKey}}
  limits: {requestsPerMinute: 0, maxConcurrency: -2}
  models: ["gpt-**"]
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {name: nosecret}
spec:
  provider: anthropic
  credentials: {secretRef: {name: missing, key: k}}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {name: plain}
spec:
  provider: openai-compatible
  baseUrl: http://vllm:8000/v1
---
apiVersion: llmpool.dev/v1alpha1
kind: ModelRoute
metadata: {name: r1}
spec:
  models: ["gpt-4o", "*"]
  targets:
    - accounts: {names: [ghost, bad]}
    - accounts: {}
  retry: {firstByteTimeout: soon}
---
apiVersion: llmpool.dev/v1alpha1
kind: ModelRoute
metadata: {name: r2}
spec:
  models: ["gpt-4o"]
  targets:
    - accounts: {names: [plain]}
"#,
    );
    let all = messages(&c).join("\n");
    for expected in [
        "error: test.yaml (document 2): LlmAccount bad: spec.baseUrl: `ftp://example.com` is not an http:// or https:// URL",
        "LlmAccount bad: spec.credentials.secretRef.key: Secret keys has no key apiKey",
        "LlmAccount bad: spec.limits.requestsPerMinute: must be greater than 0, got 0",
        "LlmAccount bad: spec.limits.maxConcurrency: must be greater than 0, got -2",
        "LlmAccount bad: spec.models[0]: `gpt-**`",
        "LlmAccount nosecret: spec.credentials.secretRef: Secret missing not found",
        "warning: test.yaml (document 4): LlmAccount plain: spec.baseUrl: `http://vllm:8000/v1` is plain http",
        "ModelRoute r1: spec.targets[0].accounts.names[0]: LlmAccount ghost not found",
        "ModelRoute r1: spec.targets[1].accounts: name accounts or give a label selector",
        "ModelRoute r1: spec.retry.firstByteTimeout: `soon` is not a duration",
        "ModelRoute r2: spec.models[0]: `gpt-4o` is already routed by ModelRoute r1",
    ] {
        assert!(all.contains(expected), "missing `{expected}` in:\n{all}");
    }
    // errors come before warnings
    let first_warning = c
        .diagnostics
        .iter()
        .position(|d| d.severity == Severity::Warning)
        .unwrap();
    assert!(c.diagnostics[..first_warning].iter().all(|d| d.is_error()));
    // the invalid account is left out, the keyless one is usable
    assert!(!c.table.accounts.contains_key("bad"));
    assert!(c.table.accounts.contains_key("plain"));
    assert!(!c.table.accounts["plain"].has_credential);
}

#[test]
fn a_route_whose_accounts_are_all_invalid_stays_visible_as_not_ready() {
    let c = compile(
        r#"
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {name: a}
spec: {provider: openai, credentials: {secretRef: {name: nope, key: k}}}
---
apiVersion: llmpool.dev/v1alpha1
kind: ModelRoute
metadata: {name: r}
spec:
  models: [gpt-4o]
  targets: [{accounts: {names: [a]}}]
"#,
    );
    let r = c.table.routes.iter().find(|r| r.name == "r").unwrap();
    assert!(!r.ready);
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains("account a in tier 0 is not usable")),
        "{:?}",
        r.problems
    );
    assert_eq!(r.models, ["gpt-4o"]);
}

#[test]
fn misspelt_fields_wrong_kinds_and_bad_yaml_are_reported() {
    let c = compile(
        r#"
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {name: a}
spec:
  provider: openai-compatible
  baseUrl: https://x/v1
  limits: {maxConcurency: 3}
---
apiVersion: llmpool.dev/v1
kind: ModelRoute
metadata: {name: r}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {name: b}
spec: {provider: azure}
---
key: [unclosed
"#,
    );
    let all = messages(&c).join("\n");
    for expected in [
        "LlmAccount a: spec.limits.maxConcurency: unknown field",
        "ModelRoute r: apiVersion: expected apiVersion llmpool.dev/v1alpha1",
        "LlmAccount b: ",
        "unknown variant `azure`",
        "file test.yaml: document 4:",
    ] {
        assert!(all.contains(expected), "missing `{expected}` in:\n{all}");
    }
}

#[test]
fn secrets_in_data_are_base64_and_string_data_wins() {
    let c = compile(
        r#"
apiVersion: v1
kind: Secret
metadata: {name: s}
data: {k: c2stZnJvbS1kYXRh, j: c2stZGF0YQ==}
stringData: {j: sk-string}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {name: a}
spec: {provider: openai, credentials: {secretRef: {name: s, key: k}}}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {name: b}
spec: {provider: openai, credentials: {secretRef: {name: s, key: j}}}
"#,
    );
    assert!(!c.has_errors(), "{:?}", messages(&c));
    assert_eq!(c.credentials.get("a"), Some("sk-from-data"));
    assert_eq!(c.credentials.get("b"), Some("sk-string"));
}

#[test]
fn selectors_support_expressions_and_reject_bad_operators() {
    let base = r#"
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {name: east, labels: {region: east, tier: gold}}
spec: {provider: openai-compatible, baseUrl: "https://e/v1"}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmAccount
metadata: {name: west, labels: {region: west}}
spec: {provider: openai-compatible, baseUrl: "https://w/v1"}
---
apiVersion: llmpool.dev/v1alpha1
kind: ModelRoute
metadata: {name: r}
spec:
  models: [m]
  targets:
"#;
    let c = compile(&format!(
        "{base}    - accounts: {{selector: {{matchExpressions: [{{key: region, operator: In, values: [east, west]}}, {{key: tier, operator: DoesNotExist}}]}}}}\n"
    ));
    assert!(!c.has_errors(), "{:?}", messages(&c));
    assert_eq!(c.table.routes[0].tiers[0].accounts, ["west"]);

    let c = compile(&format!(
        "{base}    - accounts: {{selector: {{matchExpressions: [{{key: region, operator: Near}}]}}}}\n"
    ));
    let all = messages(&c).join("\n");
    assert!(
        all.contains("spec.targets[0].accounts.selector.matchExpressions[0].operator: unknown operator `Near`"),
        "{all}"
    );
}

#[test]
fn routes_are_limited_to_sixteen_tiers_like_the_schema() {
    let tiers = "    - accounts: {names: [a]}\n".repeat(17);
    let c = compile(&format!(
        "apiVersion: llmpool.dev/v1alpha1\nkind: LlmAccount\nmetadata: {{name: a}}\nspec: {{provider: openai-compatible, baseUrl: \"https://x/v1\"}}\n---\napiVersion: llmpool.dev/v1alpha1\nkind: ModelRoute\nmetadata: {{name: r}}\nspec:\n  models: [m]\n  targets:\n{tiers}"
    ));
    assert!(
        messages(&c)
            .join("\n")
            .contains("spec.targets: at most 16 tiers, got 17"),
        "{:?}",
        messages(&c)
    );
}

/// The bundled examples must always compile cleanly.
#[test]
fn the_bundled_examples_compile_without_errors() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for dir in ["local", "openai"] {
        let mut r = Resources::default();
        let mut entries: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            r.add_yaml(
                &std::fs::read_to_string(&path).unwrap(),
                &path.display().to_string(),
            );
        }
        let c = r.compile();
        assert!(!c.has_errors(), "examples/{dir}: {:?}", messages(&c));
        assert!(c.table.routes.iter().all(|r| r.ready), "examples/{dir}");
    }
}

mod objects {
    use llmpool_crds::objects::{self, ReadError, RenderError};

    use super::{GOOD, compile};

    #[test]
    fn the_pair_round_trips_and_keeps_secrets_out_of_the_configmap() {
        let c = compile(GOOD);
        let r = objects::render("llmpool", "team-a", &c.table, &c.credentials, &c.clients).unwrap();
        assert_eq!(r.configmap.metadata.name.as_deref(), Some("llmpool-routes"));
        assert_eq!(
            r.secret.metadata.name.as_deref(),
            Some("llmpool-credentials")
        );
        assert_eq!(r.secret.metadata.namespace.as_deref(), Some("team-a"));
        let labels = r.configmap.metadata.labels.clone().unwrap();
        assert_eq!(labels["app.kubernetes.io/part-of"], "llmpool");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "llmpool-operator");
        let cm = serde_json::to_string(&r.configmap).unwrap();
        assert!(
            !cm.contains("sk-aaa") && !cm.contains("sk-bbb"),
            "no secret in the ConfigMap"
        );

        let read = objects::read(&r.configmap, &r.secret).unwrap();
        assert_eq!(read.table, c.table);
        assert_eq!(read.credentials, c.credentials);
        assert_eq!(read.clients, c.clients);
        assert_eq!(read.hash, r.hash);
    }

    #[test]
    fn the_hash_follows_content_and_a_mixed_pair_is_refused() {
        let c = compile(GOOD);
        let first = objects::render("llmpool", "ns", &c.table, &c.credentials, &c.clients).unwrap();
        let again = objects::render("llmpool", "ns", &c.table, &c.credentials, &c.clients).unwrap();
        assert_eq!(
            first.hash, again.hash,
            "same input, same hash: the operator skips the write"
        );
        let rotated = compile(&GOOD.replace("sk-aaa", "sk-rotated"));
        let next = objects::render(
            "llmpool",
            "ns",
            &rotated.table,
            &rotated.credentials,
            &rotated.clients,
        )
        .unwrap();
        assert_ne!(first.hash, next.hash, "a rotated key changes the hash");
        let err = objects::read(&first.configmap, &next.secret).unwrap_err();
        assert!(matches!(err, ReadError::Inconsistent { .. }), "{err}");
    }

    #[test]
    fn a_table_too_large_for_one_object_is_an_error_not_a_cut() {
        let mut c = compile(GOOD);
        let pattern = "m".repeat(200);
        for i in 0..6000 {
            c.table.routes[0].models.push(format!("{pattern}-{i}"));
        }
        let err =
            objects::render("llmpool", "ns", &c.table, &c.credentials, &c.clients).unwrap_err();
        assert!(matches!(err, RenderError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("llmpool-routes"), "{err}");
    }
}

#[test]
fn a_yaml_syntax_error_never_quotes_the_document() {
    let mut resources = llmpool_crds::manifest::Resources::default();
    resources.add_yaml(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: keys}\nstringData:\n  openai: sk-very-secret-value\n  broken: [unclosed\n",
        "keys.yaml",
    );
    let compiled = resources.compile();
    let text: Vec<String> = compiled
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        text.iter()
            .any(|d| d.contains("keys.yaml") && d.contains("document 1")),
        "{text:?}"
    );
    assert!(
        !text.iter().any(|d| d.contains("sk-very-secret-value")),
        "{text:?}"
    );
}

const CLIENTS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: client-keys}
stringData: {team-a: sk-team-a-0123456789abcdef, team-b: sk-team-a-0123456789abcdef, short: abc}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmClient
metadata: {name: team-a}
spec:
  keySecretRef: {name: client-keys, key: team-a}
  models: ["gpt-4o*"]
  limits: {requestsPerMinute: 30, tokensPerMinute: 20000, dailyTokens: 1000000, maxConcurrency: 4}
  expiresAt: "2027-01-01T00:00:00Z"
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmClient
metadata: {name: team-b}
spec:
  keySecretRef: {name: client-keys, key: team-b}
---
apiVersion: llmpool.dev/v1alpha1
kind: LlmClient
metadata: {name: team-c}
spec:
  keySecretRef: {name: client-keys, key: short}
  models: ["gpt-**"]
  expiresAt: "next tuesday"
  limits: {requestsPerMinute: 0}
"#;

#[test]
fn clients_compile_to_digests_with_their_rules_and_every_problem_named() {
    let c = compile(CLIENTS);
    assert!(c.clients.enforced);
    let names: Vec<&str> = c.clients.clients.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["team-a"], "{:?}", messages(&c));
    let a = &c.clients.clients[0];
    assert_eq!(
        a.key_sha256,
        llmpool_crds::compile::key_digest("sk-team-a-0123456789abcdef")
    );
    assert_eq!(a.limits.requests_per_minute, Some(30));
    assert_eq!(a.limits.daily_tokens, Some(1_000_000));
    assert_eq!(a.expires_at_ms, Some(1_798_761_600_000));
    let all = messages(&c).join("\n");
    assert!(
        all.contains(
            "LlmClient team-b: spec.keySecretRef: LlmClient team-a already uses the same key"
        ),
        "{all}"
    );
    for field in [
        "spec.models[0]",
        "spec.expiresAt",
        "spec.limits.requestsPerMinute",
    ] {
        assert!(
            all.contains(&format!("LlmClient team-c: {field}")),
            "{field}: {all}"
        );
    }
    assert!(all.contains("shorter than 16"), "{all}");
    assert!(!all.contains("sk-team-a"), "no key in a diagnostic: {all}");
}

#[test]
fn without_clients_nothing_is_enforced() {
    assert!(!compile(GOOD).clients.enforced);
}

#[test]
fn names_the_api_server_would_refuse_are_refused_in_local_mode_too() {
    // found by fuzzing: an account named like the Secret's client-key entry
    // had its key replaced by the client table when the objects were rendered
    let yaml = GOOD.replace("name: acct-b,", "name: _clients.json,")
        + r#"
---
apiVersion: llmpool.dev/v1alpha1
kind: ModelRoute
metadata: {name: Upper}
spec:
  models: [other]
  targets: [{accounts: {names: [acct-a]}}]
"#;
    let c = compile(&yaml);
    let all = messages(&c).join("\n");
    assert!(!c.table.accounts.contains_key("_clients.json"), "{all}");
    assert!(c.credentials.get("_clients.json").is_none());
    assert!(!c.table.routes.iter().any(|r| r.name == "Upper"), "{all}");
    let refused: Vec<_> = c
        .diagnostics
        .iter()
        .filter(|d| d.field == "metadata.name" && d.message.contains("valid object name"))
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(refused, ["_clients.json", "Upper"], "{all}");
    assert!(
        c.table.accounts.contains_key("acct-a"),
        "the rest still compiles"
    );
}
