package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// ConflistName is the file the agent writes into the CNI configuration directory.
// The kind node image relies on this name; "10-" sorts it before anything a
// package might drop there.
const ConflistName = "10-herald-kind.conflist"

// networkName is the CNI network name, bridgeName the Linux bridge the pods hang off.
const (
	networkName = "herald-kind"
	bridgeName  = "herald0"
)

// Route is one route the agent keeps: another Node's pod CIDR via that Node's
// InternalIP of the same family.
type Route struct {
	Dst netip.Prefix
	Via netip.Addr
}

func (r Route) String() string { return r.Dst.String() + " via " + r.Via.String() }

// skipReason says why a Node (or one of its pod CIDRs) contributes no route or
// no IPAM range.
type skipReason int

const (
	skipNoPodCIDR        skipReason = iota + 1 // spec.podCIDRs is empty
	skipBadPodCIDR                             // a pod CIDR does not parse or is not canonical
	skipNoInternalIP                           // no InternalIP of the pod CIDR's family
	skipOverlapsSelf                           // the pod CIDR overlaps one of our own
	skipDuplicatePodCIDR                       // an earlier Node (by name) claims the same pod CIDR
)

func (r skipReason) String() string {
	switch r {
	case skipNoPodCIDR:
		return "noPodCIDR"
	case skipBadPodCIDR:
		return "badPodCIDR"
	case skipNoInternalIP:
		return "noInternalIP"
	case skipOverlapsSelf:
		return "overlapsSelf"
	case skipDuplicatePodCIDR:
		return "duplicatePodCIDR"
	}
	return fmt.Sprintf("skipReason(%d)", int(r))
}

// Skip records a Node, or one pod CIDR of it, left out of the plan.
type Skip struct {
	Node    string
	PodCIDR string // empty when the reason concerns the whole Node
	Reason  skipReason
}

// Plan is what the agent wants the node to look like.
type Plan struct {
	// SelfFound reports whether our own Node was among the Nodes.
	SelfFound bool
	// PodCIDRs are our own Node's valid pod CIDRs, in spec order.
	PodCIDRs []netip.Prefix
	// Conflist is the CNI configuration for PodCIDRs; nil while there are none.
	Conflist []byte
	// Routes are the routes to the other Nodes' pod CIDRs, sorted by Dst.
	Routes []Route
	// Skipped lists what was left out and why, in Node name order.
	Skipped []Skip
}

// MakePlan computes the CNI configuration and the routes for the Node named self,
// given every Node in the cluster. It has no client, no sockets and no clock: the
// same Nodes always give the same Plan. Odd Nodes are skipped, never fatal.
func MakePlan(self string, nodes []*corev1.Node) Plan {
	nodes = slices.Clone(nodes)
	slices.SortFunc(nodes, func(a, b *corev1.Node) int { return cmp.Compare(a.Name, b.Name) })

	var p Plan
	for _, n := range nodes {
		if n.Name != self {
			continue
		}
		p.SelfFound = true
		var skips []Skip
		p.PodCIDRs, skips = podCIDRs(n)
		p.Skipped = append(p.Skipped, skips...)
	}
	if len(p.PodCIDRs) > 0 {
		p.Conflist = conflist(p.PodCIDRs)
	}

	claimed := map[netip.Prefix]bool{}
	for _, n := range nodes {
		if n.Name == self {
			continue
		}
		cidrs, skips := podCIDRs(n)
		p.Skipped = append(p.Skipped, skips...)
		for _, c := range cidrs {
			via := internalIP(n, c.Addr().Is4())
			switch {
			case !via.IsValid():
				p.Skipped = append(p.Skipped, Skip{n.Name, c.String(), skipNoInternalIP})
			case slices.ContainsFunc(p.PodCIDRs, c.Overlaps):
				p.Skipped = append(p.Skipped, Skip{n.Name, c.String(), skipOverlapsSelf})
			case claimed[c]:
				p.Skipped = append(p.Skipped, Skip{n.Name, c.String(), skipDuplicatePodCIDR})
			default:
				claimed[c] = true
				p.Routes = append(p.Routes, Route{Dst: c, Via: via})
			}
		}
	}
	slices.SortFunc(p.Routes, func(a, b Route) int {
		if c := a.Dst.Addr().Compare(b.Dst.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Dst.Bits(), b.Dst.Bits())
	})
	return p
}

