#!/bin/bash
# Runs before every kubelet start: makes sure the cgroups that kind's kubelet config
# names (cgroupRoot /kubelet, systemd driver -> kubelet.slice) exist and, on cgroup
# v2, have every controller delegated to them.
set -euo pipefail
if [[ ! -f /sys/fs/cgroup/cgroup.controllers ]]; then
  mkdir -p /sys/fs/cgroup/systemd/kubelet
  exit 0
fi
delegate() { sed -e 's/^/+/' -e 's/ / +/g' "/sys/fs/cgroup$1/cgroup.controllers" > "/sys/fs/cgroup$1/cgroup.subtree_control"; }
delegate ""
for g in /kubelet /kubelet.slice; do mkdir -p "/sys/fs/cgroup$g" && delegate "$g"; done
