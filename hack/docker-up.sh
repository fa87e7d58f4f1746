#!/usr/bin/env bash
# Makes sure a Docker engine answers, for `make image` and the kind tests: installs
# Debian's docker.io when dockerd is missing and starts dockerd when none answers.
#
# This machine's capability bounding set lacks CAP_SYS_RESOURCE, so runc refuses
# every --privileged container (kind's nodes are privileged). dockerd therefore runs
# its containers through e2e/cmd/runcwrap, which removes that capability from the
# OCI spec before the real runc applies it. On machines without that limit the
# wrapper changes nothing a container gets.
#
# dockerd is started with --iptables=false: it then leaves the host's firewall (and
# the FORWARD policy the netns lab relies on) alone; containers on one docker network
# still reach each other and the host, and published ports use docker-proxy.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="/usr/local/go/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
wrapper=/usr/local/libexec/herald/runcwrap
log=${HERALD_DOCKERD_LOG:-/var/log/herald-dockerd.log}

if ! command -v dockerd >/dev/null; then
  echo "docker-up: installing docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q && apt-get install -y -q --no-install-recommends docker.io
fi

# The wrapper is rebuilt when its source changes; a running dockerd keeps using
# the path, so replace the file atomically.
mkdir -p "$(dirname "$wrapper")"
tmp=$(mktemp "$wrapper.XXXXXX")
(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$tmp" ./e2e/cmd/runcwrap)
if cmp -s "$tmp" "$wrapper"; then rm -f "$tmp"; else chmod 755 "$tmp" && mv -f "$tmp" "$wrapper"; fi

answers() { /usr/bin/docker info --format '{{.DefaultRuntime}}' 2>/dev/null; }

if rt=$(answers); then
  echo "docker-up: dockerd answers (default runtime $rt)"
  # CAP_SYS_RESOURCE is capability 24.
  capbnd=$(awk '/^CapBnd:/ {print $2}' /proc/1/status)
  if [[ $rt != herald-runc ]] && (( ((0x$capbnd >> 24) & 1) == 0 )); then
    echo "docker-up: this machine cannot grant CAP_SYS_RESOURCE and the running dockerd" \
      "does not use $wrapper: privileged containers (kind nodes) would fail. Stop it, or restart" \
      "it with --add-runtime herald-runc=$wrapper --default-runtime herald-runc" >&2
    exit 1
  fi
  exit 0
fi

# kind mounts /lib/modules into its nodes; the host may have none.
mkdir -p /lib/modules
echo "docker-up: starting dockerd (log $log)"
setsid nohup dockerd \
  --add-runtime "herald-runc=$wrapper" --default-runtime herald-runc \
  --iptables=false >>"$log" 2>&1 </dev/null &
for _ in $(seq 1 120); do
  answers >/dev/null && { echo "docker-up: dockerd is up"; exit 0; }
  sleep 0.5
done
echo "docker-up: dockerd did not answer within 60 s; its log:" >&2
tail -n 30 "$log" >&2
exit 1
