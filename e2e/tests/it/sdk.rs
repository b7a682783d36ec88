//! The official OpenAI Python SDK as the client. scripts/test.sh installs it
//! into a throwaway venv and sets LLMPOOL_SDK_PYTHON; under CI the variable
//! is required, so this test cannot be skipped silently there.

use std::path::PathBuf;
use std::process::Command;

use llmpool_e2e::harness::{self, ConfigDir, Process};
use llmpool_e2e::mock::MockProvider;

fn sdk_python() -> Option<String> {
    match std::env::var("LLMPOOL_SDK_PYTHON") {
        Ok(p) => Some(p),
        Err(_) if std::env::var("CI").is_ok() => {
            panic!("LLMPOOL_SDK_PYTHON must be set under CI (scripts/test.sh sets it)")
        }
        Err(_) => {
            eprintln!(
                "sdk test skipped: LLMPOOL_SDK_PYTHON is not set (scripts/test.sh sets it up)"
            );
            None
        }
    }
}

#[tokio::test]
async fn the_official_openai_sdk_works_against_the_gateway() {
    let Some(python) = sdk_python() else { return };
    let mock = MockProvider::start().await.unwrap();
    let dir = ConfigDir::new().unwrap();
    let url = mock.base_url();
    let accounts = harness::docs(&[
        harness::secret(
            "keys",
            &[
                ("a", "a"),
                ("busy", "busy?status=429&retry_after=30"),
                ("cut", "cut?fault=cut&after=2"),
            ],
        ),
        harness::account("a", &url, "a", ""),
        harness::account("busy", &url, "busy", ""),
        harness::account("cut", &url, "cut", ""),
    ]);
    dir.write("accounts.yaml", &accounts).unwrap();
    let routes = harness::docs(&[
        harness::route(
            "gpt",
            "  models: [gpt-test]\n  targets: [{accounts: {names: [a]}}]\n",
        ),
        harness::route(
            "busy",
            "  models: [busy-test]\n  targets: [{accounts: {names: [busy]}}]\n",
        ),
        harness::route(
            "cut",
            "  models: [cut-test]\n  targets: [{accounts: {names: [cut]}}]\n",
        ),
    ]);
    dir.write("routes.yaml", &routes).unwrap();
    let proxy = Process::start(dir.path(), &[], &[("LLMPOOL_API_KEYS", "sdk-client-key")]).unwrap();

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sdk/openai_client.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(format!("http://{}", proxy.addr))
            .arg("sdk-client-key")
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openai SDK checks failed:\n{text}");
    assert!(text.contains("all checks passed"), "{text}");
}

/// One account of each provider kind on the mock, each behind its own
/// model: `m-oai` (an `openai` account, label `op`), `m-openai` (an
/// OpenAI-compatible server, `oa`), `m-anthropic` (`an`), `m-goog` (`ge`; the
/// Gemini SDK sends a list of texts to embed as one multi-part text when the
/// model name contains "gemini", so the name avoids it).
fn matrix_config(dir: &ConfigDir, mock: &MockProvider) {
    let accounts = harness::docs(&[
        harness::secret(
            "keys",
            &[("op", "op"), ("oa", "oa"), ("an", "an"), ("ge", "ge")],
        ),
        harness::provider_account("op", "openai", &mock.base_url(), "op", ""),
        harness::provider_account("oa", "openai-compatible", &mock.base_url(), "oa", ""),
        harness::provider_account("an", "anthropic", &mock.root_url(), "an", ""),
        harness::provider_account("ge", "gemini", &mock.root_url(), "ge", ""),
    ]);
    dir.write("accounts.yaml", &accounts).unwrap();
    let route = |name: &str, account: &str| {
        harness::route(
            name,
            &format!("  models: [{name}]\n  targets: [{{accounts: {{names: [{account}]}}}}]\n"),
        )
    };
    let routes = harness::docs(&[
        route("m-oai", "op"),
        route("m-openai", "oa"),
        route("m-anthropic", "an"),
        route("m-goog", "ge"),
    ]);
    dir.write("routes.yaml", &routes).unwrap();
}

