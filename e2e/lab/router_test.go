package lab

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseRouteNexthops(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      []string
	}{
		{"no route", "[]\n", nil},
		{"empty output", "", nil},
		{"one nexthop", `[{"dst":"10.123.0.1","gateway":"10.77.0.12","dev":"eth0","protocol":"bgp","metric":20,"flags":[]}]`, []string{"10.77.0.12"}},
		{"multipath v4", `[{"dst":"10.123.0.1","nhid":9,"protocol":"bgp","metric":20,"flags":[],"nexthops":[{"gateway":"10.77.0.12","dev":"eth0","weight":1,"flags":[]},{"gateway":"10.77.0.11","dev":"eth0","weight":1,"flags":[]}]}]`, []string{"10.77.0.11", "10.77.0.12"}},
		{"multipath v6", `[{"dst":"fd00:123::1","nhid":16,"protocol":"bgp","metric":20,"flags":[],"pref":"medium","nexthops":[{"gateway":"fd77::11","dev":"eth0","weight":1,"flags":[]},{"gateway":"fd77::12","dev":"eth0","weight":1,"flags":[]}]}]`, []string{"fd77::11", "fd77::12"}},
		{"connected", `[{"dst":"10.77.0.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"10.77.0.1","flags":[]}]`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRouteNexthops(tc.out)
			if err != nil {
				t.Fatal(err)
			}
			var want []netip.Addr
			for _, s := range tc.want {
				want = append(want, netip.MustParseAddr(s))
			}
			if len(got) != len(want) || !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
	if _, err := parseRouteNexthops("not json"); err == nil {
		t.Error("parsing garbage: no error")
	}
}

func TestBGPDConf(t *testing.T) {
	rc, err := RouterConfig{Password: "s3cret", Extra: []string{"neighbor NODES timers 3 9"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	conf := bgpdConf(rc)
	for _, want := range []string{
		"router bgp 64512\n",
		" neighbor NODES remote-as 64513\n",
		" neighbor NODES6 remote-as 64513\n",
		" neighbor NODES password s3cret\n",
		" neighbor NODES6 password s3cret\n",
		" bgp listen range 10.77.0.0/24 peer-group NODES\n",
		" bgp listen range fd77::/64 peer-group NODES6\n",
		" neighbor NODES timers 3 9\n",
		"  maximum-paths 8\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("bgpd.conf lacks %q:\n%s", want, conf)
		}
	}
	// The listen ranges follow the peer groups, or bgpd rejects them.
	if strings.Index(conf, "bgp listen range") < strings.LastIndex(conf, "peer-group\n") {
		t.Errorf("a listen range comes before a peer group:\n%s", conf)
	}
	if _, err := (RouterConfig{Password: "two words"}).withDefaults(); err == nil {
		t.Error("a password with a blank: no error")
	}
	ibgp, _ := RouterConfig{NodeASN: RouterASN}.withDefaults()
	if !strings.Contains(bgpdConf(ibgp), " neighbor NODES remote-as 64512\n") {
		t.Error("NodeASN RouterASN does not make the sessions iBGP")
	}
}
