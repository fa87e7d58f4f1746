package layer2

import (
	"errors"
	"strings"
	"testing"
)

func TestIPVSWithoutStrictARP(t *testing.T) {
	ipvs := Topology{Links: []Link{{Name: "eth0"}, {Name: IPVSDevice, Kind: "dummy"}}}
	plain := Topology{Links: []Link{{Name: "eth0"}}}
	values := func(ignore, announce string) func(string) (string, error) {
		return func(name string) (string, error) {
			switch name {
			case "all/arp_ignore":
				return ignore, nil
			case "all/arp_announce":
				return announce, nil
			}
			return "", errors.New("no such sysctl")
		}
	}
	broken := func(string) (string, error) { return "", errors.New("permission denied") }
	for _, tt := range []struct {
		name   string
		topo   Topology
		sysctl func(string) (string, error)
		want   bool
	}{
		{"no kube-ipvs0: iptables or nftables mode", plain, values("0", "0"), false},
		{"IPVS with strictARP", ipvs, values("1\n", "2\n"), false},
		{"IPVS without strictARP", ipvs, values("0\n", "0\n"), true},
		{"IPVS, arp_ignore only", ipvs, values("1", "0"), true},
		{"sysctls unreadable: no claim", ipvs, broken, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, why := IPVSWithoutStrictARP(tt.topo, tt.sysctl)
			if got != tt.want || got != (why != "") {
				t.Errorf("= %v, %q; want %v", got, why, tt.want)
			}
			if got && !strings.Contains(why, "arp_ignore=") {
				t.Errorf("reason %q does not give the values", why)
			}
		})
	}
}

func TestProcSysctl(t *testing.T) {
	if _, err := ProcSysctl("all/arp_ignore"); err != nil {
		t.Skipf("no /proc/sys here: %v", err)
	}
	if _, err := ProcSysctl("../../../../etc/passwd"); err == nil {
		t.Error("a name outside /proc/sys/net/ipv4/conf was read")
	}
}
