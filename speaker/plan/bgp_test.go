package plan

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestComputeBGP(t *testing.T) {
	pools := []Pool{pool("lan", map[string]string{"net": "lan"}, "10.0.0.0/24", "fd00::/64"), pool("dmz", nil, "10.1.0.0/24")}
	peers := []BGPPeer{{Name: "tor-a", NodeSelector: label("zone", "a")}, {Name: "tor-b", NodeSelector: label("zone", "b")}, {Name: "core"}, {Name: "core6", IPv6: true}}
	pfx := netip.MustParsePrefix
	tests := []struct {
		name     string
		self     string
		services []Service
		nodes    []Node
		anns     []BGPAnnouncement
		want     BGPPlan
	}{
		{
			name:     "every peer of the node gets host routes of its family",
			self:     "n1",
			services: []Service{{Key: "ns/a", IPs: addrs("10.0.0.1", "fd00::1")}},
			nodes:    threeNodes,
			anns:     []BGPAnnouncement{{Name: "all"}},
			want: BGPPlan{
				Peers: []string{"core", "core6", "tor-a"},
				Routes: map[string][]BGPRoute{
					"core":  {{Prefix: pfx("10.0.0.1/32"), Services: []string{"ns/a"}}},
					"core6": {{Prefix: pfx("fd00::1/128"), Services: []string{"ns/a"}}},
					"tor-a": {{Prefix: pfx("10.0.0.1/32"), Services: []string{"ns/a"}}},
				},
				Announced: map[string][]string{"ns/a": {"core", "core6", "tor-a"}},
			},
		},
		{
			name:     "named peers, pools and attributes; aggregation merges Services",
			self:     "n2",
			services: []Service{{Key: "ns/a", IPs: addrs("10.0.0.1")}, {Key: "ns/b", IPs: addrs("10.0.0.9")}, {Key: "ns/dmz", IPs: addrs("10.1.0.1")}},
			nodes:    threeNodes,
			anns: []BGPAnnouncement{
				{Name: "agg", Pools: []string{"lan"}, Peers: []string{"tor-b"}, AggregationV4: 24, Communities: []uint32{2, 1}, LocalPref: 100, HasLocalPref: true},
				{Name: "more", PoolSelector: label("net", "lan"), Peers: []string{"tor-b"}, AggregationV4: 24, Communities: []uint32{1, 3}, LargeCommunities: []LargeCommunity{{1, 2, 3}}, LocalPref: 50, HasLocalPref: true},
			},
			want: BGPPlan{
				Peers: []string{"core", "core6", "tor-b"},
				Routes: map[string][]BGPRoute{
					"tor-b": {{Prefix: pfx("10.0.0.0/24"), Communities: []uint32{1, 2, 3}, LargeCommunities: []LargeCommunity{{1, 2, 3}}, LocalPref: 100, HasLocalPref: true, Services: []string{"ns/a", "ns/b"}}},
				},
				Announced: map[string][]string{"ns/a": {"tor-b"}, "ns/b": {"tor-b"}},
			},
		},
		{
			name:     "Local traffic: only a node with a ready endpoint announces",
			self:     "n1",
			services: []Service{{Key: "ns/local", IPs: addrs("10.0.0.1"), LocalTraffic: true, EndpointNodes: map[string]bool{"n3": true}}, {Key: "ns/here", IPs: addrs("10.0.0.2"), LocalTraffic: true, EndpointNodes: map[string]bool{"n1": true}}},
			nodes:    threeNodes,
			anns:     []BGPAnnouncement{{Name: "all", Peers: []string{"core"}}},
			want: BGPPlan{
				Peers:     []string{"core", "core6", "tor-a"},
				Routes:    map[string][]BGPRoute{"core": {{Prefix: pfx("10.0.0.2/32"), Services: []string{"ns/here"}}}},
				Announced: map[string][]string{"ns/here": {"core"}},
				Skipped:   map[string]Skip{"ns/local": SkipNoEligibleNode},
			},
		},
		{
			name:     "an excluded, unready or unselected node announces nothing",
			self:     "n1",
			services: []Service{{Key: "ns/a", IPs: addrs("10.0.0.1")}},
			nodes:    []Node{{Name: "n1", Ready: true, Labels: map[string]string{ExcludeLabel: ""}}},
			anns:     []BGPAnnouncement{{Name: "all"}},
			want: BGPPlan{
				Peers:   []string{"core", "core6"},
				Skipped: map[string]Skip{"ns/a": SkipNoEligibleNode},
			},
		},
		{
			name:     "node outside the announcement's nodeSelector",
			self:     "n2",
			services: []Service{{Key: "ns/a", IPs: addrs("10.0.0.1")}},
			nodes:    threeNodes,
			anns:     []BGPAnnouncement{{Name: "a-only", NodeSelector: label("zone", "a")}},
			want: BGPPlan{
				Peers:   []string{"core", "core6", "tor-b"},
				Skipped: map[string]Skip{"ns/a": SkipNoEligibleNode},
			},
		},
		{
			name:     "uncovered Services and unselected Services are neither announced nor skipped",
			self:     "n1",
			services: []Service{{Key: "ns/dmz", IPs: addrs("10.1.0.1")}, {Key: "ns/other", IPs: addrs("10.0.0.5"), Labels: map[string]string{"bgp": "no"}}},
			nodes:    threeNodes,
			anns:     []BGPAnnouncement{{Name: "lan", Pools: []string{"lan"}, ServiceSelector: label("bgp", "yes")}},
			want:     BGPPlan{Peers: []string{"core", "core6", "tor-a"}},
		},
		{
			name:     "a node missing from the cluster has no plan",
			self:     "gone",
			services: []Service{{Key: "ns/a", IPs: addrs("10.0.0.1")}},
			nodes:    threeNodes,
			anns:     []BGPAnnouncement{{Name: "all"}},
			want:     BGPPlan{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ComputeBGP(tt.self, tt.services, tt.nodes, pools, peers, tt.anns)
			if diff := cmp.Diff(tt.want, got, addrCmp, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ComputeBGP (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAggregate(t *testing.T) {
	for _, tt := range []struct {
		ip     string
		v4, v6 int
		want   string
	}{
		{"10.0.0.7", 0, 0, "10.0.0.7/32"},
		{"10.0.0.7", 24, 0, "10.0.0.0/24"},
		{"10.0.0.7", 33, 0, "10.0.0.7/32"},
		{"fd00::7", 24, 0, "fd00::7/128"},
		{"fd00::7", 0, 64, "fd00::/64"},
	} {
		got := aggregate(netip.MustParseAddr(tt.ip), BGPAnnouncement{AggregationV4: tt.v4, AggregationV6: tt.v6})
		if got.String() != tt.want {
			t.Errorf("aggregate(%s, %d, %d) = %s, want %s", tt.ip, tt.v4, tt.v6, got, tt.want)
		}
	}
}
