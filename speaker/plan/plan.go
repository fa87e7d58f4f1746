// Package plan turns cluster state into what the speakers should announce in layer 2
// mode: for each LoadBalancer address, the nodes that may announce it and on which
// interfaces. It is pure (no client, no sockets, no clock), so every speaker derives
// the same plan from the same objects, and it can be tested and benchmarked alone.
package plan

import (
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/heraldlb/herald/internal/poolcover"
)

// ExcludeLabel marks nodes that must never announce load balancer addresses
// (a Kubernetes convention shared with cloud load balancers).
const ExcludeLabel = "node.kubernetes.io/exclude-from-external-load-balancers"

// Selector reports whether labels match; nil matches everything.
type Selector func(labels map[string]string) bool

func (s Selector) matches(l map[string]string) bool { return s == nil || s(l) }

// Node is a Kubernetes Node as the plan needs it.
type Node struct {
	Name   string
	Labels map[string]string
	Ready  bool
	// Addresses are the node's InternalIP and ExternalIP addresses (unmapped).
	// No speaker announces them for a Service: two MACs would answer for them.
	Addresses []netip.Addr
}

// Pool is an IPPool: its name, labels (for pool selectors), addresses, and
// whether its spec is unreadable (Addresses are then the last valid ones).
type Pool = poolcover.Pool

// Announcement is an L2Announcement.
type Announcement struct {
	Name string
	// Pools names pools; PoolSelector selects them by label. Neither set covers
	// every pool.
	Pools           []string
	PoolSelector    Selector
	NodeSelector    Selector
	ServiceSelector Selector
	// Interfaces restricts where to announce; empty lets the speaker choose.
	Interfaces []string
}

// Service is a LoadBalancer Service with addresses in its status.
type Service struct {
	// Key is "namespace/name".
	Key    string
	Labels map[string]string
	IPs    []netip.Addr
	// AllocatedFrom is the pool the controller gave the addresses from (its
	// herald.io/allocated-from-pool annotation). An address no pool holds is
	// covered by this pool's announcements: the controller retains it there.
	AllocatedFrom string
	// LocalTraffic is externalTrafficPolicy: Local: only nodes with a ready
	// endpoint of the Service may announce it.
	LocalTraffic bool
	// EndpointNodes are the nodes with at least one ready endpoint.
	EndpointNodes map[string]bool
}

// Group is what one election decides: addresses that must be announced together
// from one node (all addresses of a Service, and of every Service sharing one of
// them), the nodes that may, and the interfaces allowed.
type Group struct {
	// Key names the group for the election: its lowest address.
	Key string
	// IPs are the group's addresses, sorted.
	IPs []netip.Addr
	// Services are the keys of the Services announced by the group, sorted.
	Services []string
	// Nodes are the eligible nodes, sorted.
	Nodes []string
	// Interfaces, when not empty, restrict announcing to these interface names.
	Interfaces []string
	// Announcements name the L2Announcements covering the group, sorted.
	Announcements []string
	// OutsidePools are the group's addresses that no pool holds, sorted: the
	// controller retains them (orphan policy Retain, a deleted pool) and they
	// are announced with the pool their Service's annotation names. The owner
	// should warn that they are outside every pool.
	OutsidePools []netip.Addr
	// UnreadablePools name the pools, sorted, whose spec cannot be parsed and
	// whose addresses (last valid, or by annotation) the group announces.
	UnreadablePools []string
	// Unserved is set when no node is eligible for every Service of the group
	// (Local Services sharing an address with endpoints on different nodes):
	// Nodes are then those eligible for the most of them, and Unserved maps
	// each such node to the keys of the Services, sorted, that it cannot serve,
	// so whichever node is elected can say which Services are unreachable
	// through it. Nil when every node of Nodes serves every Service.
	Unserved map[string][]string
}

// Skip says why a Service is not announced in layer 2 mode.
type Skip int

const (
	// SkipNotCovered: no L2Announcement covers the Service's pool (or selects it).
	SkipNotCovered Skip = iota + 1
	// SkipNoEligibleNode: covered, but no node may announce it (none ready, all
	// excluded, outside every nodeSelector, or — for Local traffic — none with a
	// ready endpoint).
	SkipNoEligibleNode
	// SkipNodeAddress: every address of the Service is a node's address, which
	// no speaker announces (see Plan.NodeAddressConflicts).
	SkipNodeAddress
)

func (s Skip) String() string {
	switch s {
	case SkipNotCovered:
		return "NotCovered"
	case SkipNoEligibleNode:
		return "NoEligibleNode"
	case SkipNodeAddress:
		return "NodeAddress"
	}
	return "Unknown"
}

