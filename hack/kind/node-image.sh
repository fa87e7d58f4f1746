#!/usr/bin/env bash
# Builds the kind node image herald.local/kind-node:<k8s version> without any
# container registry: a Debian rootfs from mmdebstrap, static binaries built here
# (hack/kube-bins.sh, hack/kind/tools.sh, three programs of the main module), the
# files under hack/kind/files, and the images the node runs (control plane, etcd,
# kube-proxy, CoreDNS, pause) as docker archives in /kind/images, which the node
# imports into containerd at boot (files/kind/bin/import-images.sh says why).
#
# Cached by content: the image carries the label herald.hash, a hash of everything
# that goes into it; when dockerd already holds that image the script exits quietly.
# The Debian rootfs tarballs are cached in $HERALD_CACHE keyed by their package lists.
# Usage: hack/kind/node-image.sh   (prints the image name on stdout)
#        hack/kind/node-image.sh --prefetch   (only the Debian tarballs)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/hack/kind
cache=${HERALD_CACHE:-/var/cache/herald}
k8s_version=$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' "$root/tools/kube/go.mod")
image=herald.local/kind-node:$k8s_version
# The tags kubeadm $k8s_version asks for (kubeadm config images list).
etcd_tag=3.6.5-0 coredns_tag=v1.12.1 pause_tags=(3.10.1 3.10)
suite=bookworm
node_pkgs=systemd,systemd-sysv,dbus,iptables,nftables,iproute2,iputils-ping,ca-certificates,runc,conntrack,ethtool,socat,util-linux,mount,kmod,procps,bash,libseccomp2
proxy_pkgs=iptables,conntrack
log() { echo "kind-node-image: $*" >&2; }

# A Debian rootfs tarball, cached by suite and package list (mmdebstrap takes ~20 s
# but needs the Debian mirror; a warm cache needs nothing but this tarball).
debian() { # packages -> path of the cached tarball
  local t=$cache/kind-debian-$(echo "$suite $1" | sha256sum | cut -c1-16).tar
  if [[ ! -f $t ]]; then
    log "mmdebstrap $suite with $1"
    # One retry: a run failed once here in its package configuration step and
    # passed unchanged on the next try (the mirror or a busy machine).
    for try in 1 2; do
      mmdebstrap --quiet --variant=minbase --include="$1" \
        --dpkgopt='path-exclude=/usr/share/{doc,man,locale,info}/*' "$suite" "$t.part.tar" >&2 && break
      ((try < 2)) || { rm -f "$t.part.tar"; return 1; }
      log "mmdebstrap failed; trying once more"
    done
    mv "$t.part.tar" "$t"
  fi
  echo "$t"
}

mkdir -p "$cache"
# --prefetch: only the Debian tarballs (network-bound), e.g. while Go compiles.
if [[ ${1:-} == --prefetch ]]; then
  debian "$proxy_pkgs" >/dev/null && debian "$node_pkgs" >/dev/null
  exit
fi
# All binaries first: each step is a no-op copy when its own cache is warm.
work=$(mktemp -d "$cache/kind-node-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
bin=$work/bin
"$root/hack/kube-bins.sh" "$bin/k8s" >/dev/null
"$here/tools.sh" "$bin/tools" >&2
(cd "$root" && for c in runcwrap kindcni pause; do
  [[ -d e2e/cmd/$c ]] || { log "e2e/cmd/$c is missing: not in the image"; continue; }
  # -buildvcs=false: a VCS stamp would change the binaries, and so the image, on every commit.
  CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$bin/$c" "./e2e/cmd/$c"
done)

key=$( { echo "$k8s_version $etcd_tag $coredns_tag ${pause_tags[*]} $suite $node_pkgs $proxy_pkgs"
  (cd "$here" && find node-image.sh files kube-proxy -type f | LC_ALL=C sort | xargs sha256sum)
  (cd "$bin" && find . -type f | LC_ALL=C sort | xargs sha256sum); } | sha256sum | cut -c1-16)
if [[ $(docker image inspect -f '{{index .Config.Labels "herald.hash"}}' "$image" 2>/dev/null) == "$key" ]]; then
  echo "$image"
  exit 0
fi
log "building $image ($key)"
old=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)

