#!/usr/bin/env bash
# make demo: on a Debian machine, as root, show a LoadBalancer Service going from
# <pending> to a reachable address, in the netns lab (nothing leaves the machine).
# MODE=l2 (default): the address is answered by ARP/NDP on the LAN.
# MODE=bgp: every node announces it to an FRR router, which routes it with ECMP
# to a client on another network.
set -euo pipefail
MODE=${MODE:-l2}
case "$MODE" in l2|bgp) ;; *) echo "MODE must be l2 or bgp, not $MODE" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "make demo builds network namespaces: run it as root" >&2
  exit 1
fi
missing=()
for c in ip iptables conntrack curl vtysh bird; do command -v "$c" >/dev/null || missing+=("$c"); done
[ -x /usr/lib/frr/bgpd ] || missing+=(bgpd)
if ((${#missing[@]})); then
  say "Installing what the lab needs (iproute2 iptables conntrack curl frr bird2)"
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q iproute2 iptables conntrack curl frr bird2
fi

say "Building herald and the Kubernetes parts (etcd, kube-apiserver, kube-proxy, kubectl)"
make -s kube-bins build

say "Starting the lab: 3 nodes with kube-proxy and a herald speaker, an API server with the herald controller, a client, an FRR router with a network behind it"
go run ./e2e/cmd/lab up >/dev/null
export KUBECONFIG=/tmp/herald-lab/kubeconfig
K=bin/k8s/kubectl
go run ./e2e/cmd/demo pods

# service POOL: a dual-stack LoadBalancer Service in front of the pods, asking for
# POOL when it is not empty; shown <pending> with the reason.
service() {
  local annotations=""
  [ -n "$1" ] && annotations=$'\n  annotations:\n    herald.io/pool: '"$1"
  $K apply -f - <<YAML
apiVersion: v1
kind: Service
metadata:
  name: whoami
  namespace: default$annotations
spec:
  type: LoadBalancer
  ipFamilyPolicy: PreferDualStack
  ipFamilies: [IPv4, IPv6]
  ports:
  - name: http
    port: 80
    targetPort: 8080
YAML
  go run ./e2e/cmd/demo endpoints
  sleep 1
  $K get svc whoami
  echo
  $K get svc whoami -o jsonpath='{.status.conditions[0].reason}: {.status.conditions[0].message}{"\n"}'
}

# apply_and_wait FILE: applies FILE and sets ip to the Service's first address.
apply_and_wait() {
  $K apply -f "$1"
  for _ in $(seq 50); do
    ip=$($K get svc whoami -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
    [ -n "$ip" ] && break
    sleep 0.2
  done
  $K get svc whoami
}

# curl6 NS: six requests to the address from namespace NS; ok counts answers.
curl6() {
  ok=0
  for _ in 1 2 3 4 5 6; do
    if out=$(ip netns exec "$1" curl -s --max-time 3 "http://$ip/"); then
      echo "  $out"; ok=$((ok + 1))
    else
      echo "  (failed)"
    fi
  done
}

events() {
  $K get events --field-selector involvedObject.name=whoami -o custom-columns=REASON:.reason,MESSAGE:.message | sed 's/^/  /'
}

if [ "$MODE" = bgp ]; then
  say "A LoadBalancer Service asking for the pool \"routed\", which does not exist yet"
  service routed

  say "Adding the pool, a BGPPeer for the router (IPv4 and IPv6) and a BGPAnnouncement (manifests/examples/bgp.yaml)"
  apply_and_wait manifests/examples/bgp.yaml
  for _ in $(seq 100); do
    [ "$(ip netns exec lab-router ip route show exact "$ip/32" | grep -c 'via 10.77.0.1[123]')" = 3 ] && break
    sleep 0.1
  done
  $K get bgppeers

  say "The router's BGP table (FRR: vtysh -c 'show ip bgp'): one path per node"
  go run ./e2e/cmd/lab vtysh -c 'show ip bgp' | sed 's/^/  /'
  say "The router's kernel: one route, three nexthops (ECMP)"
  ip netns exec lab-router ip route show exact "$ip/32" | sed 's/^/  /'

  say "curl from the external network (lab-ext, 10.99.0.100, behind the router), 6 times"
  curl6 lab-ext
  echo "  connections per ingress node (conntrack):"
  for n in 1 2 3; do
    echo "    node$n: $(ip netns exec lab-node$n conntrack -L -p tcp --orig-dst "$ip" 2>/dev/null | grep -c "dst=$ip")"
  done
  events
  cat <<MSG

Explore:   export KUBECONFIG=/tmp/herald-lab/kubeconfig; $PWD/bin/k8s/kubectl get svc,ippools,bgppeers,bgpannouncements
           go run ./e2e/cmd/lab vtysh -c 'show bgp summary'
           go run ./e2e/cmd/lab exec ext curl http://$ip/
Stop:      make demo-down
MSG
  [ "$ok" -gt 0 ]
  exit
fi

say "A LoadBalancer Service with no pool yet"
service ""

say "Adding an IPPool and an L2Announcement (manifests/examples/l2.yaml)"
apply_and_wait manifests/examples/l2.yaml
$K get ippools

# The speaker probes a new address (about 100 ms) before it answers for it.
for _ in $(seq 30); do
  ip netns exec lab-client curl -s --max-time 1 -o /dev/null "http://$ip/" && break
  sleep 0.2
done

say "curl from the client namespace (the laptop), 6 times"
curl6 lab-client
ip netns exec lab-client ip neigh show "$ip" | sed 's/^/  neighbour: /'
events

cat <<MSG

Explore:   export KUBECONFIG=/tmp/herald-lab/kubeconfig; $PWD/bin/k8s/kubectl get svc,ippools,l2announcements
           go run ./e2e/cmd/lab exec lab-client curl http://$ip/
Stop:      make demo-down
MSG
[ "$ok" -gt 0 ]
