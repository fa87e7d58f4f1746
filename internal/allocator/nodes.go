package allocator

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// SetNodeAddresses replaces the Nodes' own addresses (InternalIP and ExternalIP),
// each mapped to the nodes that have it. Such an address is never given to a
// Service: the node already answers ARP/NDP for it, and a second answer from the
// announcing speaker would split its traffic. A Service that already holds one
// (the node got it after the Service did) keeps it, because taking it away would
// cut the Service's traffic for certain while keeping it leaves the choice to a
// person; the controller says so with a Warning. It reports whether anything
// changed.
func (a *Allocator) SetNodeAddresses(nodes map[netip.Addr][]string) bool {
	next := make(map[netip.Addr][]string, len(nodes))
	for ip, names := range nodes {
		if len(names) == 0 {
			continue
		}
		n := slices.Clone(names)
		slices.Sort(n)
		next[ip.Unmap()] = slices.Compact(n)
	}
	if maps.EqualFunc(a.nodes, next, slices.Equal) {
		return false
	}
	// Addresses that stop being a node's may let a refused Service succeed.
	for ip := range a.nodes {
		if _, still := next[ip]; !still {
			a.releases++
			break
		}
	}
	a.nodes = next
	return true
}

// NodesOf returns the nodes that have ip as their own address, sorted; nil when none.
func (a *Allocator) NodesOf(ip netip.Addr) []string { return slices.Clone(a.nodes[ip]) }

// NodeAddress is a Node's address that lies in a pool.
type NodeAddress struct {
	Addr  netip.Addr
	Nodes []string
}

func (n NodeAddress) String() string {
	return fmt.Sprintf("%s (node %s)", n.Addr, strings.Join(n.Nodes, ", "))
}

// NodeOverlaps returns, sorted by address, the Node addresses inside the named pool.
func (a *Allocator) NodeOverlaps(name string) []NodeAddress {
	p, ok := a.pools[name]
	if !ok || p.Addresses == nil {
		return nil
	}
	var out []NodeAddress
	for ip, names := range a.nodes {
		if p.Addresses.Contains(ip) {
			out = append(out, NodeAddress{ip, slices.Clone(names)})
		}
	}
	slices.SortFunc(out, func(x, y NodeAddress) int { return x.Addr.Compare(y.Addr) })
	return out
}

// nodeAddressRequested refuses a request for a Node's address, unless the Service
// already holds that address (it keeps it; see SetNodeAddresses).
func (a *Allocator) nodeAddressRequested(req Request, cur *holder) *Error {
	for _, ip := range req.IPs {
		nodes := a.nodes[ip]
		if len(nodes) == 0 || slices.Contains(cur.heldIPs(), ip) {
			continue
		}
		return &Error{ReasonNodeAddress, fmt.Sprintf("requested %s is an address of node %s; herald never hands out a node's own address, since the node already answers for it", ip, strings.Join(nodes, ", "))}
	}
	return nil
}

// skipper returns what automatic assignment skips in family f of pool p: Node
// addresses, and .0/.255 when the pool avoids buggy IPs; nil when nothing is.
func (a *Allocator) skipper(p *pool, f Family) func(u128) bool {
	avoid := p.AvoidBuggyIPs && f == IPv4
	if !avoid && len(a.nodes) == 0 {
		return nil
	}
	return func(x u128) bool {
		if avoid && buggy(x) {
			return true
		}
		return len(a.nodes) > 0 && len(a.nodes[x.addr(f)]) > 0
	}
}

func (h *holder) heldIPs() []netip.Addr {
	if h == nil {
		return nil
	}
	return h.ips
}

// formatSelector writes a label selector map as k=v pairs in key order, "none"
// when empty, for messages.
func formatSelector(sel map[string]string) string {
	if len(sel) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(sel))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + sel[k]
	}
	return strings.Join(parts, ",")
}
