#!/usr/bin/env bash
# The kind cluster and images that make e2e-kind and make kind-demo start from, as
# root, with nothing fetched from a registry:
#   1. docker (installed and started when missing: hack/docker-up.sh);
#   2. a kind cluster of one control plane and two workers from the node image
#      built here (hack/kind/cluster.sh up; reused when healthy);
#   3. herald's image from its Dockerfile and the whoami backend (make image
#      whoami-image OFFLINE=1), loaded into the nodes with `kind load docker-image`.
# Prints the cluster's kubeconfig path last.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="/usr/local/go/bin:$PATH"
cache=${HERALD_CACHE:-/var/cache/herald}
image=${IMAGE:-ghcr.io/heraldlb/herald:dev}
whoami=${WHOAMI_IMAGE:-herald.local/whoami:dev}
log() { echo "kind-prepare: $*" >&2; }

[[ $(id -u) == 0 ]] || { log "needs root (docker)"; exit 1; }
hack/docker-up.sh >&2
start=$SECONDS
kubeconfig=$(hack/kind/cluster.sh up | tail -n 1)
log "cluster ready in $((SECONDS - start)) s"
start=$SECONDS
if ! make --no-print-directory image whoami-image OFFLINE=1 IMAGE="$image" WHOAMI_IMAGE="$whoami" >/tmp/herald-kind-images.log 2>&1; then
  tail -n 40 /tmp/herald-kind-images.log >&2
  exit 1
fi
"$cache/kind-bin/kind" load docker-image --name "${KIND_CLUSTER:-herald}" "$image" "$whoami" >&2
log "images $image and $whoami built and loaded in $((SECONDS - start)) s"
echo "$kubeconfig"