# An image from a directory, as a single-layer docker image, saved to /kind/images.
images=$work/node/kind/images
mkdir -p "$images"
dir_image() { # dir name:tag file [docker import --change ...]
  local dir=$1 ref=$2 file=$3; shift 3
  mkdir -p "$dir/tmp" && chmod 1777 "$dir/tmp"
  tar -C "$dir" -c . | docker import "$@" - "$ref" >/dev/null
  docker save "$ref" -o "$images/$file.tar"
}
one_binary() { # binary name:tag file [change...]: FROM scratch with /usr/local/bin/<binary>
  local d=$work/img-$3; mkdir -p "$d/usr/local/bin" "$d/etc"
  cp "$1" "$d/usr/local/bin/"
  echo 'root:x:0:0:root:/root:/sbin/nologin' > "$d/etc/passwd"
  dir_image "$d" "$2" "$3" --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' "${@:4}"
}
k=$bin/k8s
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  one_binary "$k/$c" "registry.k8s.io/$c:$k8s_version" "$c"
done
one_binary "$k/etcd" "registry.k8s.io/etcd:$etcd_tag" etcd
# CoreDNS: kubeadm's Deployment gives args only, so the entrypoint is /coredns.
d=$work/img-coredns; mkdir -p "$d"; cp "$bin/tools/coredns" "$d/coredns"
dir_image "$d" "registry.k8s.io/coredns/coredns:$coredns_tag" coredns --change 'ENTRYPOINT ["/coredns"]'
d=$work/img-pause; mkdir -p "$d"; cp "$bin/pause" "$d/pause"
dir_image "$d" "registry.k8s.io/pause:${pause_tags[0]}" pause --change 'ENTRYPOINT ["/pause"]'
for t in "${pause_tags[@]:1}"; do
  docker tag "registry.k8s.io/pause:${pause_tags[0]}" "registry.k8s.io/pause:$t"
  docker save "registry.k8s.io/pause:$t" -o "$images/pause-$t.tar"
done
# kube-proxy runs iptables-save/restore and conntrack of its own image against the
# node's tables, so its iptables must use the node's backend: a wrapper picks it.
d=$work/img-kube-proxy; mkdir -p "$d"
tar -C "$d" -xf "$(debian "$proxy_pkgs")"
rm -rf "$d"/var/cache/apt/* "$d"/var/lib/apt/lists/*
install -D -m 0755 "$k/kube-proxy" "$d/usr/local/bin/kube-proxy"
install -m 0755 "$here/kube-proxy/iptables-wrapper" "$d/usr/local/sbin/iptables-wrapper"
for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -sf /usr/local/sbin/iptables-wrapper "$d/usr/local/sbin/$t"
done
dir_image "$d" "registry.k8s.io/kube-proxy:$k8s_version" kube-proxy \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
echo "$key" > "$images/content-hash"
for r in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do docker rmi "registry.k8s.io/$r:$k8s_version" >/dev/null; done
docker rmi "registry.k8s.io/etcd:$etcd_tag" "registry.k8s.io/coredns/coredns:$coredns_tag" \
  $(printf 'registry.k8s.io/pause:%s ' "${pause_tags[@]}") >/dev/null

# The node: Debian + our files + binaries; systemd units enabled offline in a chroot.
n=$work/node
tar -C "$n" -xf "$(debian "$node_pkgs")"
rm -rf "$n"/var/cache/apt/* "$n"/var/lib/apt/lists/*
cp -a "$here/files/." "$n/"
echo "$k8s_version" > "$n/kind/version"
install -m 0755 "$k"/{kubelet,kubeadm,kubectl} "$bin"/tools/{containerd,containerd-shim-runc-v2,ctr,crictl} "$n/usr/local/bin/"
install -m 0755 "$bin/runcwrap" "$n/usr/local/bin/herald-runc"
[[ ! -f $bin/kindcni ]] || install -m 0755 "$bin/kindcni" "$n/usr/local/bin/herald-kindcni"
install -D -m 0755 "$bin"/tools/cni/* -t "$n/opt/cni/bin/"
mkdir -p "$n/etc/kubernetes/manifests" "$n/etc/cni/net.d" "$n/var/lib/herald"
ln -sf /lib/systemd/systemd "$n/sbin/init"
echo ReadKMsg=no >> "$n/etc/systemd/journald.conf"
units="containerd herald-images kubelet herald-undo-cgroups-hide"
[[ ! -f $bin/kindcni ]] || units+=" herald-kindcni"
chroot "$n" systemctl enable $units 2>/dev/null
# Nothing to do in a container: binfmt mounts, udev triggers, getty on a missing tty.
chroot "$n" systemctl mask systemd-binfmt.service systemd-udevd.service systemd-udev-trigger.service \
  getty@tty1.service console-getty.service systemd-modules-load.service 2>/dev/null
base=herald.local/kind-node-rootfs:$key
tar -C "$n" -c . | docker import \
  --change 'ENV container=docker' \
  --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
  - "$base" >/dev/null
# docker import cannot set STOPSIGNAL (systemd stops cleanly on SIGRTMIN+3); a
# metadata-only build on top adds it and the content label.
printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\nLABEL herald.hash=%s\n' "$base" "$key" \
  | { out=$(DOCKER_BUILDKIT=0 docker build -q -t "$image" - 2>&1) || { echo "$out" >&2; exit 1; }; }
docker rmi "$base" >/dev/null 2>&1 || true   # untag only: the layer stays under $image
# Drop the image this one replaces (~1 GB); a cluster still running on it keeps it.
[[ -z $old ]] || docker rmi "$old" >/dev/null 2>&1 || true
log "built $image"
echo "$image"
