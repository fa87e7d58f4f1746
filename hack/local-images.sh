#!/usr/bin/env bash
# Makes, without any registry, the two base images herald's Dockerfiles take as
# build arguments, and prints them as --build-arg flags:
#   herald.local/golang:<go version>  Debian bookworm (minbase, by mmdebstrap) with
#                                     this machine's Go toolchain in /usr/local/go
#   herald.local/static:nonroot       FROM-scratch files like distroless/static:
#                                     CA certificates, /etc/passwd with nonroot
#                                     (65532), /tmp
# Each is rebuilt only when its inputs change (an image label holds their hash).
# On a machine with registry access none of this is needed: the Dockerfiles'
# defaults are the public images.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="/usr/local/go/bin:$PATH"
docker=${DOCKER:-docker}
goroot=$(go env GOROOT)
gover=$(go env GOVERSION); gover=${gover#go}
script_hash=$(sha256sum "$0" | cut -c1-12)

# has IMAGE HASH reports whether IMAGE exists with label herald.hash=HASH.
has() { [[ $("$docker" image inspect -f '{{index .Config.Labels "herald.hash"}}' "$1" 2>/dev/null) == "$2" ]]; }

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

# debian_tar NAME PACKAGES: a cached Debian bookworm minbase tarball with PACKAGES.
debian_tar() {
  # Keyed by what goes in, so edits elsewhere in this script reuse it.
  local tar=${HERALD_CACHE:-/var/cache/herald}/debian-$1-$(echo "bookworm minbase $2" | sha256sum | cut -c1-12).tar
  if [[ ! -f $tar ]]; then
    command -v mmdebstrap >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends mmdebstrap; } >&2
    mkdir -p "$(dirname "$tar")"
    mmdebstrap --variant=minbase --format=tar --include="$2" bookworm "$tar.tmp" >&2
    mv "$tar.tmp" "$tar"
  fi
  echo "$tar"
}

# `local-images.sh frr`: the router the kind tests peer with (FRR from Debian,
# with iproute2 and curl to look at its kernel's routes and reach the Services).
if [[ ${1:-} == frr ]]; then
  frr=herald.local/frr:$script_hash
  if ! has "$frr" "$script_hash"; then
    echo "local-images: making $frr" >&2
    "$docker" import --change "LABEL herald.hash=$script_hash" --change 'CMD ["sleep", "infinity"]' \
      "$(debian_tar frr frr,iproute2,curl,procps)" "$frr" >&2
  fi
  echo "$frr"
  exit 0
fi

golang=herald.local/golang:$gover
hash=$script_hash-$gover
if ! has "$golang" "$hash"; then
  echo "local-images: making $golang" >&2
  cp "$(debian_tar golang ca-certificates,git)" "$work/golang.tar"
  # Add the toolchain under usr/local/go, and the host's CA bundle in place of
  # Debian's: the build reaches the module proxy through whatever this machine
  # trusts. (docker import refuses a path twice in one tarball.)
  tar -C "$(dirname "$goroot")" --transform "s,^$(basename "$goroot"),./usr/local/go," -rf "$work/golang.tar" "$(basename "$goroot")"
  tar --delete -f "$work/golang.tar" ./etc/ssl/certs/ca-certificates.crt
  tar -C / --transform 's,^,./,' -rf "$work/golang.tar" etc/ssl/certs/ca-certificates.crt
  "$docker" import \
    --change 'ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV GOPATH=/go' --change 'WORKDIR /go' --change "LABEL herald.hash=$hash" \
    --change 'CMD ["bash"]' "$work/golang.tar" "$golang" >&2
fi

static=herald.local/static:nonroot
hash=$script_hash
if ! has "$static" "$hash"; then
  echo "local-images: making $static" >&2
  fs=$work/static
  mkdir -p "$fs/etc/ssl/certs" "$fs/tmp" "$fs/home/nonroot"
  chmod 1777 "$fs/tmp"; chown 65532:65532 "$fs/home/nonroot"
  cp /etc/ssl/certs/ca-certificates.crt "$fs/etc/ssl/certs/"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$fs/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$fs/etc/group"
  tar -C "$fs" --numeric-owner -cf "$work/static.tar" .
  "$docker" import --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' \
    --change "LABEL herald.hash=$hash" "$work/static.tar" "$static" >&2
fi

echo "--build-arg GO_IMAGE=$golang --build-arg BASE_IMAGE=$static"
