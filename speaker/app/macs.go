package app

import (
	"bytes"
	"cmp"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/heraldlb/herald/speaker/layer2"
)

// MAC ranks: lower is published first, and kept when memberlist's metadata limit
// forces the list short.
const (
	rankBind    = iota // the link holding memberlist's bind address: the node's link to the others
	rankDefault        // a link with a default route
	rankSubnet         // another link with an on-link subnet (a second LAN, a VLAN, a bridge)
	rankNoAddr         // a NIC-like link with no address (an allow-listed VLAN, a bond port)
	rankSkip           // cannot carry an answer to a probe on the LAN
)

// publishedMACs returns the MACs a fellow speaker's ARP or NDP answer from this
// node could carry, most likely first, each once, lower case: what the node
// publishes in its memberlist metadata so that others do not take its answers
// for a foreign host's (conflict detection).
//
// An answer comes from a link on a shared segment: the node's own link (bind),
// a default-route link, or one with an on-link subnet. Pod plumbing is left
// out however many pods there are: veths with no subnet address (the host end
// of most CNIs' pod links; Calico gives every one the same MAC, so dedup alone
// does not save them), veths holding only host routes (/32, /128: ptp CNIs put
// the gateway address on each host veth) and dummies (kube-ipvs0, node-local
// DNS). A veth is kept when it is the node's link or holds a subnet: a kind or
// lab node's eth0 is one end of a veth pair.
func publishedMACs(topo layer2.Topology, bind netip.Addr) []string {
	type ranked struct {
		rank int
		name string
		mac  net.HardwareAddr
	}
	var rs []ranked
	for i := range topo.Links {
		l := &topo.Links[i]
		if r := macRank(l, bind, topo); r != rankSkip {
			rs = append(rs, ranked{r, l.Name, l.HardwareAddr})
		}
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		return cmp.Or(cmp.Compare(a.rank, b.rank), strings.Compare(a.name, b.name), bytes.Compare(a.mac, b.mac))
	})
	out := make([]string, 0, len(rs))
	seen := make(map[string]bool, len(rs))
	for _, r := range rs {
		mac := strings.ToLower(r.mac.String())
		if !seen[mac] {
			seen[mac] = true
			out = append(out, mac)
		}
	}
	return out
}

// macRank says how likely an ARP or NDP answer from this node is to come from l.
func macRank(l *layer2.Link, bind netip.Addr, topo layer2.Topology) int {
	if !l.Up || l.Loopback || len(l.HardwareAddr) != 6 || bytes.Equal(l.HardwareAddr, make(net.HardwareAddr, 6)) {
		return rankSkip
	}
	subnet := false
	for _, p := range l.Prefixes {
		if bind.IsValid() && p.Addr() == bind {
			return rankBind
		}
		a := p.Addr()
		if !a.IsLinkLocalUnicast() && !a.IsLoopback() && !a.IsMulticast() && p.Bits() < a.BitLen() {
			subnet = true
		}
	}
	switch {
	case l.Name != "" && (l.Name == topo.DefaultIPv4 || l.Name == topo.DefaultIPv6):
		return rankDefault
	case l.Kind == "dummy":
		return rankSkip
	case subnet:
		return rankSubnet
	case l.Kind == "veth" || l.Kind == "netkit" || l.Kind == "tun" || l.Kind == "tuntap":
		return rankSkip
	}
	return rankNoAddr
}