const PAIRS: [&str; 4] = ["m-oai=op", "m-openai=oa", "m-anthropic=an", "m-goog=ge"];

/// Runs an SDK script against a fresh proxy over the three-provider
/// config; fails with everything the script printed.
async fn run_matrix(script: &str, extra: &[&str]) {
    let Some(python) = sdk_python() else { return };
    let mock = MockProvider::start().await.unwrap();
    let dir = ConfigDir::new().unwrap();
    matrix_config(&dir, &mock);
    let proxy = Process::start(dir.path(), &[], &[("LLMPOOL_API_KEYS", "sdk-client-key")]).unwrap();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("sdk")
        .join(script);
    let mut args: Vec<String> = vec![
        path.display().to_string(),
        format!("http://{}", proxy.addr),
        "sdk-client-key".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(PAIRS.iter().map(|s| s.to_string()));
    let out = tokio::task::spawn_blocking(move || Command::new(python).args(args).output())
        .await
        .unwrap()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{script} failed:\n{text}\nproxy log:\n{}",
        proxy.logs().join("\n")
    );
    assert!(text.contains("all checks passed"), "{text}");
}

#[tokio::test]
async fn openai_sdk_reaches_openai_anthropic_and_gemini_accounts() {
    run_matrix("matrix_openai.py", &[]).await;
}

#[tokio::test]
async fn openai_sdk_responses_api_reaches_openai_anthropic_and_gemini_accounts() {
    run_matrix("matrix_responses.py", &[]).await;
}

#[tokio::test]
async fn anthropic_sdk_reaches_openai_anthropic_and_gemini_accounts() {
    run_matrix("matrix_anthropic.py", &[]).await;
}

#[tokio::test]
async fn gemini_sdk_v1beta_reaches_openai_anthropic_and_gemini_accounts() {
    run_matrix("matrix_gemini.py", &["v1beta"]).await;
}

#[tokio::test]
async fn gemini_sdk_v1_reaches_openai_anthropic_and_gemini_accounts() {
    run_matrix("matrix_gemini.py", &["v1"]).await;
}

#[tokio::test]
async fn every_sdk_gets_client_key_refusals_in_its_own_error_types() {
    let Some(python) = sdk_python() else { return };
    let mock = MockProvider::start().await.unwrap();
    let dir = ConfigDir::new().unwrap();
    let (good, limited) = (
        "sk-sdk-good-81f3a0c6e2d94b57",
        "sk-sdk-limited-3e9d0b6a1c7f",
    );
    let config = harness::docs(&[
        harness::secret("keys", &[("a", "a")]),
        harness::account("a", &mock.base_url(), "a", ""),
        harness::route(
            "gpt",
            "  models: [gpt-test]\n  targets: [{accounts: {names: [a]}}]\n",
        ),
        harness::route(
            "other",
            "  models: [other-test]\n  targets: [{accounts: {names: [a]}}]\n",
        ),
        harness::secret("client-keys", &[("good", good), ("limited", limited)]),
        harness::client("good", "client-keys", "good", "  models: [gpt-test]\n"),
        harness::client(
            "limited",
            "client-keys",
            "limited",
            "  limits: {requestsPerMinute: 1}\n",
        ),
    ]);
    dir.write("config.yaml", &config).unwrap();
    let proxy = Process::start(dir.path(), &[], &[]).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sdk/client_keys.py");
    let args = [
        script.display().to_string(),
        format!("http://{}", proxy.addr),
        good.to_owned(),
        limited.to_owned(),
    ];
    let out = tokio::task::spawn_blocking(move || Command::new(python).args(args).output())
        .await
        .unwrap()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "client_keys.py failed:\n{text}");
    assert!(text.contains("all checks passed"), "{text}");
}
