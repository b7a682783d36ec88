#!/usr/bin/env bash
# Renders manifests/install.yaml from the chart with its default values,
# except that the two generated Secrets are referenced instead (a committed
# manifest must not carry a password or key): create them first, as the
# file's header says. The chart test fails when the file is out of date.
set -euo pipefail
cd "$(dirname "$0")/.."
helm="${LLMPOOL_HELM:-helm}"
{
  cat <<'HEADER'
# llmpool, installed with plain kubectl: the chart's default values rendered
# (scripts/render-manifests.sh). Before applying, create the two Secrets it
# references, with your own random values:
#
#   kubectl create namespace llmpool
#   kubectl -n llmpool create secret generic llmpool-client-keys --from-literal=keys="sk-llmpool-$(head -c 30 /dev/urandom | base64 | tr -d '/+=')"
#   pw=$(head -c 30 /dev/urandom | base64 | tr -d '/+=')
#   kubectl -n llmpool create secret generic llmpool-redis --from-literal=password="$pw" --from-literal=url="redis://:$pw@llmpool-redis:6379"
#   kubectl apply -f manifests/install.yaml
HEADER
  "$helm" template llmpool charts/llmpool --namespace llmpool --skip-tests \
    --set proxy.auth.existingSecret=llmpool-client-keys \
    --set redis.bundled.existingSecret=llmpool-redis
} > manifests/install.yaml
