#!/usr/bin/env bash
# Builds the upstream Kubernetes and etcd commands from the Go modules pinned in
# tools/kube and tools/etcd: static (CGO_ENABLED=0, so they run in FROM-scratch
# images) and stamped with their real version (kubeadm and the kubelet compare
# versions; an unstamped build says v0.0.0-master).
#
# The result is cached by content in $HERALD_CACHE (default /var/cache/herald),
# keyed by the pinned go.mod/go.sum files and this script, so a fresh clone on the
# same machine (CI) copies instead of rebuilding. Usage: hack/kube-bins.sh OUTDIR
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: kube-bins.sh OUTDIR}
cache=${HERALD_CACHE:-/var/cache/herald}

k8s_version=$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' "$root/tools/kube/go.mod")
[[ -n $k8s_version ]] || { echo "kube-bins: k8s.io/kubernetes not found in tools/kube/go.mod" >&2; exit 1; }
key=$(cat "$0" "$root"/tools/kube/go.{mod,sum} "$root"/tools/kube/tools.go "$root"/tools/etcd/go.{mod,sum} "$root"/tools/etcd/main.go \
  | sha256sum | cut -c1-16)
dir=$cache/k8s-$k8s_version-$key
cmds=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubeadm kubectl)

if [[ ! -f $dir/.complete ]]; then
  echo "kube-bins: building ${cmds[*]} etcd $k8s_version into $dir (about 10 minutes cold on 2 cores)"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  major=${k8s_version#v}; major=${major%%.*}
  minor=${k8s_version#v*.}; minor=${minor%%.*}
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$root/tools/kube" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$dir.tmp/" \
    $(printf 'k8s.io/kubernetes/cmd/%s ' "${cmds[@]}"))
  (cd "$root/tools/etcd" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir.tmp/etcd" .)
  touch "$dir.tmp/.complete"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
mkdir -p "$out"
for c in "${cmds[@]}" etcd; do
  # Copy only when changed, so make's stamp and running lab processes are undisturbed.
  if ! cmp -s "$dir/$c" "$out/$c"; then cp "$dir/$c" "$out/$c.new" && mv -f "$out/$c.new" "$out/$c"; fi
done
echo "kube-bins: $out holds ${cmds[*]} etcd ($k8s_version, static)"
