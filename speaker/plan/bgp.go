package plan

import (
	"cmp"
	"net/netip"
	"slices"
)

// BGPPeer is a BGPPeer as the plan needs it.
type BGPPeer struct {
	Name string
	// NodeSelector picks the nodes that keep the session; nil is every node.
	NodeSelector Selector
	// IPv6 is the family of the peer's address. A peer is sent prefixes of its
	// own family only: the next hop of an IPv6 prefix over an IPv4 session would
	// have to be an address the session does not carry, which routers handle
	// inconsistently.
	IPv6 bool
}

// LargeCommunity is a BGP large community (RFC 8092).
type LargeCommunity [3]uint32

// BGPAnnouncement is a BGPAnnouncement with its attributes parsed.
type BGPAnnouncement struct {
	Name string
	// Pools names pools; PoolSelector selects them by label. Neither set covers
	// every pool.
	Pools           []string
	PoolSelector    Selector
	NodeSelector    Selector
	ServiceSelector Selector
	// Peers names the BGPPeers announced to; empty is every peer.
	Peers            []string
	Communities      []uint32
	LargeCommunities []LargeCommunity
	// LocalPref is sent when HasLocalPref.
	LocalPref    uint32
	HasLocalPref bool
	// AggregationV4 and AggregationV6 are prefix lengths; 0 means a host route
	// (/32, /128). A /0 aggregate is not offered.
	AggregationV4, AggregationV6 int
}

// BGPRoute is one prefix sent to one peer.
type BGPRoute struct {
	Prefix           netip.Prefix
	Communities      []uint32
	LargeCommunities []LargeCommunity
	LocalPref        uint32
	HasLocalPref     bool
	// Services are the keys of the Services whose addresses the prefix carries.
	Services []string
}

// BGPPlan is what one node announces over BGP.
type BGPPlan struct {
	// Peers are the names of the BGPPeers this node keeps sessions with, sorted.
	Peers []string
	// Routes maps a peer's name to the routes this node sends it, sorted by prefix.
	Routes map[string][]BGPRoute
	// Announced maps a Service's key to the peers this node announces it to.
	Announced map[string][]string
	// Skipped maps keys of Services some BGPAnnouncement covers, but which this node
	// does not announce, to the reason.
	Skipped map[string]Skip
	// OutsidePools maps the key of a Service this node announces to its
	// announced addresses that no pool holds (retained by the controller and
	// covered through the Service's allocated-from-pool annotation), sorted.
	OutsidePools map[string][]netip.Addr
	// UnreadablePools maps the key of a Service this node announces to the
	// pools, sorted, whose spec cannot be parsed and whose addresses (last
	// valid, or by annotation) it announces.
	UnreadablePools map[string][]string
}

