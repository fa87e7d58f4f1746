package app

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/hashicorp/memberlist"

	"github.com/heraldlb/herald/speaker/layer2"
	"github.com/heraldlb/herald/speaker/membership"
)

func mac(s string) net.HardwareAddr {
	hw, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return hw
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// busyNode is a node with 200 pod veths (Calico-style: one shared MAC and a
// link-local address; ptp-style: a /32 gateway address on each) besides its
// real links.
func busyNode() layer2.Topology {
	topo := layer2.Topology{DefaultIPv4: "eno1", DefaultIPv6: "eno1"}
	topo.Links = append(topo.Links,
		layer2.Link{Name: "lo", Kind: "device", HardwareAddr: make(net.HardwareAddr, 6), Up: true, Loopback: true, Prefixes: []netip.Prefix{pfx("127.0.0.1/8")}},
		layer2.Link{Name: "eno1", Kind: "device", HardwareAddr: mac("3C:EC:EF:00:00:01"), Up: true, Prefixes: []netip.Prefix{pfx("192.0.2.10/24"), pfx("fe80::1/64")}},
		// The node's address is on a VLAN of a bond: the link to the others.
		layer2.Link{Name: "bond0.20", Kind: "vlan", HardwareAddr: mac("3c:ec:ef:00:00:02"), Up: true, Prefixes: []netip.Prefix{pfx("10.20.0.11/24")}},
		layer2.Link{Name: "bond0", Kind: "bond", HardwareAddr: mac("3c:ec:ef:00:00:02"), Up: true},
		layer2.Link{Name: "eno2", Kind: "device", HardwareAddr: mac("3c:ec:ef:00:00:03"), Up: false},
		layer2.Link{Name: "cni0", Kind: "bridge", HardwareAddr: mac("0a:58:0a:f4:01:01"), Up: true, Prefixes: []netip.Prefix{pfx("10.244.1.1/24")}},
		layer2.Link{Name: "kube-ipvs0", Kind: "dummy", HardwareAddr: mac("4e:00:00:00:00:01"), Up: true, Prefixes: []netip.Prefix{pfx("10.96.0.1/32")}},
		layer2.Link{Name: "nodelocaldns", Kind: "dummy", HardwareAddr: mac("4e:00:00:00:00:02"), Up: true, Prefixes: []netip.Prefix{pfx("169.254.20.10/32")}},
		layer2.Link{Name: "tunl0", Kind: "ipip", Up: true, Prefixes: []netip.Prefix{pfx("10.244.1.0/32")}},
	)
	for i := range 100 {
		topo.Links = append(topo.Links, layer2.Link{Name: fmt.Sprintf("cali%011d", i), Kind: "veth", HardwareAddr: mac("ee:ee:ee:ee:ee:ee"), Up: true,
			Prefixes: []netip.Prefix{pfx("fe80::ecee:eeff:feee:eeee/64")}})
	}
	for i := range 100 {
		topo.Links = append(topo.Links, layer2.Link{Name: fmt.Sprintf("veth%08x", i), Kind: "veth", HardwareAddr: net.HardwareAddr{0x12, 0x34, 0, 0, byte(i >> 8), byte(i)}, Up: true,
			Prefixes: []netip.Prefix{pfx("10.244.1.1/32"), pfx("fe80::1034:ff:fe00:1/64")}})
	}
	return topo
}

func TestPublishedMACs(t *testing.T) {
	for _, tt := range []struct {
		name string
		topo layer2.Topology
		bind string
		want []string
	}{{
		name: "busy node: bind link first, then default route, then subnets; no pod veths, dummies or dead links",
		topo: busyNode(),
		bind: "10.20.0.11",
		want: []string{"3c:ec:ef:00:00:02", "3c:ec:ef:00:00:01", "0a:58:0a:f4:01:01"},
	}, {
		name: "kind node: eth0 is a veth with the node's address and the default route",
		topo: layer2.Topology{DefaultIPv4: "eth0", Links: []layer2.Link{
			{Name: "lo", Kind: "device", Up: true, Loopback: true},
			{Name: "eth0", Kind: "veth", HardwareAddr: mac("02:42:ac:12:00:02"), Up: true, Prefixes: []netip.Prefix{pfx("172.18.0.2/16"), pfx("fc00:f853:ccd:e793::2/64")}},
			{Name: "veth1a2b3c", Kind: "veth", HardwareAddr: mac("9a:00:00:00:00:01"), Up: true, Prefixes: []netip.Prefix{pfx("10.244.1.1/32")}},
			{Name: "veth4d5e6f", Kind: "veth", HardwareAddr: mac("9a:00:00:00:00:02"), Up: true},
		}},
		bind: "172.18.0.2",
		want: []string{"02:42:ac:12:00:02"},
	}, {
		name: "IPv6 bind address; a second LAN and an unaddressed VLAN for announcements",
		topo: layer2.Topology{DefaultIPv4: "eth1", Links: []layer2.Link{
			{Name: "eth0", Kind: "device", HardwareAddr: mac("02:00:00:00:00:01"), Up: true, Prefixes: []netip.Prefix{pfx("fd00::11/64")}},
			{Name: "eth1", Kind: "device", HardwareAddr: mac("02:00:00:00:00:02"), Up: true, Prefixes: []netip.Prefix{pfx("198.51.100.11/24")}},
			{Name: "eth2", Kind: "device", HardwareAddr: mac("02:00:00:00:00:03"), Up: true, Prefixes: []netip.Prefix{pfx("203.0.113.11/24")}},
			{Name: "eth0.30", Kind: "vlan", HardwareAddr: mac("02:00:00:00:00:04"), Up: true},
		}},
		bind: "fd00::11",
		want: []string{"02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03", "02:00:00:00:00:04"},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			got := publishedMACs(tt.topo, netip.MustParseAddr(tt.bind))
			if !slices.Equal(got, tt.want) {
				t.Errorf("publishedMACs = %q; want %q", got, tt.want)
			}
		})
	}
}

