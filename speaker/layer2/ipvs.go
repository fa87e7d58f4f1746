package layer2

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// IPVSDevice is the dummy link kube-proxy in IPVS mode puts every Service
// address on.
const IPVSDevice = "kube-ipvs0"

// IPVSWithoutStrictARP reports whether this node runs kube-proxy in IPVS mode
// without strictARP, and why: kube-proxy then binds every LoadBalancer address to
// kube-ipvs0, and the kernel answers ARP for all of them on every link unless
// arp_ignore=1 and arp_announce=2 (what strictARP sets). Every node would answer
// for every address, whoever herald elects. sysctl reads a value under
// /proc/sys/net/ipv4/conf (e.g. "all/arp_ignore"); an unreadable one says
// nothing.
func IPVSWithoutStrictARP(topo Topology, sysctl func(name string) (string, error)) (bool, string) {
	found := false
	for _, l := range topo.Links {
		if l.Name == IPVSDevice {
			found = true
		}
	}
	if !found {
		return false, ""
	}
	ignore, err1 := sysctl("all/arp_ignore")
	announce, err2 := sysctl("all/arp_announce")
	if err1 != nil || err2 != nil {
		return false, ""
	}
	ignore, announce = strings.TrimSpace(ignore), strings.TrimSpace(announce)
	if ignore == "1" && announce == "2" {
		return false, ""
	}
	return true, fmt.Sprintf("%s exists (kube-proxy in IPVS mode) and net.ipv4.conf.all.arp_ignore=%s, arp_announce=%s (strictARP sets 1 and 2): the kernel answers ARP for every LoadBalancer address on this node", IPVSDevice, ignore, announce)
}

// ProcSysctl reads name under /proc/sys/net/ipv4/conf.
func ProcSysctl(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/proc/sys/net/ipv4/conf", filepath.Clean("/"+name)))
	if err != nil {
		return "", fmt.Errorf("reading sysctl %s: %w", name, err)
	}
	return string(b), nil
}
