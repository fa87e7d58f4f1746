package plan

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/heraldlb/herald/internal/ipaddr"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func pool(name string, labels map[string]string, entries ...string) Pool {
	set, err := ipaddr.ParseSet(entries)
	if err != nil {
		panic(err)
	}
	return Pool{Name: name, Labels: labels, Addresses: set}
}

func label(k, v string) Selector { return func(l map[string]string) bool { return l[k] == v } }

var threeNodes = []Node{
	{Name: "n1", Ready: true, Labels: map[string]string{"zone": "a"}},
	{Name: "n2", Ready: true, Labels: map[string]string{"zone": "b"}},
	{Name: "n3", Ready: true, Labels: map[string]string{"zone": "a"}},
}

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestCompute(t *testing.T) {
	pools := []Pool{pool("lan", map[string]string{"net": "lan"}, "10.0.0.0/24", "fd00::/64"), pool("dmz", nil, "10.1.0.0/24")}
	tests := []struct {
		name     string
		services []Service
		nodes    []Node
		anns     []Announcement
		want     Plan
	}{
		{
			name:     "covered by pool name: every ready node",
			services: []Service{{Key: "ns/a", IPs: addrs("10.0.0.1")}},
			nodes:    threeNodes,
			anns:     []Announcement{{Name: "l2", Pools: []string{"lan"}}},
			want: Plan{Groups: []Group{{Key: "10.0.0.1", IPs: addrs("10.0.0.1"), Services: []string{"ns/a"},
				Nodes: []string{"n1", "n2", "n3"}, Announcements: []string{"l2"}}}, Skipped: map[string]Skip{}},
		},
		{
			name:     "pool not covered",
			services: []Service{{Key: "ns/a", IPs: addrs("10.1.0.1")}},
			nodes:    threeNodes,
			anns:     []Announcement{{Name: "l2", Pools: []string{"lan"}}},
			want:     Plan{Skipped: map[string]Skip{"ns/a": SkipNotCovered}},
		},
		{
			name:     "pool selector, node selector, interfaces",
			services: []Service{{Key: "ns/a", IPs: addrs("10.0.0.1")}},
			nodes:    threeNodes,
			anns:     []Announcement{{Name: "l2", PoolSelector: label("net", "lan"), NodeSelector: label("zone", "a"), Interfaces: []string{"eth1"}}},
			want: Plan{Groups: []Group{{Key: "10.0.0.1", IPs: addrs("10.0.0.1"), Services: []string{"ns/a"},
				Nodes: []string{"n1", "n3"}, Interfaces: []string{"eth1"}, Announcements: []string{"l2"}}}, Skipped: map[string]Skip{}},
		},
		{
			name:     "excluded and not-ready nodes never announce",
			services: []Service{{Key: "ns/a", IPs: addrs("10.0.0.1")}},
			nodes: []Node{{Name: "n1", Ready: true, Labels: map[string]string{ExcludeLabel: ""}}, {Name: "n2", Ready: false},
				{Name: "n3", Ready: true}},
			anns: []Announcement{{Name: "l2"}},
			want: Plan{Groups: []Group{{Key: "10.0.0.1", IPs: addrs("10.0.0.1"), Services: []string{"ns/a"},
				Nodes: []string{"n3"}, Announcements: []string{"l2"}}}, Skipped: map[string]Skip{}},
		},
		{
			name:     "local traffic: only endpoint nodes; none → skipped",
			services: []Service{{Key: "ns/a", IPs: addrs("10.0.0.1"), LocalTraffic: true, EndpointNodes: map[string]bool{"n2": true}}, {Key: "ns/b", IPs: addrs("10.0.0.2"), LocalTraffic: true}},
			nodes:    threeNodes,
			anns:     []Announcement{{Name: "l2"}},
			want: Plan{Groups: []Group{{Key: "10.0.0.1", IPs: addrs("10.0.0.1"), Services: []string{"ns/a"},
				Nodes: []string{"n2"}, Announcements: []string{"l2"}}}, Skipped: map[string]Skip{"ns/b": SkipNoEligibleNode}},
		},
		{
			name: "shared and dual-stack addresses form one group, eligible on the intersection",
			services: []Service{
				{Key: "ns/a", IPs: addrs("10.0.0.5", "fd00::5")},
				{Key: "ns/b", IPs: addrs("10.0.0.5"), LocalTraffic: true, EndpointNodes: map[string]bool{"n1": true, "n2": true}},
			},
			nodes: threeNodes,
			anns:  []Announcement{{Name: "l2"}},
			want: Plan{Groups: []Group{{Key: "10.0.0.5", IPs: addrs("10.0.0.5", "fd00::5"), Services: []string{"ns/a", "ns/b"},
				Nodes: []string{"n1", "n2"}, Announcements: []string{"l2"}}}, Skipped: map[string]Skip{}},
		},
		{
			name:     "service selector",
			services: []Service{{Key: "ns/a", IPs: addrs("10.0.0.1"), Labels: map[string]string{"l2": "no"}}},
			nodes:    threeNodes,
			anns:     []Announcement{{Name: "l2", ServiceSelector: label("l2", "yes")}},
			want:     Plan{Skipped: map[string]Skip{"ns/a": SkipNotCovered}},
		},
	}
	for _, tt := range tests {
		got := Compute(tt.services, tt.nodes, pools, tt.anns)
		if diff := cmp.Diff(tt.want, got, addrCmp); diff != "" {
			t.Errorf("%s: Compute (-want +got):\n%s", tt.name, diff)
		}
	}
}

func BenchmarkCompute5000(b *testing.B) {
	pools := []Pool{pool("lan", nil, "10.0.0.0/16")}
	var svcs []Service
	base := netip.MustParseAddr("10.0.0.0")
	for i := range 5000 {
		base = base.Next()
		svcs = append(svcs, Service{Key: "ns/s" + base.String(), IPs: []netip.Addr{base}, LocalTraffic: i%2 == 0, EndpointNodes: map[string]bool{"n1": true}})
	}
	anns := []Announcement{{Name: "l2"}}
	b.ReportAllocs()
	for b.Loop() {
		Compute(svcs, threeNodes, pools, anns)
	}
}
