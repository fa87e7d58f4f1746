package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// node builds a Node; addrs are InternalIPs.
func node(name string, podCIDRs []string, addrs ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDRs: podCIDRs}}
	if len(podCIDRs) > 0 {
		n.Spec.PodCIDR = podCIDRs[0]
	}
	for _, a := range addrs {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a})
	}
	return n
}

func route(dst, via string) Route {
	return Route{Dst: netip.MustParsePrefix(dst), Via: netip.MustParseAddr(via)}
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

var planCmp = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

func TestMakePlan(t *testing.T) {
	v4 := []string{"10.244.0.0/24"}
	dual := []string{"10.244.0.0/24", "fd00:10:244::/64"}
	tests := []struct {
		name  string
		nodes []*corev1.Node
		want  Plan // Conflist is checked separately: only whether it is nil
	}{{
		name: "self not there yet",
		nodes: []*corev1.Node{
			node("b", []string{"10.244.1.0/24"}, "172.18.0.3"),
		},
		want: Plan{Routes: []Route{route("10.244.1.0/24", "172.18.0.3")}},
	}, {
		name: "self without podCIDR",
		nodes: []*corev1.Node{
			node("a", nil, "172.18.0.2"),
			node("b", []string{"10.244.1.0/24"}, "172.18.0.3"),
		},
		want: Plan{
			SelfFound: true,
			Routes:    []Route{route("10.244.1.0/24", "172.18.0.3")},
			Skipped:   []Skip{{"a", "", skipNoPodCIDR}},
		},
	}, {
		name: "IPv4",
		nodes: []*corev1.Node{
			node("c", []string{"10.244.2.0/24"}, "172.18.0.4"),
			node("a", v4, "172.18.0.2"),
			node("b", []string{"10.244.1.0/24"}, "172.18.0.3"),
		},
		want: Plan{
			SelfFound: true,
			PodCIDRs:  prefixes("10.244.0.0/24"),
			Routes:    []Route{route("10.244.1.0/24", "172.18.0.3"), route("10.244.2.0/24", "172.18.0.4")},
		},
	}, {
		name: "IPv6",
		nodes: []*corev1.Node{
			node("a", []string{"fd00:10:244::/64"}, "fc00:f853:ccd:e793::2"),
			node("b", []string{"fd00:10:244:1::/64"}, "fc00:f853:ccd:e793::3"),
		},
		want: Plan{
			SelfFound: true,
			PodCIDRs:  prefixes("fd00:10:244::/64"),
			Routes:    []Route{route("fd00:10:244:1::/64", "fc00:f853:ccd:e793::3")},
		},
	}, {
		name: "dual stack",
		nodes: []*corev1.Node{
			node("a", dual, "172.18.0.2", "fc00:f853:ccd:e793::2"),
			node("b", []string{"10.244.1.0/24", "fd00:10:244:1::/64"}, "fc00:f853:ccd:e793::3", "172.18.0.3"),
		},
		want: Plan{
			SelfFound: true,
			PodCIDRs:  prefixes("10.244.0.0/24", "fd00:10:244::/64"),
			Routes: []Route{
				route("10.244.1.0/24", "172.18.0.3"),
				route("fd00:10:244:1::/64", "fc00:f853:ccd:e793::3"),
			},
		},
	}, {
		name: "IPv6 primary dual stack keeps spec order",
		nodes: []*corev1.Node{
			node("a", []string{"fd00:10:244::/64", "10.244.0.0/24"}, "172.18.0.2"),
		},
		want: Plan{SelfFound: true, PodCIDRs: prefixes("fd00:10:244::/64", "10.244.0.0/24")},
	}, {
		name: "other without podCIDR",
		nodes: []*corev1.Node{
			node("a", v4, "172.18.0.2"),
			node("b", nil, "172.18.0.3"),
		},
		want: Plan{SelfFound: true, PodCIDRs: prefixes("10.244.0.0/24"), Skipped: []Skip{{"b", "", skipNoPodCIDR}}},
	}, {
		name: "singular podCIDR only",
		nodes: []*corev1.Node{
			node("a", v4, "172.18.0.2"),
			{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: corev1.NodeSpec{PodCIDR: "10.244.1.0/24"},
				Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "172.18.0.3"}}}},
		},
		want: Plan{SelfFound: true, PodCIDRs: prefixes("10.244.0.0/24"), Routes: []Route{route("10.244.1.0/24", "172.18.0.3")}},
	}, {
		name: "missing InternalIP",
		nodes: []*corev1.Node{
			node("a", v4, "172.18.0.2"),
			{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: corev1.NodeSpec{PodCIDRs: []string{"10.244.1.0/24"}},
				Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
					{Type: corev1.NodeExternalIP, Address: "198.51.100.3"},
					{Type: corev1.NodeHostName, Address: "b"},
				}}},
		},
		want: Plan{SelfFound: true, PodCIDRs: prefixes("10.244.0.0/24"), Skipped: []Skip{{"b", "10.244.1.0/24", skipNoInternalIP}}},
	}, {
		name: "family mismatch",
		nodes: []*corev1.Node{
			node("a", dual, "172.18.0.2", "fc00:f853:ccd:e793::2"),
			node("b", []string{"10.244.1.0/24", "fd00:10:244:1::/64"}, "172.18.0.3"),
			node("c", []string{"10.244.2.0/24"}, "fc00:f853:ccd:e793::4"),
		},
		want: Plan{
			SelfFound: true,
			PodCIDRs:  prefixes("10.244.0.0/24", "fd00:10:244::/64"),
			Routes:    []Route{route("10.244.1.0/24", "172.18.0.3")},
			Skipped: []Skip{
				{"b", "fd00:10:244:1::/64", skipNoInternalIP},
				{"c", "10.244.2.0/24", skipNoInternalIP},
			},
		},
	}, {
		name: "malformed InternalIPs are passed over",
		nodes: []*corev1.Node{
			node("a", v4, "172.18.0.2"),
			node("b", []string{"10.244.1.0/24"}, "not-an-ip", "fe80::1%eth0", "0.0.0.0", "::ffff:172.18.0.3"),
		},
		want: Plan{SelfFound: true, PodCIDRs: prefixes("10.244.0.0/24"), Routes: []Route{route("10.244.1.0/24", "172.18.0.3")}},
	}, {
		name: "malformed podCIDRs",
		nodes: []*corev1.Node{
			node("a", []string{"10.244.0.0/24", "garbage"}, "172.18.0.2"),
			node("b", []string{"10.244.1.7/24", "::ffff:10.244.1.0/120", "10.244.9.0/24", "10.244.9.0/24"}, "172.18.0.3"),
		},
		want: Plan{
			SelfFound: true,
			PodCIDRs:  prefixes("10.244.0.0/24"),
			Routes:    []Route{route("10.244.9.0/24", "172.18.0.3")},
			Skipped: []Skip{
				{"a", "garbage", skipBadPodCIDR},
				{"b", "10.244.1.7/24", skipBadPodCIDR},
				{"b", "::ffff:10.244.1.0/120", skipBadPodCIDR},
				{"b", "10.244.9.0/24", skipBadPodCIDR},
			},
		},
	}, {
		name: "conflicts with self and between others",
		nodes: []*corev1.Node{
			node("a", v4, "172.18.0.2"),
			node("b", []string{"10.244.0.0/16"}, "172.18.0.3"),
			node("d", []string{"10.244.5.0/24"}, "172.18.0.5"),
			node("c", []string{"10.244.5.0/24"}, "172.18.0.4"),
		},
		want: Plan{
			SelfFound: true,
			PodCIDRs:  prefixes("10.244.0.0/24"),
			Routes:    []Route{route("10.244.5.0/24", "172.18.0.4")},
			Skipped: []Skip{
				{"b", "10.244.0.0/16", skipOverlapsSelf},
				{"d", "10.244.5.0/24", skipDuplicatePodCIDR},
			},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := MakePlan("a", tt.nodes)
			if (got.Conflist != nil) != (len(tt.want.PodCIDRs) > 0) {
				t.Errorf("Conflist = %q; want one exactly when there are pod CIDRs", got.Conflist)
			}
			got.Conflist = nil
			if diff := cmp.Diff(tt.want, got, planCmp); diff != "" {
				t.Errorf("MakePlan (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMakePlanOrderIndependent pins that the informer's order does not matter.
func TestMakePlanOrderIndependent(t *testing.T) {
	nodes := []*corev1.Node{
		node("a", []string{"10.244.0.0/24"}, "172.18.0.2"),
		node("b", []string{"10.244.5.0/24"}, "172.18.0.3"),
		node("c", []string{"10.244.5.0/24"}, "172.18.0.4"),
		node("d", []string{"10.244.1.0/24"}, "172.18.0.5"),
	}
	want := MakePlan("a", nodes)
	rev := []*corev1.Node{nodes[3], nodes[2], nodes[1], nodes[0]}
	if diff := cmp.Diff(want, MakePlan("a", rev), planCmp); diff != "" {
		t.Errorf("MakePlan of reversed Nodes (-forward +reversed):\n%s", diff)
	}
}

func TestConflistGolden(t *testing.T) {
	got := string(conflist(prefixes("10.244.0.0/24", "fd00:10:244::/64")))
	want := `{
  "cniVersion": "1.0.0",
  "name": "herald-kind",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "herald0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [
          [
            {
              "subnet": "10.244.0.0/24"
            }
          ],
          [
            {
              "subnet": "fd00:10:244::/64"
            }
          ]
        ],
        "routes": [
          {
            "dst": "0.0.0.0/0"
          },
          {
            "dst": "::/0"
          }
        ]
      }
    },
    {
      "type": "portmap",
      "capabilities": {
        "portMappings": true
      }
    }
  ]
}
`
	if got != want {
		t.Errorf("conflist:\n%s\nwant:\n%s", got, want)
	}
}

func TestConflistSingleStack(t *testing.T) {
	for _, tt := range []struct {
		cidr, route string
	}{
		{"10.244.3.0/24", "0.0.0.0/0"},
		{"fd00:10:244:3::/64", "::/0"},
	} {
		var conf struct {
			Plugins []struct {
				Type string
				IPAM struct {
					Ranges [][]struct{ Subnet string }
					Routes []struct{ Dst string }
				}
			}
		}
		if err := json.Unmarshal(conflist(prefixes(tt.cidr)), &conf); err != nil {
			t.Fatal(err)
		}
		ipam := conf.Plugins[0].IPAM
		if len(ipam.Ranges) != 1 || len(ipam.Ranges[0]) != 1 || ipam.Ranges[0][0].Subnet != tt.cidr {
			t.Errorf("ranges for %s = %+v; want one range of it", tt.cidr, ipam.Ranges)
		}
		if len(ipam.Routes) != 1 || ipam.Routes[0].Dst != tt.route {
			t.Errorf("routes for %s = %+v; want %s", tt.cidr, ipam.Routes, tt.route)
		}
	}
}

func TestSkipReasonString(t *testing.T) {
	for r := skipNoPodCIDR; r <= skipDuplicatePodCIDR; r++ {
		if s := r.String(); s == "" || s[0] == 's' {
			t.Errorf("skipReason(%d).String() = %q; want a camelCase name", int(r), s)
		}
	}
}

func BenchmarkMakePlan(b *testing.B) {
	var nodes []*corev1.Node
	for i := range 100 {
		a := netip.AddrFrom4([4]byte{10, 244, byte(i), 0})
		ip := netip.AddrFrom4([4]byte{172, 18, 0, byte(i + 2)})
		nodes = append(nodes, node(fmt.Sprintf("node-%03d", i), []string{netip.PrefixFrom(a, 24).String()}, ip.String()))
	}
	b.ReportAllocs()
	for b.Loop() {
		MakePlan(nodes[0].Name, nodes)
	}
}
