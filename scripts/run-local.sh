#!/usr/bin/env bash
# Runs the gateway in local mode on examples/local, with the bundled mock
# provider standing in for real accounts, so it works offline:
#   curl http://127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' \
#     -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p llmpool-proxy -p llmpool-e2e --bins
target/release/mock-provider --listen 127.0.0.1:9901 &
mock=$!
trap 'kill "$mock" 2>/dev/null || true' EXIT
target/release/llmpool-proxy --config "${1:-examples/local}" --listen "${LLMPOOL_LISTEN:-127.0.0.1:8080}"
