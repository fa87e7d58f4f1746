#!/usr/bin/env bash
# make kind-demo: herald on a kind cluster, the way a user installs it, as root on
# this machine (no registry needed: the node image and herald's image are built
# here). Shows a LoadBalancer Service going from <pending>, with its reason, to an
# EXTERNAL-IP that curl reaches from the host. make kind-down removes it all.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Building the kind node image, a kind cluster (1 control plane, 2 workers), herald's image; loading it (kind load docker-image)"
kubeconfig=$(hack/kind-prepare.sh | tail -n 1)
export KUBECONFIG=$kubeconfig
k() { "${HERALD_CACHE:-/var/cache/herald}/kind-bin/kubectl" "$@"; }
k get nodes -o wide

say "kubectl apply -f manifests/install.yaml"
k apply -f manifests/install.yaml
k -n herald-system rollout status deploy/herald-controller --timeout 4m
k -n herald-system rollout status ds/herald-speaker --timeout 4m
k -n herald-system get pods -o wide

say "A backend and a LoadBalancer Service, before any pool exists"
k create namespace demo --dry-run=client -o yaml | k apply -f -
k apply -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: whoami, namespace: demo}
spec:
  replicas: 3
  selector: {matchLabels: {app: whoami}}
  template:
    metadata: {labels: {app: whoami}}
    spec:
      containers:
      - name: whoami
        image: ${WHOAMI_IMAGE:-herald.local/whoami:dev}
        imagePullPolicy: IfNotPresent
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: whoami, namespace: demo}
spec:
  type: LoadBalancer
  selector: {app: whoami}
  ports: [{port: 80, targetPort: 8080}]
YAML
k -n demo rollout status deploy/whoami --timeout 3m
sleep 2
k -n demo get svc whoami
k -n demo get svc whoami -o jsonpath='{range .status.conditions[*]}{.type} {.status} {.reason}: {.message}{"\n"}{end}'

subnet=$(docker network inspect kind -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' | tr ' ' '\n' | grep -m1 '\.')
# The last /26 of the kind network (docker hands out addresses from the start).
ip4() { local IFS=.; set -- $1; echo $(( ($1 << 24) | ($2 << 16) | ($3 << 8) | $4 )); }
dotted() { echo "$(( $1 >> 24 & 255 )).$(( $1 >> 16 & 255 )).$(( $1 >> 8 & 255 )).$(( $1 & 255 ))"; }
last=$(( $(ip4 "${subnet%/*}") | ((1 << (32 - ${subnet#*/})) - 1) ))
pool="$(dotted $((last - 63)))-$(dotted $((last - 2)))"
say "An IPPool from the kind network ($subnet → $pool) and an L2Announcement"
k apply -f - <<YAML
apiVersion: herald.io/v1alpha1
kind: IPPool
metadata: {name: kind}
spec:
  addresses: ["$pool"]
---
apiVersion: herald.io/v1alpha1
kind: L2Announcement
metadata: {name: kind}
spec:
  ipPools: [kind]
YAML
for _ in $(seq 1 50); do
  ip=$(k -n demo get svc whoami -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
  [[ -n $ip ]] && break
  sleep 0.2
done
k -n demo get svc whoami
k get ippools

say "curl http://$ip/ from the host, four times"
for _ in 1 2 3 4; do
  for _ in $(seq 1 50); do curl -sS --max-time 2 "http://$ip/" 2>/dev/null && break; sleep 0.2; done
done
say "Who answers ARP for $ip"
k -n demo get events --field-selector involvedObject.name=whoami,reason=Announcing -o custom-columns=MESSAGE:.message --no-headers | tail -n 1
ip neigh show "$ip"
echo
echo "KUBECONFIG=$kubeconfig — remove everything with: make kind-down"