// NodeAddressConflict is a Service address that a node holds, left out of the
// plan: announcing it would make a second MAC answer for the node's address.
type NodeAddressConflict struct {
	Addr    netip.Addr
	Node    string
	Service string
}

// Plan is the outcome for a whole cluster.
type Plan struct {
	Groups []Group
	// Skipped maps Service keys that are not announced to the reason.
	Skipped map[string]Skip
	// NodeAddressConflicts are the Service addresses left out because a node
	// holds them, sorted by address, then Service, whether or not an
	// announcement covers the Service. ComputeBGP leaves the same addresses
	// out, so every speaker can report them from here, for both modes.
	NodeAddressConflicts []NodeAddressConflict
}

// svcPlan is one Service on its way into a group.
type svcPlan struct {
	svc        Service
	nodes      map[string]bool
	ifs        []string
	anns       []string
	outside    []netip.Addr
	unreadable []string
}

// Compute builds the plan. Services sharing an address are merged into one group
// (they must be answered for by the same node), and the eligible nodes of a group
// are those eligible for every Service in it; when there are none, those
// eligible for the most of them, so that a second Service never silences a first
// one that works (Group.Unserved says who is left out).
func Compute(services []Service, nodes []Node, pools []Pool, anns []Announcement) Plan {
	out := Plan{Skipped: map[string]Skip{}}
	held := nodeAddrs(nodes)
	var planned []svcPlan
	for _, s := range services {
		if len(s.IPs) == 0 {
			continue
		}
		var conflicts []NodeAddressConflict
		s.IPs, conflicts = withoutNodeAddrs(s, held)
		out.NodeAddressConflicts = append(out.NodeAddressConflicts, conflicts...)
		if len(s.IPs) == 0 {
			out.Skipped[s.Key] = SkipNodeAddress
			continue
		}
		owners := attribute(s, pools)
		covering := coveringAnnouncements(s, owners, anns)
		if len(covering) == 0 {
			out.Skipped[s.Key] = SkipNotCovered
			continue
		}
		p := svcPlan{svc: s, nodes: map[string]bool{}}
		for _, a := range covering {
			p.anns = append(p.anns, a.Name)
			p.ifs = append(p.ifs, a.Interfaces...)
			for _, n := range nodes {
				if !n.Ready || hasKey(n.Labels, ExcludeLabel) || !a.NodeSelector.matches(n.Labels) {
					continue
				}
				if s.LocalTraffic && !s.EndpointNodes[n.Name] {
					continue
				}
				p.nodes[n.Name] = true
			}
		}
		if len(p.nodes) == 0 {
			out.Skipped[s.Key] = SkipNoEligibleNode
			continue
		}
		for i, o := range owners {
			if o.OutsidePools() {
				p.outside = append(p.outside, s.IPs[i])
			}
			p.unreadable = append(p.unreadable, o.UnreadablePools()...)
		}
		planned = append(planned, p)
	}
	sortConflicts(out.NodeAddressConflicts)

	for _, members := range groupByAddress(planned) {
		g := Group{}
		for _, p := range members {
			g.IPs = append(g.IPs, p.svc.IPs...)
			g.Services = append(g.Services, p.svc.Key)
			g.Interfaces = append(g.Interfaces, p.ifs...)
			g.Announcements = append(g.Announcements, p.anns...)
			g.OutsidePools = append(g.OutsidePools, p.outside...)
			g.UnreadablePools = append(g.UnreadablePools, p.unreadable...)
		}
		g.IPs = sortedUniqueAddrs(g.IPs)
		g.Key = g.IPs[0].String()
		g.Services = sortedUnique(g.Services)
		g.Interfaces = sortedUnique(g.Interfaces)
		g.Announcements = sortedUnique(g.Announcements)
		g.OutsidePools = sortedUniqueAddrs(g.OutsidePools)
		g.UnreadablePools = sortedUnique(g.UnreadablePools)
		g.Nodes, g.Unserved = groupNodes(members)
		out.Groups = append(out.Groups, g)
	}
	slices.SortFunc(out.Groups, func(a, b Group) int { return a.IPs[0].Compare(b.IPs[0]) })
	return out
}

