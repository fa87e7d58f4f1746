package layer2

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// ErrNoInterface is returned by ChooseInterface when no usable interface can
// announce an address.
var ErrNoInterface = errors.New("no usable interface")

// A Link is a network interface as interface choice sees it.
type Link struct {
	Name         string
	Index        int
	HardwareAddr net.HardwareAddr
	// Kind is the link's type as netlink reports it: "device" for a NIC,
	// "veth", "bridge", "bond", "vlan", "dummy", "vxlan" and so on.
	Kind string
	// Up reports whether the link is administratively up and its carrier is not
	// known to be down.
	Up bool
	// Loopback reports whether the link is a loopback device.
	Loopback bool
	// Prefixes are the link's addresses with the length of their connected
	// subnet, as `ip addr` shows them: 10.77.0.11/24, fd77::11/64.
	Prefixes []netip.Prefix
}

// usable reports whether l can announce addresses with ARP or NDP.
func (l *Link) usable() bool {
	return l.Up && !l.Loopback && len(l.HardwareAddr) == 6
}

// A Topology is a snapshot of a node's links and default routes.
type Topology struct {
	Links []Link
	// DefaultIPv4 and DefaultIPv6 name the links of the preferred default route
	// of each family; empty when there is none.
	DefaultIPv4, DefaultIPv6 string
}

// ChoiceReason says why ChooseInterface picked an interface.
type ChoiceReason int

const (
	// ChoiceConnected: the interface's connected subnet holds the address.
	ChoiceConnected ChoiceReason = iota + 1
	// ChoiceDefaultRoute: no connected subnet holds the address; the interface
	// has the default route of its family.
	ChoiceDefaultRoute
	// ChoiceAllowList: neither rule found an allowed interface; the first usable
	// interface of the allow-list was taken, since naming it says the operator
	// wants the address there (a VLAN for LoadBalancer addresses often carries no
	// node address at all).
	ChoiceAllowList
)

func (r ChoiceReason) String() string {
	switch r {
	case ChoiceConnected:
		return "connectedSubnet"
	case ChoiceDefaultRoute:
		return "defaultRoute"
	case ChoiceAllowList:
		return "allowList"
	}
	return "unknown"
}

// A Choice is the interface chosen for an address, and why.
type Choice struct {
	Interface string
	Reason    ChoiceReason
}

// ChooseInterface picks the interface to announce addr on: the usable interface
// whose connected subnet holds addr (the longest prefix wins; ties go to the lower
// index), else the interface with the default route of addr's family. When allow
// is not empty only the interfaces it names are considered, and if neither rule
// finds one the first usable interface in allow is taken. Usable interfaces are
// up, not loopback, and have an Ethernet address. Host prefixes (/32, /128) are
// no connected subnet: they are where a node holds single addresses, such as
// LoadBalancer addresses bound for a Service proxy.
func ChooseInterface(t Topology, addr netip.Addr, allow []string) (Choice, error) {
	addr = normalize(addr)
	if !addr.IsValid() {
		return Choice{}, fmt.Errorf("choose interface: invalid address")
	}
	eligible := func(l *Link) bool {
		return l.usable() && (len(allow) == 0 || slices.Contains(allow, l.Name))
	}

	var best *Link
	bestBits := -1
	for i := range t.Links {
		l := &t.Links[i]
		if !eligible(l) {
			continue
		}
		for _, p := range l.Prefixes {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p))
			if p.Addr().BitLen() != addr.BitLen() || p.Bits() >= addr.BitLen() || !p.Contains(addr) {
				continue
			}
			if p.Bits() > bestBits || (p.Bits() == bestBits && l.Index < best.Index) {
				best, bestBits = l, p.Bits()
			}
		}
	}
	if best != nil {
		return Choice{Interface: best.Name, Reason: ChoiceConnected}, nil
	}

	def := t.DefaultIPv4
	if addr.Is6() {
		def = t.DefaultIPv6
	}
	if l := t.link(def); l != nil && eligible(l) {
		return Choice{Interface: l.Name, Reason: ChoiceDefaultRoute}, nil
	}

	for _, name := range allow {
		if l := t.link(name); l != nil && l.usable() {
			return Choice{Interface: l.Name, Reason: ChoiceAllowList}, nil
		}
	}
	return Choice{}, fmt.Errorf("choose interface for %s: %w", addr, ErrNoInterface)
}

// link returns the link called name, or nil.
func (t *Topology) link(name string) *Link {
	if name == "" {
		return nil
	}
	for i := range t.Links {
		if t.Links[i].Name == name {
			return &t.Links[i]
		}
	}
	return nil
}

// unmapBits is how many prefix bits an IPv4-mapped IPv6 prefix loses when its
// address is unmapped.
func unmapBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return 96
	}
	return 0
}
