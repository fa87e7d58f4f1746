#!/usr/bin/env bash
# Creates (up) or deletes (down) the kind cluster "herald" from the offline node image
# that hack/kind/node-image.sh builds. `up` reuses a cluster that already runs the
# current node image with every node Ready, and prints the kubeconfig's path last.
#   hack/kind/cluster.sh up|down
# Env: HERALD_CACHE (/var/cache/herald), KUBECONFIG_OUT ($HERALD_CACHE/kind-herald.kubeconfig),
#      KIND_CLUSTER (herald), UP_TIMEOUT (seconds to wait for Ready nodes and CoreDNS, 300).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/hack/kind
cache=${HERALD_CACHE:-/var/cache/herald}
name=${KIND_CLUSTER:-herald}
kubeconfig=${KUBECONFIG_OUT:-$cache/kind-herald.kubeconfig}
timeout=${UP_TIMEOUT:-300}
bin=$cache/kind-bin
log() { echo "kind-cluster: $*" >&2; }

mkdir -p "$bin"
kind=$bin/kind kubectl=$bin/kubectl
if [[ ${1:-} == down && ! -x $kind ]]; then
  exit 0 # kind was never built here, so no cluster of ours exists: build nothing
fi
"$here/tools.sh" "$bin" kind
"$root/hack/kube-bins.sh" "$bin" >/dev/null   # kubectl for the checks below
k() { "$kubectl" --kubeconfig "$kubeconfig" "$@"; }

healthy() { # the cluster answers, and every node is Ready
  "$kind" get clusters 2>/dev/null | grep -qx "$name" || return 1
  "$kind" get kubeconfig --name "$name" > "$kubeconfig.new" 2>/dev/null && mv "$kubeconfig.new" "$kubeconfig" || return 1
  local st
  st=$(k get nodes --request-timeout=10s -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null) || return 1
  [[ -n $st ]] && ! grep -qv '^True$' <<<"$st"
}

case ${1:-} in
down)
  "$kind" delete cluster --name "$name" >&2
  rm -f "$kubeconfig"
  ;;
up)
  image=$("$here/node-image.sh")
  # kind's known issues: many inotify instances per node (kubelet, systemd).
  (( $(sysctl -n fs.inotify.max_user_instances) >= 512 )) || sysctl -qw fs.inotify.max_user_instances=512
  (( $(sysctl -n fs.inotify.max_user_watches) >= 524288 )) || sysctl -qw fs.inotify.max_user_watches=524288
  mkdir -p /lib/modules   # the nodes mount it; this host has none
  want=$(docker image inspect -f '{{.Id}}' "$image")
  if "$kind" get clusters 2>/dev/null | grep -qx "$name"; then
    have=$(docker inspect -f '{{.Image}}' "$name-control-plane" 2>/dev/null || true)
    if [[ $have == "$want" ]] && healthy; then
      log "reusing cluster $name"
      echo "$kubeconfig"
      exit 0
    fi
    log "cluster $name is stale or unhealthy: recreating it"
    "$kind" delete cluster --name "$name" >&2
  fi
  mkdir -p "$(dirname "$kubeconfig")"
  # --wait 0: kind's own wait would time out on NotReady nodes before our CNI agent
  # writes its config; the waits below cover nodes and CoreDNS instead.
  "$kind" create cluster --name "$name" --image "$image" --config "$here/cluster.yaml" \
    --kubeconfig "$kubeconfig" --wait 0 >&2
  k apply -f "$here/kindcni-rbac.yaml" >/dev/null
  # The agents were refused until now and back off (up to ~40 s seen); restart them.
  for node in $("$kind" get nodes --name "$name"); do
    docker exec "$node" systemctl restart herald-kindcni
  done
  deadline=$((SECONDS + timeout))
  until healthy; do
    (( SECONDS < deadline )) || { log "nodes not Ready after ${timeout}s"; k get nodes -o wide >&2 || true; exit 1; }
    sleep 2
  done
  until [[ $(k -n kube-system get pods -l k8s-app=kube-dns -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' 2>/dev/null | grep -c '^Running$') -ge 1 ]]; do
    (( SECONDS < deadline )) || { log "CoreDNS not Running after ${timeout}s"; k -n kube-system get pods -o wide >&2 || true; exit 1; }
    sleep 2
  done
  k -n kube-system wait --for=condition=Ready pod -l k8s-app=kube-dns --timeout="$((deadline - SECONDS))s" >/dev/null
  log "cluster $name is up ($((SECONDS)) s)"
  echo "$kubeconfig"
  ;;
*)
  echo "usage: $0 up|down" >&2
  exit 2
  ;;
esac
