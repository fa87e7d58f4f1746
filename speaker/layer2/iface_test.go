package layer2

import (
	"errors"
	"net"
	"net/netip"
	"testing"
)

func TestChooseInterface(t *testing.T) {
	mac := func(b byte) net.HardwareAddr { return net.HardwareAddr{2, 0x77, 0, 0, 0, b} }
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	topo := Topology{
		Links: []Link{
			{Name: "lo", Index: 1, HardwareAddr: make(net.HardwareAddr, 6), Up: true, Loopback: true, Prefixes: pfx("127.0.0.1/8", "::1/128")},
			{Name: "eth0", Index: 2, HardwareAddr: mac(1), Up: true, Prefixes: pfx("192.168.1.10/24", "2001:db8:1::10/64", "fe80::1/64")},
			{Name: "eth1", Index: 3, HardwareAddr: mac(2), Up: true, Prefixes: pfx("10.77.0.11/24", "fd77::11/64")},
			{Name: "eth1.100", Index: 4, HardwareAddr: mac(3), Up: true, Prefixes: pfx("10.77.0.129/25")},
			{Name: "eth2", Index: 5, HardwareAddr: mac(4), Up: false, Prefixes: pfx("10.88.0.11/24")},
			{Name: "kube-ipvs0", Index: 6, HardwareAddr: mac(5), Up: true, Prefixes: pfx("10.99.0.5/32", "10.96.0.1/32")},
			{Name: "wg0", Index: 7, Up: true, Prefixes: pfx("10.55.0.1/24")},
			{Name: "vlan200", Index: 8, HardwareAddr: mac(6), Up: true},
			{Name: "eth3", Index: 9, HardwareAddr: mac(7), Up: true, Prefixes: pfx("10.77.0.12/24")},
		},
		DefaultIPv4: "eth0",
		DefaultIPv6: "eth0",
	}
	tests := []struct {
		name   string
		topo   Topology
		addr   string
		allow  []string
		want   Choice
		errNil bool
	}{
		{"connected subnet", topo, "10.77.0.100", nil, Choice{"eth1", ChoiceConnected}, true},
		{"longest prefix wins", topo, "10.77.0.200", nil, Choice{"eth1.100", ChoiceConnected}, true},
		{"tie goes to the lower index", topo, "10.77.0.50", nil, Choice{"eth1", ChoiceConnected}, true},
		{"IPv6 connected subnet", topo, "fd77::100", nil, Choice{"eth1", ChoiceConnected}, true},
		{"IPv4-mapped address", topo, "::ffff:10.77.0.100", nil, Choice{"eth1", ChoiceConnected}, true},
		{"default route", topo, "203.0.113.7", nil, Choice{"eth0", ChoiceDefaultRoute}, true},
		{"IPv6 default route", topo, "2001:db8:99::1", nil, Choice{"eth0", ChoiceDefaultRoute}, true},
		{"down link skipped", topo, "10.88.0.100", nil, Choice{"eth0", ChoiceDefaultRoute}, true},
		{"host prefix is no subnet", topo, "10.99.0.5", nil, Choice{"eth0", ChoiceDefaultRoute}, true},
		{"non-Ethernet link skipped", topo, "10.55.0.9", nil, Choice{"eth0", ChoiceDefaultRoute}, true},
		{"loopback skipped", topo, "127.0.0.5", nil, Choice{"eth0", ChoiceDefaultRoute}, true},
		{"allow-list restricts subnet match", topo, "10.77.0.200", []string{"eth1"}, Choice{"eth1", ChoiceConnected}, true},
		{"allow-list takes default route if listed", topo, "203.0.113.7", []string{"vlan200", "eth0"}, Choice{"eth0", ChoiceDefaultRoute}, true},
		{"allow-list falls back to first usable listed", topo, "203.0.113.7", []string{"eth2", "missing", "vlan200", "eth3"}, Choice{"vlan200", ChoiceAllowList}, true},
		{"allow-list of unusable links", topo, "10.77.0.100", []string{"eth2", "wg0", "missing"}, Choice{}, false},
		{"no default route", Topology{Links: topo.Links}, "203.0.113.7", nil, Choice{}, false},
		{"no IPv6 default route", Topology{Links: topo.Links, DefaultIPv4: "eth0"}, "2001:db8:99::1", nil, Choice{}, false},
		{"default route on a down link", Topology{Links: topo.Links, DefaultIPv4: "eth2"}, "203.0.113.7", nil, Choice{}, false},
		{"invalid address", topo, "", nil, Choice{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addr netip.Addr
			if tt.addr != "" {
				addr = netip.MustParseAddr(tt.addr)
			}
			got, err := ChooseInterface(tt.topo, addr, tt.allow)
			if (err == nil) != tt.errNil {
				t.Fatalf("ChooseInterface error = %v; want error: %v", err, !tt.errNil)
			}
			if err != nil && tt.addr != "" && !errors.Is(err, ErrNoInterface) {
				t.Errorf("error %v is not ErrNoInterface", err)
			}
			if got != tt.want {
				t.Errorf("ChooseInterface = %+v (%s); want %+v (%s)", got, got.Reason, tt.want, tt.want.Reason)
			}
		})
	}
}

func BenchmarkChooseInterface(b *testing.B) {
	var topo Topology
	for i := range 64 { // a node with many pod veths
		topo.Links = append(topo.Links, Link{Name: "veth" + string(rune('a'+i%26)), Index: i + 10, HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, byte(i)}, Up: true,
			Prefixes: []netip.Prefix{netip.MustParsePrefix("fe80::1/64")}})
	}
	topo.Links = append(topo.Links, Link{Name: "eth0", Index: 2, HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 1, 1}, Up: true,
		Prefixes: []netip.Prefix{netip.MustParsePrefix("10.77.0.11/24")}})
	addr := netip.MustParseAddr("10.77.0.100")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ChooseInterface(topo, addr, nil); err != nil {
			b.Fatal(err)
		}
	}
}
