#!/usr/bin/env bash
# The whole test suite, on a fresh machine of this kind: formatting, lints,
# unit tests, and end-to-end tests that start the real binaries and drive
# them with mock providers and the official provider SDKs. Installs what is
# missing (the SDKs go into a throwaway venv under target/).
set -euo pipefail
cd "$(dirname "$0")/.."

# redis-server (tests start their own on free ports, standalone, TLS and
# cluster), redis-cli (cluster setup, INFO), openssl (test certificates)
missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v redis-cli >/dev/null 2>&1 || missing="$missing redis-tools"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
if [ -n "$missing" ]; then
  echo "==> installing$missing"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

venv=target/sdk-venv
if ! "$venv/bin/python" -c "import openai, anthropic, google.genai" >/dev/null 2>&1; then
  echo "==> installing the provider SDKs into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r e2e/sdk/requirements.txt
fi
export LLMPOOL_SDK_PYTHON="$PWD/$venv/bin/python"

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> building the binaries the end-to-end tests start"
cargo build --workspace --bins --locked
echo "==> cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# one closing line for the whole suite (cargo prints one per test binary)
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