// ComputeBGP builds the BGP plan of the node named self. Unlike layer 2, there is
// no election: every eligible node announces, with itself as next hop, and routers
// spread traffic over them. A node is eligible for a Service when it is Ready, not
// excluded, selected by the announcement, and — for Local traffic — holds a ready
// endpoint of the Service. Addresses a node holds are never announced (Compute
// reports them in Plan.NodeAddressConflicts).
func ComputeBGP(self string, services []Service, nodes []Node, pools []Pool, peers []BGPPeer, anns []BGPAnnouncement) BGPPlan {
	out := BGPPlan{Routes: map[string][]BGPRoute{}, Announced: map[string][]string{}, Skipped: map[string]Skip{},
		OutsidePools: map[string][]netip.Addr{}, UnreadablePools: map[string][]string{}}
	var node *Node
	for i := range nodes {
		if nodes[i].Name == self {
			node = &nodes[i]
		}
	}
	if node == nil {
		return out
	}
	var mine []string
	v6 := map[string]bool{}
	for _, p := range peers {
		if p.NodeSelector.matches(node.Labels) {
			mine = append(mine, p.Name)
			v6[p.Name] = p.IPv6
		}
	}
	slices.Sort(mine)
	out.Peers = slices.Compact(mine)
	nodeOK := node.Ready && !hasKey(node.Labels, ExcludeLabel)

	type key struct {
		peer   string
		prefix netip.Prefix
	}
	routes := map[key]*BGPRoute{}
	held := nodeAddrs(nodes)
	for _, s := range services {
		covered, announced, nodeAddr := false, false, false
		var to []string
		var outside []netip.Addr
		var unreadable []string
		owners := attribute(s, pools)
		for _, a := range anns {
			if !a.ServiceSelector.matches(s.Labels) {
				continue
			}
			for i, ip := range s.IPs {
				if !owners[i].CoveredBy(a.Pools, a.PoolSelector) {
					continue
				}
				if _, ok := held[ip]; ok {
					nodeAddr = true
					continue
				}
				covered = true
				if !nodeOK || !a.NodeSelector.matches(node.Labels) || (s.LocalTraffic && !s.EndpointNodes[self]) {
					continue
				}
				prefix := aggregate(ip, a)
				for _, peer := range out.Peers {
					if (len(a.Peers) > 0 && !slices.Contains(a.Peers, peer)) || v6[peer] != ip.Is6() {
						continue
					}
					announced = true
					to = append(to, peer)
					if owners[i].OutsidePools() {
						outside = append(outside, ip)
					}
					unreadable = append(unreadable, owners[i].UnreadablePools()...)
					k := key{peer, prefix}
					r := routes[k]
					if r == nil {
						r = &BGPRoute{Prefix: prefix}
						routes[k] = r
					}
					r.merge(a, s.Key)
				}
			}
		}
		switch {
		case announced:
			out.Announced[s.Key] = sortedUnique(to)
			if len(outside) > 0 {
				out.OutsidePools[s.Key] = sortedUniqueAddrs(outside)
			}
			if len(unreadable) > 0 {
				out.UnreadablePools[s.Key] = sortedUnique(unreadable)
			}
		case covered:
			out.Skipped[s.Key] = SkipNoEligibleNode
		case nodeAddr:
			out.Skipped[s.Key] = SkipNodeAddress
		}
	}
	for k, r := range routes {
		slices.Sort(r.Communities)
		r.Communities = slices.Compact(r.Communities)
		slices.SortFunc(r.LargeCommunities, compareLarge)
		r.LargeCommunities = slices.Compact(r.LargeCommunities)
		r.Services = sortedUnique(r.Services)
		out.Routes[k.peer] = append(out.Routes[k.peer], *r)
	}
	for _, rs := range out.Routes {
		slices.SortFunc(rs, func(a, b BGPRoute) int {
			if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
				return c
			}
			return cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits())
		})
	}
	return out
}

// merge adds an announcement's attributes to a route several announcements or
// Services may share: communities add up, and the highest local preference wins.
func (r *BGPRoute) merge(a BGPAnnouncement, service string) {
	r.Communities = append(r.Communities, a.Communities...)
	r.LargeCommunities = append(r.LargeCommunities, a.LargeCommunities...)
	if a.HasLocalPref && (!r.HasLocalPref || a.LocalPref > r.LocalPref) {
		r.LocalPref, r.HasLocalPref = a.LocalPref, true
	}
	r.Services = append(r.Services, service)
}

// aggregate returns the prefix announcing ip under a.
func aggregate(ip netip.Addr, a BGPAnnouncement) netip.Prefix {
	bits := a.AggregationV4
	if ip.Is6() {
		bits = a.AggregationV6
	}
	if bits <= 0 || bits > ip.BitLen() {
		bits = ip.BitLen()
	}
	p, _ := ip.Prefix(bits)
	return p
}

func compareLarge(a, b LargeCommunity) int {
	for i := range a {
		if c := cmp.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

// CoveringBGP returns the BGPAnnouncements that select s and cover the pool of at
// least one of its addresses: those ComputeBGP announces s with.
func CoveringBGP(s Service, pools []Pool, anns []BGPAnnouncement) []BGPAnnouncement {
	owners := attribute(s, pools)
	var out []BGPAnnouncement
	for _, a := range anns {
		if !a.ServiceSelector.matches(s.Labels) {
			continue
		}
		for _, o := range owners {
			if o.CoveredBy(a.Pools, a.PoolSelector) {
				out = append(out, a)
				break
			}
		}
	}
	return out
}
