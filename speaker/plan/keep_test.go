package plan

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// unreadable is a pool whose spec no longer parses; entries are the last valid
// addresses the speaker saw (none: it saw none since it started).
func unreadable(name string, labels map[string]string, entries ...string) Pool {
	p := Pool{Name: name, Labels: labels, Unreadable: true}
	if len(entries) > 0 {
		p.Addresses = pool(name, labels, entries...).Addresses
	}
	return p
}

// TestComputeNeverDarkOnPoolEdit pins issue 8, "never go dark on an edit": a pool
// edit the speaker cannot parse, and an address retained outside every pool,
// kept the Service silent (SkipNotCovered) in layer 2.
func TestComputeNeverDarkOnPoolEdit(t *testing.T) {
	lan := map[string]string{"net": "lan"}
	byName := []Announcement{{Name: "l2", Pools: []string{"lan"}}}
	byLabel := []Announcement{{Name: "l2", PoolSelector: label("net", "lan")}}
	group := func(ip string, outside []netip.Addr, unreadable []string) Plan {
		return Plan{Groups: []Group{{Key: ip, IPs: addrs(ip), Services: []string{"ns/a"}, Nodes: []string{"n1", "n2", "n3"},
			Announcements: []string{"l2"}, OutsidePools: outside, UnreadablePools: unreadable}}, Skipped: map[string]Skip{}}
	}
	tests := []struct {
		name  string
		svc   Service
		pools []Pool
		anns  []Announcement
		want  Plan
	}{
		{
			name:  "unreadable pool keeps its last valid addresses (by name)",
			svc:   Service{Key: "ns/a", IPs: addrs("10.0.0.1")},
			pools: []Pool{unreadable("lan", lan, "10.0.0.0/24")},
			anns:  byName,
			want:  group("10.0.0.1", nil, []string{"lan"}),
		},
		{
			name:  "unreadable pool keeps its last valid addresses (by label)",
			svc:   Service{Key: "ns/a", IPs: addrs("10.0.0.1")},
			pools: []Pool{unreadable("lan", lan, "10.0.0.0/24")},
			anns:  byLabel,
			want:  group("10.0.0.1", nil, []string{"lan"}),
		},
		{
			name:  "pool unreadable since the speaker started: the annotation names it",
			svc:   Service{Key: "ns/a", IPs: addrs("10.0.0.1"), AllocatedFrom: "lan"},
			pools: []Pool{unreadable("lan", lan)},
			anns:  byLabel,
			want:  group("10.0.0.1", nil, []string{"lan"}),
		},
		{
			name:  "retained outside a shrunk pool: announced, flagged outside",
			svc:   Service{Key: "ns/a", IPs: addrs("10.0.9.1"), AllocatedFrom: "lan"},
			pools: []Pool{pool("lan", lan, "10.0.0.0/24")},
			anns:  byLabel,
			want:  group("10.0.9.1", addrs("10.0.9.1"), nil),
		},
		{
			name: "retained after the pool was deleted: covered by name",
			svc:  Service{Key: "ns/a", IPs: addrs("10.0.9.1"), AllocatedFrom: "lan"},
			anns: byName,
			want: group("10.0.9.1", addrs("10.0.9.1"), nil),
		},
		{
			name: "retained after the pool was deleted: no labels left to select",
			svc:  Service{Key: "ns/a", IPs: addrs("10.0.9.1"), AllocatedFrom: "lan"},
			anns: byLabel,
			want: Plan{Skipped: map[string]Skip{"ns/a": SkipNotCovered}},
		},
		{
			name:  "inside a readable pool the annotation changes nothing",
			svc:   Service{Key: "ns/a", IPs: addrs("10.0.0.1"), AllocatedFrom: "dmz"},
			pools: []Pool{pool("lan", lan, "10.0.0.0/24"), pool("dmz", nil, "10.1.0.0/24")},
			anns:  byName,
			want:  group("10.0.0.1", nil, nil),
		},
		{
			name:  "outside every pool without an annotation: not covered, as before",
			svc:   Service{Key: "ns/a", IPs: addrs("10.0.9.1")},
			pools: []Pool{pool("lan", lan, "10.0.0.0/24")},
			anns:  []Announcement{{Name: "l2"}},
			want:  Plan{Skipped: map[string]Skip{"ns/a": SkipNotCovered}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Compute([]Service{tt.svc}, threeNodes, tt.pools, tt.anns)
			if diff := cmp.Diff(tt.want, got, addrCmp, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Compute (-want +got):\n%s", diff)
			}
		})
	}
}

