#!/usr/bin/env bash
# make e2e-kind: herald on a real kind cluster, the way users run it (root). The
# cluster and images come from hack/kind-prepare.sh; the Go tests in e2e/kind
# install manifests/install.yaml unchanged and check what users rely on.
# BENCH=1 runs the kind benchmarks instead of the tests.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="/usr/local/go/bin:$PATH"
cache=${HERALD_CACHE:-/var/cache/herald}

for cmd in curl arping; do
  command -v "$cmd" >/dev/null || { echo "kind-e2e: $cmd is missing (Debian: curl, iputils-arping)" >&2; exit 1; }
done
kubeconfig=$(hack/kind-prepare.sh | tail -n 1)
export HERALD_KIND_KUBECONFIG=$kubeconfig KUBECTL=$cache/kind-bin/kubectl
export HERALD_WHOAMI_IMAGE=${WHOAMI_IMAGE:-herald.local/whoami:dev}
if [[ ${BENCH:-} == 1 ]]; then
  go test -tags kind -run '^$' -bench Kind -benchtime 1x -timeout 40m ./e2e/kind/ | grep -E '^bench:|^ok|FAIL|_test.go:'
  exit "${PIPESTATUS[0]}"
fi
# The whole output stays in /tmp/herald-e2e-kind.log; the terminal gets test
# names, results and t.Log lines with their first lines (a golden's diff).
go test -tags kind -count=1 -timeout 40m -v ./e2e/kind/ 2>&1 | tee /tmp/herald-e2e-kind.log | awk -f hack/test-filter.awk
exit "${PIPESTATUS[0]}"
