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