// podCIDRs returns n's valid pod CIDRs, falling back to the singular
// spec.podCIDR when the list is empty, and what it skipped.
func podCIDRs(n *corev1.Node) ([]netip.Prefix, []Skip) {
	raw := n.Spec.PodCIDRs
	if len(raw) == 0 && n.Spec.PodCIDR != "" {
		raw = []string{n.Spec.PodCIDR}
	}
	if len(raw) == 0 {
		return nil, []Skip{{Node: n.Name, Reason: skipNoPodCIDR}}
	}
	var (
		out   []netip.Prefix
		skips []Skip
	)
	for _, s := range raw {
		c, err := netip.ParsePrefix(s)
		if err != nil || c != c.Masked() || c.Addr().Is4In6() || slices.Contains(out, c) {
			skips = append(skips, Skip{n.Name, s, skipBadPodCIDR})
			continue
		}
		out = append(out, c)
	}
	return out, skips
}

// internalIP returns n's first InternalIP of the family (IPv4 when v4), or the
// zero Addr when it has none.
func internalIP(n *corev1.Node, v4 bool) netip.Addr {
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		if err != nil || ip.Zone() != "" {
			continue
		}
		ip = ip.Unmap()
		if ip.Is4() == v4 && ip.IsGlobalUnicast() {
			return ip
		}
	}
	return netip.Addr{}
}

// The CNI configuration, in the shape the reference plugins (bridge, host-local,
// portmap from containernetworking/plugins v1) read.
type (
	cniConflist struct {
		CNIVersion string `json:"cniVersion"`
		Name       string `json:"name"`
		Plugins    []any  `json:"plugins"`
	}
	cniBridge struct {
		Type        string  `json:"type"`
		Bridge      string  `json:"bridge"`
		IsGateway   bool    `json:"isGateway"`
		IPMasq      bool    `json:"ipMasq"`
		HairpinMode bool    `json:"hairpinMode"`
		IPAM        cniIPAM `json:"ipam"`
	}
	cniIPAM struct {
		Type   string       `json:"type"`
		Ranges [][]cniRange `json:"ranges"`
		Routes []cniRoute   `json:"routes"`
	}
	cniRange struct {
		Subnet string `json:"subnet"`
	}
	cniRoute struct {
		Dst string `json:"dst"`
	}
	cniPortmap struct {
		Type         string          `json:"type"`
		Capabilities map[string]bool `json:"capabilities"`
	}
)

// conflist renders the CNI configuration for the pod CIDRs: one host-local range
// set and one default route per CIDR, in the order given (the first is the
// Node's primary family).
func conflist(cidrs []netip.Prefix) []byte {
	ipam := cniIPAM{Type: "host-local"}
	for _, c := range cidrs {
		ipam.Ranges = append(ipam.Ranges, []cniRange{{Subnet: c.String()}})
		def := "0.0.0.0/0"
		if c.Addr().Is6() {
			def = "::/0"
		}
		ipam.Routes = append(ipam.Routes, cniRoute{Dst: def})
	}
	conf := cniConflist{
		CNIVersion: "1.0.0",
		Name:       networkName,
		Plugins: []any{
			cniBridge{Type: "bridge", Bridge: bridgeName, IsGateway: true, HairpinMode: true, IPAM: ipam},
			cniPortmap{Type: "portmap", Capabilities: map[string]bool{"portMappings": true}},
		},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(conf); err != nil {
		// Only fixed types of strings and bools are encoded: this cannot fail.
		panic(fmt.Sprintf("encoding the CNI configuration: %v", err))
	}
	return buf.Bytes()
}
