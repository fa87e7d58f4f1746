package poolcover

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/heraldlb/herald/internal/ipaddr"
)

func pool(name string, labels map[string]string, unreadable bool, entries ...string) Pool {
	p := Pool{Name: name, Labels: labels, Unreadable: unreadable}
	if len(entries) > 0 {
		set, err := ipaddr.ParseSet(entries)
		if err != nil {
			panic(err)
		}
		p.Addresses = set
	}
	return p
}

func label(k, v string) func(map[string]string) bool {
	return func(l map[string]string) bool { return l[k] == v }
}

func TestCovers(t *testing.T) {
	lan := map[string]string{"net": "lan"}
	for _, tt := range []struct {
		name  string
		names []string
		sel   func(map[string]string) bool
		pool  string
		want  bool
	}{
		{"names win over the selector", []string{"a"}, label("net", "lan"), "b", false},
		{"named", []string{"a", "b"}, nil, "b", true},
		{"selected", nil, label("net", "lan"), "b", true},
		{"not selected", nil, label("net", "dmz"), "b", false},
		{"neither covers every pool", nil, nil, "z", true},
	} {
		if got := Covers(tt.names, tt.sel, tt.pool, lan); got != tt.want {
			t.Errorf("%s: Covers = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestAttribute(t *testing.T) {
	lan := map[string]string{"net": "lan"}
	pools := []Pool{
		pool("lan", lan, false, "10.0.0.0/24"),
		pool("typo", lan, true, "10.1.0.0/24"), // unreadable now; last valid known
		pool("fresh-typo", lan, true),          // unreadable since this process started
		pool("shrunk", lan, false, "10.2.0.0/28"),
	}
	for _, tt := range []struct {
		name, ip, from string
		source         Source
		pools          []string
		gone, outside  bool
		unreadable     []string
	}{
		{name: "in a pool: the annotation does not matter", ip: "10.0.0.1", from: "shrunk", source: SourceSpec, pools: []string{"lan"}},
		{name: "last valid addresses of an unreadable pool", ip: "10.1.0.1", source: SourceLastValid, pools: []string{"typo"}, unreadable: []string{"typo"}},
		{name: "retained outside a readable pool", ip: "10.2.0.99", from: "shrunk", source: SourceAllocatedFrom, pools: []string{"shrunk"}, outside: true},
		{name: "retained after the pool was deleted", ip: "10.9.0.1", from: "deleted", source: SourceAllocatedFrom, pools: []string{"deleted"}, gone: true, outside: true},
		{name: "pool unreadable since start: not known to be outside", ip: "10.3.0.1", from: "fresh-typo", source: SourceAllocatedFrom, pools: []string{"fresh-typo"}, unreadable: []string{"fresh-typo"}},
		{name: "no pool, no annotation", ip: "10.9.0.1", source: SourceNone},
	} {
		o := Attribute(netip.MustParseAddr(tt.ip), tt.from, pools)
		var names []string
		for _, p := range o.Pools {
			names = append(names, p.Name)
		}
		if o.Source != tt.source || !slices.Equal(names, tt.pools) || o.PoolGone != tt.gone || o.OutsidePools() != tt.outside || !slices.Equal(o.UnreadablePools(), tt.unreadable) {
			t.Errorf("%s: got %v %v gone=%v outside=%v unreadable=%v; want %v %v gone=%v outside=%v unreadable=%v", tt.name,
				o.Source, names, o.PoolGone, o.OutsidePools(), o.UnreadablePools(), tt.source, tt.pools, tt.gone, tt.outside, tt.unreadable)
		}
	}
}

func TestCoveredBy(t *testing.T) {
	lan := map[string]string{"net": "lan"}
	existing := Owner{Source: SourceAllocatedFrom, Pools: []Pool{{Name: "shrunk", Labels: lan}}}
	gone := Owner{Source: SourceAllocatedFrom, Pools: []Pool{{Name: "deleted"}}, PoolGone: true}
	notLan := func(l map[string]string) bool { return l["net"] != "lan" } // matches empty labels
	for _, tt := range []struct {
		name  string
		o     Owner
		names []string
		sel   func(map[string]string) bool
		want  bool
	}{
		{"existing pool by name", existing, []string{"shrunk"}, nil, true},
		{"existing pool by labels", existing, nil, label("net", "lan"), true},
		{"gone pool by name", gone, []string{"deleted"}, nil, true},
		{"gone pool by every-pool announcement", gone, nil, nil, true},
		{"gone pool is never selected by labels", gone, nil, notLan, false},
		{"no owner", Owner{}, nil, nil, false},
	} {
		if got := tt.o.CoveredBy(tt.names, tt.sel); got != tt.want {
			t.Errorf("%s: CoveredBy = %v; want %v", tt.name, got, tt.want)
		}
	}
}