// TestComputeNeverAnnouncesNodeAddress pins issue 8, "a node's own address is
// never announced": a Service given a node's InternalIP was announced, and two
// MACs answered ARP for it.
func TestComputeNeverAnnouncesNodeAddress(t *testing.T) {
	nodes := []Node{
		{Name: "n1", Ready: true, Addresses: addrs("10.0.0.11", "fd00::11")},
		{Name: "n2", Ready: true, Addresses: addrs("10.0.0.12")},
	}
	pools := []Pool{pool("lan", nil, "10.0.0.0/24", "fd00::/64")}
	anns := []Announcement{{Name: "l2"}}
	svcs := []Service{
		{Key: "ns/steals", IPs: addrs("10.0.0.12")},
		{Key: "ns/dual", IPs: addrs("10.0.0.11", "fd00::5")},
		{Key: "ns/fine", IPs: addrs("10.0.0.5")},
	}
	want := Plan{
		Groups: []Group{
			{Key: "10.0.0.5", IPs: addrs("10.0.0.5"), Services: []string{"ns/fine"}, Nodes: []string{"n1", "n2"}, Announcements: []string{"l2"}},
			{Key: "fd00::5", IPs: addrs("fd00::5"), Services: []string{"ns/dual"}, Nodes: []string{"n1", "n2"}, Announcements: []string{"l2"}},
		},
		Skipped: map[string]Skip{"ns/steals": SkipNodeAddress},
		NodeAddressConflicts: []NodeAddressConflict{
			{Addr: netip.MustParseAddr("10.0.0.11"), Node: "n1", Service: "ns/dual"},
			{Addr: netip.MustParseAddr("10.0.0.12"), Node: "n2", Service: "ns/steals"},
		},
	}
	got := Compute(svcs, nodes, pools, anns)
	if diff := cmp.Diff(want, got, addrCmp, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Compute (-want +got):\n%s", diff)
	}
	if !svcs[1].IPs[0].IsValid() || svcs[1].IPs[0] != netip.MustParseAddr("10.0.0.11") {
		t.Errorf("Compute changed the caller's Service addresses: %v", svcs[1].IPs)
	}
}

// TestComputeSecondServiceNeverCutsFirst pins issue 8, "a second Service never
// cuts the first": two Local Services sharing an address with endpoints on
// different nodes left no eligible node, and the address was withdrawn.
func TestComputeSecondServiceNeverCutsFirst(t *testing.T) {
	pools := []Pool{pool("lan", nil, "10.0.0.0/24")}
	anns := []Announcement{{Name: "l2"}}
	local := func(key string, nodes ...string) Service {
		eps := map[string]bool{}
		for _, n := range nodes {
			eps[n] = true
		}
		return Service{Key: key, IPs: addrs("10.0.0.5"), LocalTraffic: true, EndpointNodes: eps}
	}
	tests := []struct {
		name     string
		services []Service
		nodes    []string
		unserved map[string][]string
	}{
		{
			name:     "endpoints on different nodes: both nodes tie, each says who it leaves out",
			services: []Service{local("ns/first", "n1"), local("ns/second", "n2")},
			nodes:    []string{"n1", "n2"},
			unserved: map[string][]string{"n1": {"ns/second"}, "n2": {"ns/first"}},
		},
		{
			name:     "the nodes serving the most Services win",
			services: []Service{local("ns/a", "n1", "n2"), local("ns/b", "n2", "n3"), local("ns/c", "n3")},
			nodes:    []string{"n2", "n3"},
			unserved: map[string][]string{"n2": {"ns/c"}, "n3": {"ns/a"}},
		},
		{
			name:     "a common node: as before, the intersection and nobody unserved",
			services: []Service{local("ns/a", "n1", "n2"), local("ns/b", "n2", "n3")},
			nodes:    []string{"n2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var keys []string
			for _, s := range tt.services {
				keys = append(keys, s.Key)
			}
			want := Plan{Groups: []Group{{Key: "10.0.0.5", IPs: addrs("10.0.0.5"), Services: keys, Nodes: tt.nodes,
				Announcements: []string{"l2"}, Unserved: tt.unserved}}, Skipped: map[string]Skip{}}
			got := Compute(tt.services, threeNodes, pools, anns)
			if diff := cmp.Diff(want, got, addrCmp, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Compute (-want +got):\n%s", diff)
			}
		})
	}
}

// TestComputeBGPNeverDarkNeverNodeAddress pins issue 8 for BGP: an unreadable
// pool and an address retained outside every pool withdrew their routes, and a
// node's address was routed to another node.
func TestComputeBGPNeverDarkNeverNodeAddress(t *testing.T) {
	lan := map[string]string{"net": "lan"}
	pools := []Pool{unreadable("lan", lan, "10.0.0.0/24"), pool("shrunk", lan, "10.2.0.0/28")}
	peers := []BGPPeer{{Name: "core"}}
	nodes := []Node{{Name: "n1", Ready: true, Addresses: addrs("10.0.0.11")}, {Name: "n2", Ready: true, Addresses: addrs("10.0.0.12")}}
	svcs := []Service{
		{Key: "ns/typo", IPs: addrs("10.0.0.1")},
		{Key: "ns/retained", IPs: addrs("10.2.0.99"), AllocatedFrom: "shrunk"},
		{Key: "ns/steals", IPs: addrs("10.0.0.12")},
	}
	pfx := netip.MustParsePrefix
	want := BGPPlan{
		Peers: []string{"core"},
		Routes: map[string][]BGPRoute{"core": {
			{Prefix: pfx("10.0.0.1/32"), Services: []string{"ns/typo"}},
			{Prefix: pfx("10.2.0.99/32"), Services: []string{"ns/retained"}},
		}},
		Announced:       map[string][]string{"ns/typo": {"core"}, "ns/retained": {"core"}},
		Skipped:         map[string]Skip{"ns/steals": SkipNodeAddress},
		OutsidePools:    map[string][]netip.Addr{"ns/retained": addrs("10.2.0.99")},
		UnreadablePools: map[string][]string{"ns/typo": {"lan"}},
	}
	got := ComputeBGP("n1", svcs, nodes, pools, peers, []BGPAnnouncement{{Name: "lan", PoolSelector: label("net", "lan")}})
	if diff := cmp.Diff(want, got, addrCmp, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("ComputeBGP (-want +got):\n%s", diff)
	}
}
