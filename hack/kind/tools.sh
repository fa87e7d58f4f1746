#!/usr/bin/env bash
# Builds the Go programs that herald's offline kind cluster needs besides the
# Kubernetes binaries (hack/kube-bins.sh): kind itself, containerd with its runc shim
# and ctr, crictl, CoreDNS and the CNI plugins. All are static (CGO_ENABLED=0) and
# pinned by the tools/<name> modules. The result is cached in $HERALD_CACHE keyed by
# those modules and this script, so a fresh clone on the same machine only copies.
# Usage: hack/kind/tools.sh OUTDIR [NAME...]   (copies all, or the NAMEs; quiet when cached)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: tools.sh OUTDIR [NAME...]}; shift
cache=${HERALD_CACHE:-/var/cache/herald}
mods=(kind containerd crictl coredns cni)

ver() { awk -v m="$2" '$1=="require" && $2==m {print $3} $1==m {print $2}' "$root/tools/$1/go.mod" | head -1; }
# The key covers the modules and the build steps between the markers (not the copy).
key=$(cd "$root/tools" && cat <(sed -n '/^# build:begin/,/^# build:end/p' "$root/hack/kind/tools.sh") $(printf '%s/go.mod %s/go.sum %s/tools.go ' "${mods[@]}" "${mods[@]}" "${mods[@]}") \
  | sha256sum | cut -c1-16)
dir=$cache/kind-tools-$key

# build:begin
build() { # module-dir ldflags package output
  (cd "$root/tools/$1" && CGO_ENABLED=0 go build -trimpath -tags "no_btrfs no_devmapper no_zfs" \
    -ldflags "-s -w $2" -o "$dir.tmp/$4" "$3")
}

if [[ ! -f $dir/.complete ]]; then
  echo "kind-tools: building ${mods[*]} into $dir (about 8 minutes cold on 2 cores)"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/cni"
  build kind "" sigs.k8s.io/kind kind
  cv=$(ver containerd github.com/containerd/containerd/v2)
  for c in containerd containerd-shim-runc-v2 ctr; do
    build containerd "-X github.com/containerd/containerd/v2/version.Version=$cv" \
      "github.com/containerd/containerd/v2/cmd/$c" "$c"
  done
  build crictl "-X sigs.k8s.io/cri-tools/pkg/version.Version=$(ver crictl sigs.k8s.io/cri-tools)" \
    sigs.k8s.io/cri-tools/cmd/crictl crictl
  build coredns "" github.com/coredns/coredns coredns
  pv=$(ver cni github.com/containernetworking/plugins)
  for p in main/bridge ipam/host-local main/loopback meta/portmap main/ptp; do
    build cni "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$pv" \
      "github.com/containernetworking/plugins/plugins/$p" "cni/${p#*/}"
  done
  touch "$dir.tmp/.complete"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
# build:end
mkdir -p "$out"
if (($#)); then
  for n in "$@"; do cmp -s "$dir/$n" "$out/$n" || cp -a "$dir/$n" "$out/"; done
else
  cp -a "$dir/." "$out/"
fi