// Regression for the crash loop on busy nodes: a speaker on a node with 200 pod
// veths starts its membership and another speaker reads its node's MACs.
func TestBusyNodeStartsAndPublishes(t *testing.T) {
	topo := busyNode()
	for i := range 200 { // more NIC-like links than would ever fit
		topo.Links = append(topo.Links, layer2.Link{Name: fmt.Sprintf("vf%03d", i), Kind: "device", HardwareAddr: net.HardwareAddr{0x02, 0xf0, 0, 0, byte(i >> 8), byte(i)}, Up: true})
	}
	macs := publishedMACs(topo, netip.MustParseAddr("10.20.0.11"))
	port := freeTCPPort(t)
	a, err := membership.New(membership.Config{Name: "busy", BindAddr: "127.0.0.1", BindPort: port, Meta: membership.Meta{MACs: macs}, Logger: logr.Discard()})
	if err != nil {
		t.Fatalf("membership.New on a busy node: %v", err)
	}
	t.Cleanup(func() { _ = a.Shutdown() })
	if a.DroppedMACs() == 0 {
		t.Errorf("DroppedMACs = 0 with %d MACs; want some left out", len(macs))
	}
	b, err := membership.New(membership.Config{Name: "other", BindAddr: "127.0.0.1", BindPort: freeTCPPort(t), Logger: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Shutdown() })
	if _, err := b.Join([]string{fmt.Sprintf("127.0.0.1:%d", port)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(b.Alive()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	alive := b.Alive()
	if len(alive) != 2 {
		t.Fatalf("other sees %d members; want 2", len(alive))
	}
	got := alive[0].Meta.MACs
	if len(got) == 0 || len(got) > memberlist.MetaMaxSize/20 || !slices.Equal(got[:3], []string{"3c:ec:ef:00:00:02", "3c:ec:ef:00:00:01", "0a:58:0a:f4:01:01"}) || alive[0].Meta.Since.IsZero() {
		t.Errorf("busy node's metadata as the other sees it: %q, Since %v", got, alive[0].Meta.Since)
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
