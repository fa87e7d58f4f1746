#!/bin/bash
# Loads the control-plane, CoreDNS, kube-proxy and pause images shipped in
# /kind/images into containerd's k8s.io namespace, where the kubelet looks for them.
# Nothing can be pulled on these machines, and kubeadm's preflight pull is skipped
# by kind, so every image a node runs must be here before the kubelet starts.
# Runs at boot (not at image build time) so that building the node image needs no
# containerd inside docker; a stamp in /var (a per-node volume) skips repeats.
set -euo pipefail
stamp=/var/lib/herald/images-imported
want=$(cat /kind/images/content-hash)
[[ -f $stamp && $(cat "$stamp") == "$want" ]] && exit 0
for i in $(seq 50); do ctr version >/dev/null 2>&1 && break; sleep 0.2; done
for t in /kind/images/*.tar; do
  ctr --namespace k8s.io images import "$t" >/dev/null
done
mkdir -p "${stamp%/*}" && echo "$want" > "$stamp"
