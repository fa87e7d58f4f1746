// Package plan turns cluster state into what the speakers should announce in layer 2
// mode: for each LoadBalancer address, the nodes that may announce it and on which
// interfaces. It is pure (no client, no sockets, no clock), so every speaker derives
// the same plan from the same objects, and it can be tested and benchmarked alone.
package plan

import (
	"maps"
	"net/netip"
	"slices"

	"go4.org/netipx"
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
}

// Pool is an IPPool: its name, labels (for pool selectors) and addresses.
type Pool struct {
	Name      string
	Labels    map[string]string
	Addresses *netipx.IPSet
}

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
)

func (s Skip) String() string {
	switch s {
	case SkipNotCovered:
		return "NotCovered"
	case SkipNoEligibleNode:
		return "NoEligibleNode"
	}
	return "Unknown"
}

// Plan is the outcome for a whole cluster.
type Plan struct {
	Groups []Group
	// Skipped maps Service keys that are not announced to the reason.
	Skipped map[string]Skip
}

// Compute builds the plan. Services sharing an address are merged into one group
// (they must be answered for by the same node), and the eligible nodes of a group
// are those eligible for every Service in it.
func Compute(services []Service, nodes []Node, pools []Pool, anns []Announcement) Plan {
	out := Plan{Skipped: map[string]Skip{}}
	type svcPlan struct {
		svc   Service
		nodes map[string]bool
		ifs   []string
		anns  []string
	}
	var planned []svcPlan
	for _, s := range services {
		if len(s.IPs) == 0 {
			continue
		}
		covering := coveringAnnouncements(s, pools, anns)
		if len(covering) == 0 {
			out.Skipped[s.Key] = SkipNotCovered
			continue
		}
		eligible := map[string]bool{}
		var ifs, names []string
		for _, a := range covering {
			names = append(names, a.Name)
			ifs = append(ifs, a.Interfaces...)
			for _, n := range nodes {
				if !n.Ready || hasKey(n.Labels, ExcludeLabel) || !a.NodeSelector.matches(n.Labels) {
					continue
				}
				if s.LocalTraffic && !s.EndpointNodes[n.Name] {
					continue
				}
				eligible[n.Name] = true
			}
		}
		if len(eligible) == 0 {
			out.Skipped[s.Key] = SkipNoEligibleNode
			continue
		}
		planned = append(planned, svcPlan{s, eligible, ifs, names})
	}

	// Union-find over addresses: Services sharing any address form one group.
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
	groups := map[netip.Addr]*Group{}
	groupNodes := map[netip.Addr]map[string]bool{}
	for _, p := range planned {
		root := find(p.svc.IPs[0])
		g := groups[root]
		if g == nil {
			g = &Group{}
			groups[root] = g
			groupNodes[root] = maps.Clone(p.nodes)
		} else {
			for n := range groupNodes[root] {
				if !p.nodes[n] {
					delete(groupNodes[root], n)
				}
			}
		}
		g.IPs = append(g.IPs, p.svc.IPs...)
		g.Services = append(g.Services, p.svc.Key)
		g.Interfaces = append(g.Interfaces, p.ifs...)
		g.Announcements = append(g.Announcements, p.anns...)
	}
	for root, g := range groups {
		g.IPs = sortedUniqueAddrs(g.IPs)
		g.Key = g.IPs[0].String()
		g.Services = sortedUnique(g.Services)
		g.Interfaces = sortedUnique(g.Interfaces)
		g.Announcements = sortedUnique(g.Announcements)
		for n := range groupNodes[root] {
			g.Nodes = append(g.Nodes, n)
		}
		slices.Sort(g.Nodes)
		if len(g.Nodes) == 0 {
			for _, s := range g.Services {
				out.Skipped[s] = SkipNoEligibleNode
			}
			continue
		}
		out.Groups = append(out.Groups, *g)
	}
	slices.SortFunc(out.Groups, func(a, b Group) int { return a.IPs[0].Compare(b.IPs[0]) })
	return out
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// coveringAnnouncements returns the L2Announcements that cover a Service: one
// selecting it and covering the pool of each of its addresses.
func coveringAnnouncements(s Service, pools []Pool, anns []Announcement) []Announcement {
	var out []Announcement
	for _, a := range anns {
		if !a.ServiceSelector.matches(s.Labels) {
			continue
		}
		all := true
		for _, ip := range s.IPs {
			if !a.coversAddr(ip, pools) {
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

// coversAddr reports whether some pool the announcement covers holds ip.
func (a Announcement) coversAddr(ip netip.Addr, pools []Pool) bool {
	return poolsCover(a.Pools, a.PoolSelector, ip, pools)
}

// CoversPool is the rule of L2 and BGP announcements: one naming pools covers
// those; else one with a pool selector covers the pools it selects; one with
// neither covers every pool. The controller's Ready conditions use it too, so
// what they say is what the speakers do.
func CoversPool(names []string, sel Selector, pool string, labels map[string]string) bool {
	switch {
	case len(names) > 0:
		return slices.Contains(names, pool)
	case sel != nil:
		return sel(labels)
	}
	return true
}

// poolsCover reports whether a pool covered under CoversPool holds ip.
func poolsCover(names []string, sel Selector, ip netip.Addr, pools []Pool) bool {
	for _, p := range pools {
		if p.Addresses != nil && p.Addresses.Contains(ip) && CoversPool(names, sel, p.Name, p.Labels) {
			return true
		}
	}
	return false
}

func sortedUnique(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

func sortedUniqueAddrs(s []netip.Addr) []netip.Addr {
	slices.SortFunc(s, netip.Addr.Compare)
	return slices.Compact(s)
}