// groupByAddress merges Services sharing any address (union-find over
// addresses) and returns the groups' members.
func groupByAddress(planned []svcPlan) map[netip.Addr][]svcPlan {
	parent := map[netip.Addr]netip.Addr{}
	var find func(netip.Addr) netip.Addr
	find = func(a netip.Addr) netip.Addr {
		p, ok := parent[a]
		if !ok || p == a {
			parent[a] = a
			return a
		}
		r := find(p)
		parent[a] = r
		return r
	}
	for _, p := range planned {
		for _, ip := range p.svc.IPs[1:] {
			ra, rb := find(p.svc.IPs[0]), find(ip)
			if ra != rb {
				parent[rb] = ra
			}
		}
		find(p.svc.IPs[0])
	}
	groups := map[netip.Addr][]svcPlan{}
	for _, p := range planned {
		root := find(p.svc.IPs[0])
		groups[root] = append(groups[root], p)
	}
	return groups
}

// groupNodes returns the nodes eligible for a group, sorted, and what they leave
// unserved. Every member has at least one eligible node. Nodes eligible for
// every member win; with none, the nodes eligible for the most members all tie:
// they keep the address up for as many Services as can be served, and because
// the node announcing today stays among them whenever it serves as many as any,
// a sticky election need not move the address when a second Service's
// endpoints appear elsewhere.
func groupNodes(members []svcPlan) ([]string, map[string][]string) {
	count := map[string]int{}
	for _, p := range members {
		for n := range p.nodes {
			count[n]++
		}
	}
	most := slices.Max(slices.Collect(maps.Values(count)))
	var nodes []string
	for n, c := range count {
		if c == most {
			nodes = append(nodes, n)
		}
	}
	slices.Sort(nodes)
	if most == len(members) {
		return nodes, nil
	}
	unserved := map[string][]string{}
	for _, n := range nodes {
		for _, p := range members {
			if !p.nodes[n] {
				unserved[n] = append(unserved[n], p.svc.Key)
			}
		}
		unserved[n] = sortedUnique(unserved[n])
	}
	return nodes, unserved
}

// nodeAddrs maps every node address to its node.
func nodeAddrs(nodes []Node) map[netip.Addr]string {
	held := map[netip.Addr]string{}
	for _, n := range nodes {
		for _, a := range n.Addresses {
			held[a.Unmap()] = n.Name
		}
	}
	return held
}

// withoutNodeAddrs returns s's addresses that no node holds, and a conflict for
// each one that a node does. With a conflict the addresses are copied, not
// filtered in place: the caller's Service shares its slice.
func withoutNodeAddrs(s Service, held map[netip.Addr]string) ([]netip.Addr, []NodeAddressConflict) {
	if !slices.ContainsFunc(s.IPs, func(ip netip.Addr) bool { _, ok := held[ip]; return ok }) {
		return s.IPs, nil // the common case, without allocating
	}
	var ips []netip.Addr
	var conflicts []NodeAddressConflict
	for _, ip := range s.IPs {
		if n, ok := held[ip]; ok {
			conflicts = append(conflicts, NodeAddressConflict{Addr: ip, Node: n, Service: s.Key})
			continue
		}
		ips = append(ips, ip)
	}
	return ips, conflicts
}

func sortConflicts(cs []NodeAddressConflict) {
	slices.SortFunc(cs, func(a, b NodeAddressConflict) int {
		if c := a.Addr.Compare(b.Addr); c != 0 {
			return c
		}
		return strings.Compare(a.Service, b.Service)
	})
}

// attribute ties each of s's addresses to its pools (see poolcover.Attribute).
func attribute(s Service, pools []Pool) []poolcover.Owner {
	owners := make([]poolcover.Owner, len(s.IPs))
	for i, ip := range s.IPs {
		owners[i] = poolcover.Attribute(ip, s.AllocatedFrom, pools)
	}
	return owners
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// coveringAnnouncements returns the L2Announcements that cover a Service: one
// selecting it and covering a pool of each of its addresses (owners, in the
// order of s.IPs).
func coveringAnnouncements(s Service, owners []poolcover.Owner, anns []Announcement) []Announcement {
	var out []Announcement
	for _, a := range anns {
		if !a.ServiceSelector.matches(s.Labels) {
			continue
		}
		all := true
		for _, o := range owners {
			if !o.CoveredBy(a.Pools, a.PoolSelector) {
				all = false
				break
			}
		}
		if all {
			out = append(out, a)
		}
	}
	return out
}

func sortedUnique(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

func sortedUniqueAddrs(s []netip.Addr) []netip.Addr {
	slices.SortFunc(s, netip.Addr.Compare)
	return slices.Compact(s)
}

// Covering returns the L2Announcements that cover s (see Compute): the
// announcements whose selectors explain who may announce it.
func Covering(s Service, pools []Pool, anns []Announcement) []Announcement {
	return coveringAnnouncements(s, attribute(s, pools), anns)
}
