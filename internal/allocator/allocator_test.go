package allocator

import (
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go4.org/netipx"

	"github.com/heraldlb/herald/internal/ipaddr"
)

// mustSet parses pool entries; tables are literals, so a typo is a programming error.
func mustSet(entries ...string) *netipx.IPSet {
	s, err := ipaddr.ParseSet(entries)
	if err != nil {
		panic(err)
	}
	return s
}

func addrs(ss ...string) []netip.Addr {
	if len(ss) == 0 {
		return nil
	}
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// autoPool returns a pool that takes automatic assignments, with no limits and no
// priority.
func autoPool(name string, entries ...string) Pool {
	return Pool{Name: name, Addresses: mustSet(entries...), AutoAssign: true}
}

func prio(p Pool, n int32) Pool { p.Priority, p.HasPriority = n, true; return p }
func manual(p Pool) Pool        { p.AutoAssign = false; return p }
func avoidBuggy(p Pool) Pool    { p.AvoidBuggyIPs = true; return p }

// matchLabel returns a Selector matching labels with k=v.
func matchLabel(k, v string) Selector {
	return func(l map[string]string) bool { return l[k] == v }
}

func tcp(n int32) Port { return Port{"TCP", n} }
func udp(n int32) Port { return Port{"UDP", n} }

var (
	dual    = []Family{IPv4, IPv6}
	v6first = []Family{IPv6, IPv4}
	v6only  = []Family{IPv6}
)

var addrCmp = cmp.Comparer(func(x, y netip.Addr) bool { return x == y })

// step is one call in a scenario: an Assign (req, with the outcome it must have) or,
// when do is set, anything else (SetPool, Release, a check of PoolStats, ...).
type step struct {
	do     func(t *testing.T, a *Allocator)
	req    Request
	want   []string // the IPs Assign returns: the new ones, or those kept on refusal
	pool   string   // Assignment.Pool when set; noPool means ""
	reason Reason
}

const noPool = "<none>"

func assign(req Request, want ...string) step { return step{req: req, want: want} }

func refuse(req Request, r Reason, kept ...string) step {
	return step{req: req, want: kept, reason: r}
}

func (s step) in(pool string) step { s.pool = pool; return s }

func call(f func(t *testing.T, a *Allocator)) step { return step{do: f} }

func release(key string, want bool) step {
	return call(func(t *testing.T, a *Allocator) {
		if got := a.Release(key); got != want {
			t.Errorf("Release(%q) = %v; want %v", key, got, want)
		}
	})
}

func setPool(p Pool) step { return call(func(_ *testing.T, a *Allocator) { a.SetPool(p) }) }
func deletePool(name string) step {
	return call(func(_ *testing.T, a *Allocator) { a.DeletePool(name) })
}

// wantUsed checks a pool's Used count per family.
func wantUsed(name string, want map[Family]uint64) step {
	return call(func(t *testing.T, a *Allocator) {
		t.Helper()
		st, ok := a.PoolStats(name)
		if !ok {
			t.Fatalf("PoolStats(%q): pool not found", name)
		}
		got := map[Family]uint64{}
		for f, s := range st {
			got[f] = s.Used
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("PoolStats(%q) used (-want +got):\n%s", name, diff)
		}
	})
}

func wantHolders(ip string, want ...string) step {
	return call(func(t *testing.T, a *Allocator) {
		t.Helper()
		if got := a.Holders(netip.MustParseAddr(ip)); !slices.Equal(got, want) {
			t.Errorf("Holders(%s) = %v; want %v", ip, got, want)
		}
	})
}

type scenario struct {
	name    string
	orphans OrphanPolicy
	pools   []Pool
	steps   []step
}

func runScenarios(t *testing.T, tests []scenario) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New(tt.orphans)
			for _, p := range tt.pools {
				a.SetPool(p)
			}
			for i, s := range tt.steps {
				if s.do != nil {
					s.do(t, a)
					if t.Failed() {
						t.Fatalf("step %d failed", i)
					}
				} else {
					checkAssign(t, a, i, s)
				}
				// The scenarios are about what is decided once every status
				// write has landed; quarantine_test.go covers the time before.
				settle(a)
			}
		})
	}
}

func checkAssign(t *testing.T, a *Allocator, i int, s step) {
	t.Helper()
	got, err := a.Assign(s.req)
	if r := ReasonOf(err); r != s.reason {
		t.Fatalf("step %d: Assign(%s) reason: got %v (%v); want %v", i, s.req.Key, r, err, s.reason)
	}
	if err != nil {
		var e *Error
		if !errors.As(err, &e) || e.Message == "" {
			t.Errorf("step %d: Assign(%s) error %#v is not an *Error with a message", i, s.req.Key, err)
		}
	}
	if diff := cmp.Diff(addrs(s.want...), got.IPs, addrCmp); diff != "" {
		t.Fatalf("step %d: Assign(%s) IPs (-want +got):\n%s (err %v)", i, s.req.Key, diff, err)
	}
	switch {
	case s.pool == noPool && got.Pool != "":
		t.Errorf("step %d: Assign(%s) pool: got %q; want none", i, s.req.Key, got.Pool)
	case s.pool != "" && s.pool != noPool && got.Pool != s.pool:
		t.Errorf("step %d: Assign(%s) pool: got %q; want %q", i, s.req.Key, got.Pool, s.pool)
	}
	g, ok := a.Get(s.req.Key)
	if ok != (len(got.IPs) > 0) {
		t.Errorf("step %d: Get(%s) ok = %v; want %v", i, s.req.Key, ok, len(got.IPs) > 0)
	}
	if diff := cmp.Diff(got, g, addrCmp); diff != "" {
		t.Errorf("step %d: Get(%s) disagrees with Assign (-assign +get):\n%s", i, s.req.Key, diff)
	}
}

func TestAssignLowestFree(t *testing.T) {
	runScenarios(t, []scenario{
		{
			name:  "lowest first, holes refilled",
			pools: []Pool{autoPool("a", "10.0.0.0/30")},
			steps: []step{
				assign(Request{Key: "s1"}, "10.0.0.0").in("a"),
				assign(Request{Key: "s2"}, "10.0.0.1"),
				assign(Request{Key: "s3"}, "10.0.0.2"),
				release("s2", true),
				assign(Request{Key: "s4"}, "10.0.0.1"),
				assign(Request{Key: "s5"}, "10.0.0.3"),
				refuse(Request{Key: "s6"}, ReasonPoolExhausted),
			},
		},
		{
			name:  "ranges of one pool in address order",
			pools: []Pool{autoPool("a", "10.0.0.9", "10.0.0.3-10.0.0.4")},
			steps: []step{
				assign(Request{Key: "s1"}, "10.0.0.3"),
				assign(Request{Key: "s2"}, "10.0.0.4"),
				assign(Request{Key: "s3"}, "10.0.0.9"),
				refuse(Request{Key: "s4"}, ReasonPoolExhausted),
			},
		},
		{
			name:  "avoidBuggyIPs skips .0 and .255",
			pools: []Pool{avoidBuggy(autoPool("a", "10.0.0.254-10.0.1.1"))},
			steps: []step{
				assign(Request{Key: "s1"}, "10.0.0.254"),
				assign(Request{Key: "s2"}, "10.0.1.1"),
				refuse(Request{Key: "s3"}, ReasonPoolExhausted),
			},
		},
		{
			name:  "avoidBuggyIPs pool of only buggy addresses",
			pools: []Pool{avoidBuggy(autoPool("a", "10.0.0.255-10.0.1.0"))},
			steps: []step{refuse(Request{Key: "s1"}, ReasonPoolExhausted)},
		},
		{
			name:  ".0 and .255 used without avoidBuggyIPs",
			pools: []Pool{autoPool("a", "10.0.0.255-10.0.1.0")},
			steps: []step{
				assign(Request{Key: "s1"}, "10.0.0.255"),
				assign(Request{Key: "s2"}, "10.0.1.0"),
			},
		},
		{
			name:  "IPv6 from the bottom of the prefix, avoidBuggyIPs ignored",
			pools: []Pool{avoidBuggy(autoPool("a", "2001:db8::/64"))},
			steps: []step{
				assign(Request{Key: "s1", Families: v6only}, "2001:db8::"),
				assign(Request{Key: "s2", Families: v6only}, "2001:db8::1"),
			},
		},
		{
			name:  "top of the IPv4 space",
			pools: []Pool{autoPool("a", "255.255.255.254/31")},
			steps: []step{
				assign(Request{Key: "s1"}, "255.255.255.254"),
				assign(Request{Key: "s2"}, "255.255.255.255"),
				refuse(Request{Key: "s3"}, ReasonPoolExhausted),
				release("s1", true),
				release("s2", true),
				assign(Request{Key: "s3"}, "255.255.255.254"),
			},
		},
		{
			name:  "top of the IPv6 space",
			pools: []Pool{autoPool("a", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127")},
			steps: []step{
				assign(Request{Key: "s1", Families: v6only}, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"),
				assign(Request{Key: "s2", Families: v6only}, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
				refuse(Request{Key: "s3", Families: v6only}, ReasonPoolExhausted),
			},
		},
	})
}

func TestPoolOrder(t *testing.T) {
	runScenarios(t, []scenario{
		{
			name: "priority lower first, no priority last, ties by name",
			pools: []Pool{
				prio(autoPool("c", "10.0.0.3"), 5),
				prio(autoPool("b", "10.0.0.2"), 5),
				autoPool("a", "10.0.0.1"),
				prio(autoPool("d", "10.0.0.4"), 1),
				prio(autoPool("e", "10.0.0.5"), -3),
				autoPool("0", "10.0.0.6"),
			},
			steps: []step{
				assign(Request{Key: "s1"}, "10.0.0.5").in("e"),
				assign(Request{Key: "s2"}, "10.0.0.4").in("d"),
				assign(Request{Key: "s3"}, "10.0.0.2").in("b"),
				assign(Request{Key: "s4"}, "10.0.0.3").in("c"),
				assign(Request{Key: "s5"}, "10.0.0.6").in("0"),
				assign(Request{Key: "s6"}, "10.0.0.1").in("a"),
				refuse(Request{Key: "s7"}, ReasonPoolExhausted),
			},
		},
		{
			name: "Priority without HasPriority is ignored",
			pools: []Pool{
				{Name: "a", Addresses: mustSet("10.0.0.1"), AutoAssign: true, Priority: -5},
				prio(autoPool("b", "10.0.0.2"), 100),
			},
			steps: []step{
				assign(Request{Key: "s1"}, "10.0.0.2").in("b"),
				assign(Request{Key: "s2"}, "10.0.0.1").in("a"),
			},
		},
		{
			name: "order follows pool edits",
			pools: []Pool{
				prio(autoPool("a", "10.0.0.0/30"), 1),
				prio(autoPool("b", "10.1.0.0/30"), 2),
			},
			steps: []step{
				assign(Request{Key: "s1"}, "10.0.0.0").in("a"),
				setPool(prio(autoPool("b", "10.1.0.0/30"), 0)),
				assign(Request{Key: "s2"}, "10.1.0.0").in("b"),
				deletePool("b"),
				assign(Request{Key: "s3"}, "10.0.0.1").in("a"),
			},
		},
	})
}

func TestAutoAssignFalse(t *testing.T) {
	runScenarios(t, []scenario{
		{
			name:  "manual pool only when named or holding the requested IP",
			pools: []Pool{manual(autoPool("manual", "10.0.0.0/30")), autoPool("auto", "10.1.0.0/31")},
			steps: []step{
				assign(Request{Key: "s1"}, "10.1.0.0").in("auto"),
				assign(Request{Key: "s2", Pool: "manual"}, "10.0.0.0").in("manual"),
				assign(Request{Key: "s3", IPs: addrs("10.0.0.2")}, "10.0.0.2").in("manual"),
				assign(Request{Key: "s4"}, "10.1.0.1").in("auto"),
				refuse(Request{Key: "s5"}, ReasonPoolExhausted),
				assign(Request{Key: "s5", Pool: "manual"}, "10.0.0.1").in("manual"),
			},
		},
		{
			name:  "only manual pools",
			pools: []Pool{manual(autoPool("manual", "10.0.0.0/30"))},
			steps: []step{
				refuse(Request{Key: "s1"}, ReasonNoPool),
				assign(Request{Key: "s1", Pool: "manual"}, "10.0.0.0"),
			},
		},
	})
}

func TestAllocationLimits(t *testing.T) {
	open := prio(autoPool("open", "10.1.0.0/30"), 2)
	limited := func(f func(*Pool)) Pool {
		p := prio(autoPool("limited", "10.0.0.0/30"), 1)
		f(&p)
		return p
	}
	byNS := limited(func(p *Pool) { p.Namespaces = []string{"team-a", "team-b"} })
	byNSSel := limited(func(p *Pool) { p.NamespaceSelector = matchLabel("env", "prod") })
	bySvcSel := limited(func(p *Pool) { p.ServiceSelector = matchLabel("app", "web") })
	byAll := limited(func(p *Pool) {
		p.Namespaces = []string{"team-a"}
		p.NamespaceSelector = matchLabel("env", "prod")
		p.ServiceSelector = matchLabel("app", "web")
	})
	prod, dev := map[string]string{"env": "prod"}, map[string]string{"env": "dev"}
	web, db := map[string]string{"app": "web"}, map[string]string{"app": "db"}
	runScenarios(t, []scenario{
		{
			name:  "namespaces",
			pools: []Pool{byNS, open},
			steps: []step{
				assign(Request{Key: "team-b/s1", Namespace: "team-b"}, "10.0.0.0").in("limited"),
				assign(Request{Key: "other/s1", Namespace: "other"}, "10.1.0.0").in("open"),
				assign(Request{Key: "s3"}, "10.1.0.1").in("open"),
			},
		},
		{
			name:  "namespaceSelector",
			pools: []Pool{byNSSel, open},
			steps: []step{
				assign(Request{Key: "s1", NamespaceLabels: prod}, "10.0.0.0").in("limited"),
				assign(Request{Key: "s2", NamespaceLabels: dev}, "10.1.0.0").in("open"),
				assign(Request{Key: "s3"}, "10.1.0.1").in("open"),
				// The selector looks at the namespace's labels, not the Service's.
				assign(Request{Key: "s4", Labels: prod}, "10.1.0.2").in("open"),
			},
		},
		{
			name:  "serviceSelector",
			pools: []Pool{bySvcSel, open},
			steps: []step{
				assign(Request{Key: "s1", Labels: web}, "10.0.0.0").in("limited"),
				assign(Request{Key: "s2", Labels: db}, "10.1.0.0").in("open"),
				assign(Request{Key: "s3", NamespaceLabels: web}, "10.1.0.1").in("open"),
			},
		},
		{
			name:  "every limit set must match",
			pools: []Pool{byAll, open},
			steps: []step{
				assign(Request{Key: "s1", Namespace: "team-a", NamespaceLabels: prod, Labels: db}, "10.1.0.0"),
				assign(Request{Key: "s2", Namespace: "team-a", NamespaceLabels: dev, Labels: web}, "10.1.0.1"),
				assign(Request{Key: "s3", Namespace: "team-b", NamespaceLabels: prod, Labels: web}, "10.1.0.2"),
				assign(Request{Key: "s4", Namespace: "team-a", NamespaceLabels: prod, Labels: web}, "10.0.0.0").in("limited"),
			},
		},
		{
			name:  "no pool allowed",
			pools: []Pool{byNS, manual(autoPool("manual", "10.2.0.0/30"))},
			steps: []step{
				refuse(Request{Key: "s1", Namespace: "other"}, ReasonNoPoolAllowed),
				refuse(Request{Key: "s1", Namespace: "other", Pool: "limited"}, ReasonPoolNotAllowed),
				refuse(Request{Key: "s1", Namespace: "other", IPs: addrs("10.0.0.1")}, ReasonPoolNotAllowed),
				assign(Request{Key: "s1", Namespace: "other", Pool: "manual"}, "10.2.0.0"),
				assign(Request{Key: "s2", Namespace: "team-a", IPs: addrs("10.0.0.1")}, "10.0.0.1").in("limited"),
			},
		},
	})
}

func TestRequestedIPs(t *testing.T) {
	runScenarios(t, []scenario{
		{
			name: "honoured and refused",
			pools: []Pool{
				autoPool("a", "10.0.0.0/24"),
				avoidBuggy(autoPool("b", "10.0.1.0/24")),
				autoPool("v6", "fd00::/120"),
			},
			steps: []step{
				assign(Request{Key: "s1", IPs: addrs("10.0.0.7")}, "10.0.0.7").in("a"),
				assign(Request{Key: "s2"}, "10.0.0.0").in("a"),
				refuse(Request{Key: "s3", IPs: addrs("10.0.0.7")}, ReasonRequestedIPInUse),
				refuse(Request{Key: "s3", IPs: addrs("10.0.0.0")}, ReasonRequestedIPInUse),
				refuse(Request{Key: "s3", IPs: addrs("192.168.0.1")}, ReasonRequestedIPNotInPool),
				refuse(Request{Key: "s3", IPs: addrs("10.0.1.0")}, ReasonRequestedIPNotInPool),
				refuse(Request{Key: "s3", IPs: addrs("10.0.1.255")}, ReasonRequestedIPNotInPool),
				refuse(Request{Key: "s3", Pool: "a", IPs: addrs("10.0.1.5")}, ReasonRequestedIPNotInPool),
				assign(Request{Key: "s3", IPs: addrs("10.0.0.255")}, "10.0.0.255").in("a"),
				assign(Request{Key: "s4", IPs: addrs("10.0.1.1")}, "10.0.1.1").in("b"),
				assign(Request{Key: "s5", IPs: addrs("fd00::5")}, "fd00::5").in("v6"),
				assign(Request{Key: "s6", Pool: "b", IPs: addrs("10.0.1.9")}, "10.0.1.9").in("b"),
				assign(Request{Key: "s7"}, "10.0.0.1").in("a"),
				// A Service whose status now names the IP it was given keeps it.
				assign(Request{Key: "s7", IPs: addrs("10.0.0.1")}, "10.0.0.1"),
			},
		},
		{
			name:  "requested IPs are skipped by automatic assignment",
			pools: []Pool{autoPool("a", "10.0.0.0/30")},
			steps: []step{
				assign(Request{Key: "s1", IPs: addrs("10.0.0.0")}, "10.0.0.0"),
				assign(Request{Key: "s2", IPs: addrs("10.0.0.2")}, "10.0.0.2"),
				assign(Request{Key: "s3"}, "10.0.0.1"),
				assign(Request{Key: "s4"}, "10.0.0.3"),
				refuse(Request{Key: "s5"}, ReasonPoolExhausted),
			},
		},
		{
			name: "dual-stack request from one pool",
			pools: []Pool{
				autoPool("d", "10.0.0.0/30", "fd00::/126"),
				autoPool("v4", "10.1.0.0/30"),
				autoPool("v6", "fd01::/126"),
			},
			steps: []step{
				assign(Request{Key: "s1", Families: dual, Policy: RequireDualStack, IPs: addrs("fd00::2", "10.0.0.1")},
					"10.0.0.1", "fd00::2").in("d"),
				refuse(Request{Key: "s2", Families: dual, Policy: RequireDualStack, IPs: addrs("10.1.0.1", "fd01::1")},
					ReasonRequestedIPNotInPool),
				// Requested addresses decide the families: one requested, one given.
				assign(Request{Key: "s3", Families: dual, Policy: PreferDualStack, IPs: addrs("10.0.0.2")}, "10.0.0.2"),
			},
		},
	})
}

func TestSharing(t *testing.T) {
	const k = "web"
	runScenarios(t, []scenario{
		{
			name:  "same key, disjoint ports, same traffic policy",
			pools: []Pool{autoPool("a", "10.0.0.0/30")},
			steps: []step{
				assign(Request{Key: "s1", SharingKey: k, Ports: []Port{tcp(80)}}, "10.0.0.0"),
				assign(Request{Key: "s2", SharingKey: k, Ports: []Port{tcp(443)}}, "10.0.0.0"),
				// A clashing port or traffic policy gets another address.
				assign(Request{Key: "s3", SharingKey: k, Ports: []Port{tcp(80)}}, "10.0.0.1"),
				assign(Request{Key: "s4", SharingKey: k, Ports: []Port{udp(80)}}, "10.0.0.0"),
				assign(Request{Key: "s5", SharingKey: k, Ports: []Port{tcp(8080)}, LocalTraffic: true}, "10.0.0.2"),
				assign(Request{Key: "s6", SharingKey: k, Ports: []Port{tcp(9090)}, LocalTraffic: true}, "10.0.0.2"),
				// Another key never shares.
				assign(Request{Key: "s7", SharingKey: "other", Ports: []Port{tcp(1)}}, "10.0.0.3"),
				refuse(Request{Key: "s8", Ports: []Port{tcp(2)}}, ReasonPoolExhausted),
				wantHolders("10.0.0.0", "s1", "s2", "s4"),
				// Idempotent for a sharer.
				assign(Request{Key: "s2", SharingKey: k, Ports: []Port{tcp(443)}}, "10.0.0.0"),
				wantUsed("a", map[Family]uint64{IPv4: 4}),
			},
		},
		{
			name:  "requested shared address",
			pools: []Pool{autoPool("a", "10.0.0.0/30")},
			steps: []step{
				assign(Request{Key: "s1", SharingKey: k, Ports: []Port{tcp(80)}, IPs: addrs("10.0.0.2")}, "10.0.0.2"),
				assign(Request{Key: "s2", SharingKey: k, Ports: []Port{tcp(443)}, IPs: addrs("10.0.0.2")}, "10.0.0.2"),
				refuse(Request{Key: "s3", SharingKey: k, Ports: []Port{tcp(443)}, IPs: addrs("10.0.0.2")}, ReasonSharingConflict),
				refuse(Request{Key: "s3", SharingKey: k, Ports: []Port{tcp(8080)}, LocalTraffic: true, IPs: addrs("10.0.0.2")}, ReasonSharingConflict),
				refuse(Request{Key: "s3", SharingKey: "other", Ports: []Port{tcp(8080)}, IPs: addrs("10.0.0.2")}, ReasonRequestedIPInUse),
				refuse(Request{Key: "s3", Ports: []Port{tcp(8080)}, IPs: addrs("10.0.0.2")}, ReasonRequestedIPInUse),
				assign(Request{Key: "s3", SharingKey: k, Ports: []Port{tcp(8080)}, IPs: addrs("10.0.0.2")}, "10.0.0.2"),
				wantHolders("10.0.0.2", "s1", "s2", "s3"),
				// Releasing sharers keeps the address until the last one goes.
				release("s1", true),
				release("s2", true),
				refuse(Request{Key: "s4", IPs: addrs("10.0.0.2")}, ReasonRequestedIPInUse),
				release("s3", true),
				wantHolders("10.0.0.2"),
				assign(Request{Key: "s4", IPs: addrs("10.0.0.2")}, "10.0.0.2"),
			},
		},
		{
			name:  "a key held without sharing cannot be joined",
			pools: []Pool{autoPool("a", "10.0.0.0/30")},
			steps: []step{
				assign(Request{Key: "s1", Ports: []Port{tcp(80)}}, "10.0.0.0"),
				refuse(Request{Key: "s2", SharingKey: k, Ports: []Port{tcp(443)}, IPs: addrs("10.0.0.0")}, ReasonRequestedIPInUse),
				assign(Request{Key: "s2", SharingKey: k, Ports: []Port{tcp(443)}}, "10.0.0.1"),
			},
		},
		{
			name:  "dual-stack sharers",
			pools: []Pool{autoPool("d", "10.0.0.0/30", "fd00::/126")},
			steps: []step{
				assign(Request{Key: "s1", SharingKey: k, Ports: []Port{tcp(80)}, Families: dual, Policy: RequireDualStack}, "10.0.0.0", "fd00::"),
				assign(Request{Key: "s2", SharingKey: k, Ports: []Port{tcp(443)}, Families: dual, Policy: RequireDualStack}, "10.0.0.0", "fd00::"),
				assign(Request{Key: "s3", SharingKey: k, Ports: []Port{tcp(53)}, Families: v6only}, "fd00::"),
				wantUsed("d", map[Family]uint64{IPv4: 1, IPv6: 1}),
			},
		},
	})
}

func TestFamilies(t *testing.T) {
	runScenarios(t, []scenario{
		{
			name:  "one dual-stack pool",
			pools: []Pool{autoPool("d", "10.0.0.0/30", "fd00::/126")},
			steps: []step{
				assign(Request{Key: "s1"}, "10.0.0.0"),
				assign(Request{Key: "s2", Families: v6only}, "fd00::"),
				assign(Request{Key: "s3", Families: dual}, "10.0.0.1"),
				assign(Request{Key: "s4", Families: v6first}, "fd00::1"),
				assign(Request{Key: "s5", Families: dual, Policy: PreferDualStack}, "10.0.0.2", "fd00::2"),
				assign(Request{Key: "s6", Families: v6first, Policy: PreferDualStack}, "10.0.0.3", "fd00::3"),
				refuse(Request{Key: "s7", Families: dual, Policy: RequireDualStack}, ReasonPoolExhausted),
			},
		},
		{
			name: "dual stack prefers the pool that has both",
			pools: []Pool{
				prio(autoPool("a", "10.0.0.0/30"), 1),
				prio(autoPool("b", "10.1.0.0/30", "fd00::/126"), 2),
			},
			steps: []step{
				assign(Request{Key: "s1", Families: dual, Policy: PreferDualStack}, "10.1.0.0", "fd00::").in("b"),
				assign(Request{Key: "s2", Families: dual, Policy: RequireDualStack}, "10.1.0.1", "fd00::1").in("b"),
				assign(Request{Key: "s3", Families: dual}, "10.0.0.0").in("a"),
			},
		},
		{
			name:  "IPv4 only",
			pools: []Pool{autoPool("a", "10.0.0.0/30")},
			steps: []step{
				assign(Request{Key: "s1", Families: dual, Policy: PreferDualStack}, "10.0.0.0"),
				assign(Request{Key: "s2", Families: v6first, Policy: PreferDualStack}, "10.0.0.1"),
				refuse(Request{Key: "s3", Families: dual, Policy: RequireDualStack}, ReasonFamilyUnavailable),
				refuse(Request{Key: "s3", Families: v6only}, ReasonFamilyUnavailable),
				refuse(Request{Key: "s3", Families: v6first}, ReasonFamilyUnavailable),
			},
		},
		{
			name:  "IPv6 only",
			pools: []Pool{autoPool("a", "fd00::/126")},
			steps: []step{
				assign(Request{Key: "s1", Families: dual, Policy: PreferDualStack}, "fd00::"),
				refuse(Request{Key: "s2"}, ReasonFamilyUnavailable),
				refuse(Request{Key: "s2", Families: dual, Policy: RequireDualStack}, ReasonFamilyUnavailable),
			},
		},
		{
			name: "families split over two pools",
			pools: []Pool{
				prio(autoPool("v4", "10.0.0.0/30"), 1),
				prio(autoPool("v6", "fd00::/126"), 2),
			},
			steps: []step{
				// Both addresses of a Service come from one pool.
				assign(Request{Key: "s1", Families: dual, Policy: PreferDualStack}, "10.0.0.0").in("v4"),
				assign(Request{Key: "s2", Families: v6first, Policy: PreferDualStack}, "10.0.0.1").in("v4"),
				refuse(Request{Key: "s3", Families: dual, Policy: RequireDualStack}, ReasonFamilyUnavailable),
				assign(Request{Key: "s3", Families: v6only}, "fd00::").in("v6"),
			},
		},
		{
			name:  "PreferDualStack settles, then completes when room appears",
			pools: []Pool{autoPool("d", "10.0.0.0/30", "fd00::")},
			steps: []step{
				assign(Request{Key: "s1", Families: dual, Policy: PreferDualStack}, "10.0.0.0", "fd00::"),
				assign(Request{Key: "s2", Families: dual, Policy: PreferDualStack}, "10.0.0.1"),
				refuse(Request{Key: "s3", Families: dual, Policy: RequireDualStack}, ReasonPoolExhausted),
				release("s1", true),
				assign(Request{Key: "s2", Families: dual, Policy: PreferDualStack}, "10.0.0.1", "fd00::"),
			},
		},
	})
}

func TestIdempotentAndSticky(t *testing.T) {
	dualReq := Request{Key: "s3", Families: dual, Policy: RequireDualStack}
	runScenarios(t, []scenario{
		{
			name:  "Assign twice returns the same IPs",
			pools: []Pool{autoPool("d", "10.0.0.0/29", "fd00::/125")},
			steps: []step{
				assign(Request{Key: "s1"}, "10.0.0.0"),
				assign(Request{Key: "s1"}, "10.0.0.0"),
				assign(Request{Key: "s2", IPs: addrs("10.0.0.5")}, "10.0.0.5"),
				assign(Request{Key: "s2", IPs: addrs("10.0.0.5")}, "10.0.0.5"),
				assign(dualReq, "10.0.0.1", "fd00::"),
				assign(dualReq, "10.0.0.1", "fd00::"),
				assign(Request{Key: "s4", SharingKey: "k", Ports: []Port{tcp(1)}}, "10.0.0.2"),
				assign(Request{Key: "s4", SharingKey: "k", Ports: []Port{tcp(1)}}, "10.0.0.2"),
				wantUsed("d", map[Family]uint64{IPv4: 4, IPv6: 1}),
			},
		},
		{
			name: "a Service keeps its IP when a higher-priority pool gains room",
			pools: []Pool{
				prio(autoPool("hi", "10.0.0.1", "fd00::1"), 1),
				prio(autoPool("lo", "10.1.0.0/30", "fd01::/126"), 2),
			},
			steps: []step{
				assign(Request{Key: "s1", Families: dual, Policy: RequireDualStack}, "10.0.0.1", "fd00::1").in("hi"),
				assign(Request{Key: "s2"}, "10.1.0.0").in("lo"),
				assign(dualReq, "10.1.0.1", "fd01::").in("lo"),
				release("s1", true),
				assign(Request{Key: "s2"}, "10.1.0.0").in("lo"),
				assign(dualReq, "10.1.0.1", "fd01::").in("lo"),
				setPool(prio(autoPool("new", "10.2.0.0/30", "fd02::/126"), 0)),
				assign(Request{Key: "s2"}, "10.1.0.0").in("lo"),
				assign(dualReq, "10.1.0.1", "fd01::").in("lo"),
				assign(Request{Key: "s4"}, "10.2.0.0").in("new"),
				// Naming another pool moves the Service.
				assign(Request{Key: "s2", Pool: "hi"}, "10.0.0.1").in("hi"),
				wantHolders("10.1.0.0"),
			},
		},
	})
}

func TestRelease(t *testing.T) {
	runScenarios(t, []scenario{{
		name:  "release frees the IP for the next Service",
		pools: []Pool{autoPool("a", "10.0.0.0/31", "fd00::/127")},
		steps: []step{
			assign(Request{Key: "s1", Families: dual, Policy: RequireDualStack}, "10.0.0.0", "fd00::"),
			assign(Request{Key: "s2"}, "10.0.0.1"),
			wantUsed("a", map[Family]uint64{IPv4: 2, IPv6: 1}),
			release("s1", true),
			release("s1", false),
			release("never", false),
			call(func(t *testing.T, a *Allocator) {
				if got, ok := a.Get("s1"); ok {
					t.Errorf("Get(s1) after Release = %v, true; want false", got)
				}
				if got, want := a.Services(), []string{"s2"}; !slices.Equal(got, want) {
					t.Errorf("Services() = %v; want %v", got, want)
				}
			}),
			wantUsed("a", map[Family]uint64{IPv4: 1, IPv6: 0}),
			assign(Request{Key: "s3", Families: v6first, Policy: RequireDualStack}, "10.0.0.0", "fd00::"),
		},
	}})
}

func TestRefusals(t *testing.T) {
	full := autoPool("full", "10.0.0.0/32")
	runScenarios(t, []scenario{
		{name: "no pools", steps: []step{refuse(Request{Key: "s1"}, ReasonNoPool)}},
		{
			name:  "pool not found",
			pools: []Pool{full},
			steps: []step{refuse(Request{Key: "s1", Pool: "nope"}, ReasonPoolNotFound)},
		},
		{
			name:  "pool not allowed",
			pools: []Pool{{Name: "a", Addresses: mustSet("10.0.0.0/30"), AutoAssign: true, Namespaces: []string{"x"}}},
			steps: []step{refuse(Request{Key: "s1", Namespace: "y", Pool: "a"}, ReasonPoolNotAllowed)},
		},
		{
			name:  "no pool allowed",
			pools: []Pool{{Name: "a", Addresses: mustSet("10.0.0.0/30"), AutoAssign: true, ServiceSelector: matchLabel("a", "b")}},
			steps: []step{refuse(Request{Key: "s1"}, ReasonNoPoolAllowed)},
		},
		{
			name:  "exhausted",
			pools: []Pool{full},
			steps: []step{
				assign(Request{Key: "s1"}, "10.0.0.0"),
				refuse(Request{Key: "s2"}, ReasonPoolExhausted),
				refuse(Request{Key: "s2", Pool: "full"}, ReasonPoolExhausted),
			},
		},
		{
			name:  "invalid requests",
			pools: []Pool{autoPool("d", "10.0.0.0/24", "fd00::/120")},
			steps: []step{
				refuse(Request{Key: "s1", IPs: addrs("10.0.0.1", "10.0.0.2")}, ReasonInvalidRequest),
				refuse(Request{Key: "s1", IPs: addrs("fd00::1", "fd00::2"), Families: v6only}, ReasonInvalidRequest),
				refuse(Request{Key: "s1", Families: []Family{IPv4}, IPs: addrs("fd00::1")}, ReasonInvalidRequest),
				refuse(Request{Key: "s1", IPs: addrs("10.0.0.1", "fd00::1")}, ReasonInvalidRequest), // SingleStack
				refuse(Request{Key: "s1", Families: dual, Policy: RequireDualStack, IPs: addrs("10.0.0.1")}, ReasonInvalidRequest),
				assign(Request{Key: "s1", Families: dual, Policy: PreferDualStack, IPs: addrs("10.0.0.1", "fd00::1")}, "10.0.0.1", "fd00::1"),
			},
		},
		{
			name:  "a failing re-Assign keeps the old assignment",
			pools: []Pool{autoPool("a", "10.0.0.0/30"), manual(autoPool("b", "10.1.0.0/32"))},
			steps: []step{
				assign(Request{Key: "s1"}, "10.0.0.0"),
				assign(Request{Key: "s2"}, "10.0.0.1"),
				refuse(Request{Key: "s1", IPs: addrs("10.0.0.1")}, ReasonRequestedIPInUse, "10.0.0.0").in("a"),
				refuse(Request{Key: "s1", Pool: "nope"}, ReasonPoolNotFound, "10.0.0.0"),
				refuse(Request{Key: "s1", IPs: addrs("10.0.0.2", "10.0.0.3")}, ReasonInvalidRequest, "10.0.0.0"),
				refuse(Request{Key: "s1", Families: v6only}, ReasonFamilyUnavailable, "10.0.0.0"),
				refuse(Request{Key: "s1", IPs: addrs("10.9.0.0")}, ReasonRequestedIPNotInPool, "10.0.0.0"),
				assign(Request{Key: "s3"}, "10.0.0.2"),
				assign(Request{Key: "s4"}, "10.0.0.3"),
				assign(Request{Key: "s5", Pool: "b"}, "10.1.0.0"),
				refuse(Request{Key: "s1", Pool: "b"}, ReasonPoolExhausted, "10.0.0.0"),
				wantHolders("10.0.0.0", "s1"),
				assign(Request{Key: "s1"}, "10.0.0.0"),
			},
		},
	})
}

func TestOrphans(t *testing.T) {
	runScenarios(t, []scenario{
		{
			name:    "RetainOrphans keeps the IP and never hands it out",
			orphans: RetainOrphans,
			pools:   []Pool{autoPool("a", "10.0.0.0/30")},
			steps: []step{
				assign(Request{Key: "s1"}, "10.0.0.0"),
				assign(Request{Key: "s2", SharingKey: "k", Ports: []Port{tcp(80)}}, "10.0.0.1"),
				setPool(autoPool("a", "10.0.0.2/31")),
				assign(Request{Key: "s1"}, "10.0.0.0").in(noPool),
				// Ports of a Service holding an orphan may change; a sharer may join it.
				assign(Request{Key: "s2", SharingKey: "k", Ports: []Port{tcp(81)}}, "10.0.0.1").in(noPool),
				wantUsed("a", map[Family]uint64{IPv4: 0}),
				assign(Request{Key: "s3"}, "10.0.0.2").in("a"),
				assign(Request{Key: "s4"}, "10.0.0.3").in("a"),
				refuse(Request{Key: "s5"}, ReasonPoolExhausted),
				refuse(Request{Key: "s5", IPs: addrs("10.0.0.0")}, ReasonRequestedIPNotInPool),
				deletePool("a"),
				assign(Request{Key: "s3"}, "10.0.0.2").in(noPool),
				setPool(autoPool("a", "10.0.0.0/30")),
				wantUsed("a", map[Family]uint64{IPv4: 4}),
				refuse(Request{Key: "s5"}, ReasonPoolExhausted),
				release("s1", true),
				assign(Request{Key: "s5"}, "10.0.0.0").in("a"),
			},
		},
		{
			name:    "RetainOrphans on a dual-stack Service with one family orphaned",
			orphans: RetainOrphans,
			pools:   []Pool{autoPool("d", "10.0.0.0/30", "fd00::/126")},
			steps: []step{
				assign(Request{Key: "s1", Families: dual, Policy: RequireDualStack}, "10.0.0.0", "fd00::"),
				setPool(autoPool("d", "10.0.0.0/30")),
				assign(Request{Key: "s1", Families: dual, Policy: RequireDualStack}, "10.0.0.0", "fd00::").in(noPool),
				wantUsed("d", map[Family]uint64{IPv4: 1}),
				assign(Request{Key: "s2"}, "10.0.0.1"),
			},
		},
		{
			name:    "ReassignOrphans moves to a remaining pool",
			orphans: ReassignOrphans,
			pools:   []Pool{prio(autoPool("a", "10.0.0.0/30"), 1), prio(autoPool("b", "10.1.0.0/32"), 2)},
			steps: []step{
				assign(Request{Key: "s1"}, "10.0.0.0").in("a"),
				assign(Request{Key: "s2"}, "10.0.0.1").in("a"),
				setPool(prio(autoPool("a", "10.0.0.2/31"), 1)),
				assign(Request{Key: "s1"}, "10.0.0.2").in("a"),
				wantHolders("10.0.0.0"),
				deletePool("a"),
				assign(Request{Key: "s1"}, "10.1.0.0").in("b"),
				// No room: the old address stays until there is.
				refuse(Request{Key: "s2"}, ReasonPoolExhausted, "10.0.0.1").in(noPool),
				wantHolders("10.0.0.1", "s2"),
				release("s1", true),
				assign(Request{Key: "s2"}, "10.1.0.0").in("b"),
				wantHolders("10.0.0.1"),
				wantUsed("b", map[Family]uint64{IPv4: 1}),
			},
		},
		{
			name:    "ReassignOrphans with no pool left keeps the address",
			orphans: ReassignOrphans,
			pools:   []Pool{autoPool("a", "10.0.0.0/30")},
			steps: []step{
				assign(Request{Key: "s1"}, "10.0.0.0"),
				deletePool("a"),
				refuse(Request{Key: "s1"}, ReasonNoPool, "10.0.0.0").in(noPool),
				setPool(autoPool("b", "10.2.0.0/30")),
				assign(Request{Key: "s1"}, "10.2.0.0").in("b"),
			},
		},
		{
			name:    "ReassignOrphans drops an orphaned family only when it may",
			orphans: ReassignOrphans,
			pools:   []Pool{autoPool("d", "10.0.0.0/30", "fd00::/126")},
			steps: []step{
				assign(Request{Key: "req", Families: dual, Policy: RequireDualStack}, "10.0.0.0", "fd00::"),
				assign(Request{Key: "pref", Families: dual, Policy: PreferDualStack}, "10.0.0.1", "fd00::1"),
				setPool(autoPool("d", "10.0.0.0/30")),
				refuse(Request{Key: "req", Families: dual, Policy: RequireDualStack}, ReasonFamilyUnavailable, "10.0.0.0", "fd00::"),
				assign(Request{Key: "pref", Families: dual, Policy: PreferDualStack}, "10.0.0.1").in("d"),
			},
		},
	})
}

func TestOverlappingPools(t *testing.T) {
	a := prio(autoPool("a", "10.0.0.0/30"), 1)
	b := prio(autoPool("b", "10.0.0.2/31", "10.0.0.8"), 2)
	c := autoPool("c", "10.1.0.0/24")
	overlaps := call(func(t *testing.T, al *Allocator) {
		for name, want := range map[string][]string{"a": {"b"}, "b": {"a"}, "c": nil, "nope": nil} {
			if got := al.Overlaps(name); !slices.Equal(got, want) {
				t.Errorf("Overlaps(%q) = %v; want %v", name, got, want)
			}
		}
	})
	runScenarios(t, []scenario{
		{
			name:  "higher priority pool first",
			pools: []Pool{a, b},
			steps: []step{
				overlaps,
				assign(Request{Key: "s1"}, "10.0.0.0").in("a"),
				assign(Request{Key: "s2"}, "10.0.0.1").in("a"),
				assign(Request{Key: "s3"}, "10.0.0.2").in("a"),
				assign(Request{Key: "s4"}, "10.0.0.3").in("a"),
				assign(Request{Key: "s5"}, "10.0.0.8").in("b"),
				refuse(Request{Key: "s6"}, ReasonPoolExhausted),
				refuse(Request{Key: "s6", Pool: "b"}, ReasonPoolExhausted),
				wantUsed("a", map[Family]uint64{IPv4: 4}),
				wantUsed("b", map[Family]uint64{IPv4: 3}),
				release("s3", true),
				wantUsed("b", map[Family]uint64{IPv4: 2}),
				assign(Request{Key: "s6", Pool: "b"}, "10.0.0.2").in("a"),
				refuse(Request{Key: "s7"}, ReasonPoolExhausted),
			},
		},
		{
			name:  "lower priority pool first",
			pools: []Pool{prio(b, 0), a, c},
			steps: []step{
				overlaps,
				assign(Request{Key: "s1"}, "10.0.0.2").in("b"),
				assign(Request{Key: "s2"}, "10.0.0.3").in("b"),
				assign(Request{Key: "s3"}, "10.0.0.8").in("b"),
				assign(Request{Key: "s4"}, "10.0.0.0").in("a"),
				assign(Request{Key: "s5"}, "10.0.0.1").in("a"),
				assign(Request{Key: "s6"}, "10.1.0.0").in("c"),
				// A new pool overlapping assigned addresses counts them as used.
				setPool(autoPool("d", "10.0.0.0/28")),
				wantUsed("d", map[Family]uint64{IPv4: 5}),
				assign(Request{Key: "s7", Pool: "d"}, "10.0.0.4"),
			},
		},
	})
}

func TestPoolStats(t *testing.T) {
	pow2 := func(n uint) string { return new(big.Int).Lsh(big.NewInt(1), n).String() }
	tests := []struct {
		name   string
		pool   Pool
		assign []Request
		want   map[Family][2]string // capacity, free
	}{
		{"IPv4 /24", autoPool("p", "10.0.0.0/24"), nil, map[Family][2]string{IPv4: {"256", "256"}}},
		{"IPv4 /24 avoidBuggyIPs", avoidBuggy(autoPool("p", "10.0.0.0/24")), nil, map[Family][2]string{IPv4: {"254", "254"}}},
		{
			"IPv4 /24 avoidBuggyIPs, two used", avoidBuggy(autoPool("p", "10.0.0.0/24")),
			[]Request{{Key: "s1"}, {Key: "s2"}}, map[Family][2]string{IPv4: {"254", "252"}},
		},
		{"range across .255, avoidBuggyIPs", avoidBuggy(autoPool("p", "10.0.0.250-10.0.1.5")), nil, map[Family][2]string{IPv4: {"10", "10"}}},
		{"0.0.0.0/0 avoidBuggyIPs", avoidBuggy(autoPool("p", "0.0.0.0/0")), nil, map[Family][2]string{IPv4: {fmt.Sprint(1<<32 - 1<<25), fmt.Sprint(1<<32 - 1<<25)}}},
		{"IPv6 /64", autoPool("p", "2001:db8::/64"), nil, map[Family][2]string{IPv6: {pow2(64), pow2(64)}}},
		{
			"IPv6 /64 avoidBuggyIPs, three used", avoidBuggy(autoPool("p", "2001:db8::/64")),
			[]Request{{Key: "s1", Families: v6only}, {Key: "s2", Families: v6only}, {Key: "s3", Families: v6only}},
			map[Family][2]string{IPv6: {pow2(64), new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 64), big.NewInt(3)).String()}},
		},
		{"::/0", autoPool("p", "::/0"), nil, map[Family][2]string{IPv6: {pow2(128), pow2(128)}}},
		{
			"dual stack", autoPool("p", "10.0.0.0/24", "2001:db8::/64"),
			[]Request{{Key: "s1", Families: dual, Policy: RequireDualStack}},
			map[Family][2]string{IPv4: {"256", "255"}, IPv6: {pow2(64), new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 64), big.NewInt(1)).String()}},
		},
		{"no addresses", Pool{Name: "p"}, nil, map[Family][2]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New(RetainOrphans)
			a.SetPool(tt.pool)
			for _, r := range tt.assign {
				if _, err := a.Assign(r); err != nil {
					t.Fatalf("Assign(%s): %v", r.Key, err)
				}
			}
			st, ok := a.PoolStats("p")
			if !ok {
				t.Fatal("PoolStats(p): not found")
			}
			got := map[Family][2]string{}
			for f, s := range st {
				got[f] = [2]string{s.Capacity.String(), s.Free().String()}
				if want := uint64(0); s.Used != want && tt.assign == nil {
					t.Errorf("%v used: got %d; want %d", f, s.Used, want)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("PoolStats (capacity, free) (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("unknown pool", func(t *testing.T) {
		if st, ok := New(RetainOrphans).PoolStats("nope"); ok || st != nil {
			t.Errorf("PoolStats(nope) = %v, %v; want nil, false", st, ok)
		}
	})
	t.Run("copies capacity", func(t *testing.T) {
		a := New(RetainOrphans)
		a.SetPool(autoPool("p", "10.0.0.0/24"))
		st, _ := a.PoolStats("p")
		st[IPv4].Capacity.SetInt64(1)
		st, _ = a.PoolStats("p")
		if got, want := st[IPv4].Capacity.String(), "256"; got != want {
			t.Errorf("capacity after caller changed its copy: got %s; want %s", got, want)
		}
	})
	t.Run("free never below zero", func(t *testing.T) {
		a := New(RetainOrphans)
		a.SetPool(avoidBuggy(autoPool("p", "10.0.0.0/32")))
		if err := a.Restore(Request{Key: "s1"}, addrs("10.0.0.0")); err != nil {
			t.Fatal(err)
		}
		st, _ := a.PoolStats("p")
		if got, want := st[IPv4].Used, uint64(1); got != want {
			t.Errorf("used: got %d; want %d", got, want)
		}
		if got, want := st[IPv4].Free().String(), "0"; got != want {
			t.Errorf("free: got %s; want %s", got, want)
		}
	})
}

func TestRestore(t *testing.T) {
	restore := func(req Request, ips []string, want Reason) step {
		return call(func(t *testing.T, a *Allocator) {
			t.Helper()
			before, held := a.Get(req.Key)
			err := a.Restore(req, addrs(ips...))
			if got := ReasonOf(err); got != want {
				t.Fatalf("Restore(%s, %v) reason: got %v (%v); want %v", req.Key, ips, got, err, want)
			}
			after, ok := a.Get(req.Key)
			if err != nil {
				if ok != held || !slices.Equal(after.IPs, before.IPs) {
					t.Errorf("refused Restore(%s) changed the assignment: got %v; want %v", req.Key, after, before)
				}
				return
			}
			if len(ips) == 0 {
				return
			}
			want := addrs(ips...)
			slices.SortFunc(want, netip.Addr.Compare)
			if !ok || !slices.Equal(after.IPs, want) {
				t.Errorf("Get(%s) after Restore: got %v, %v; want %v", req.Key, after.IPs, ok, want)
			}
		})
	}
	const k = "k"
	runScenarios(t, []scenario{
		{
			name:  "rebuild from status",
			pools: []Pool{autoPool("d", "10.0.0.0/24", "fd00::/120")},
			steps: []step{
				restore(Request{Key: "s1"}, []string{"10.0.0.5"}, 0),
				restore(Request{Key: "s2", Families: dual, Policy: RequireDualStack}, []string{"fd00::1", "10.0.0.6"}, 0),
				restore(Request{Key: "s3"}, []string{"10.0.0.5"}, ReasonRequestedIPInUse),
				restore(Request{Key: "s4", SharingKey: k, Ports: []Port{tcp(80)}}, []string{"10.0.0.7"}, 0),
				restore(Request{Key: "s5", SharingKey: k, Ports: []Port{tcp(443)}}, []string{"10.0.0.7"}, 0),
				restore(Request{Key: "s6", SharingKey: k, Ports: []Port{tcp(80)}}, []string{"10.0.0.7"}, ReasonSharingConflict),
				restore(Request{Key: "s6", SharingKey: k, Ports: []Port{tcp(81)}, LocalTraffic: true}, []string{"10.0.0.7"}, ReasonSharingConflict),
				restore(Request{Key: "s6", SharingKey: "other", Ports: []Port{tcp(81)}}, []string{"10.0.0.7"}, ReasonRequestedIPInUse),
				restore(Request{Key: "s7"}, []string{"10.0.0.8", "10.0.0.9"}, ReasonInvalidRequest),
				// All or nothing: the IPv6 address is taken, so the IPv4 one is not held either.
				restore(Request{Key: "s8"}, []string{"10.0.0.10", "fd00::1"}, ReasonRequestedIPInUse),
				wantHolders("10.0.0.10"),
				restore(Request{Key: "s9"}, []string{"192.168.1.1"}, 0),
				restore(Request{Key: "s10"}, nil, 0),
				call(func(t *testing.T, a *Allocator) {
					if _, ok := a.Get("s10"); ok {
						t.Error("Get(s10) after Restore with no IPs: got true; want false")
					}
					if g, _ := a.Get("s2"); g.Pool != "d" {
						t.Errorf("Get(s2).Pool: got %q; want d", g.Pool)
					}
					if g, _ := a.Get("s9"); g.Pool != "" {
						t.Errorf("Get(s9).Pool: got %q; want none", g.Pool)
					}
				}),
				wantUsed("d", map[Family]uint64{IPv4: 3, IPv6: 1}),
				// After a restart, Assign confirms what was restored and works around it.
				assign(Request{Key: "s1"}, "10.0.0.5").in("d"),
				assign(Request{Key: "s2", Families: dual, Policy: RequireDualStack}, "10.0.0.6", "fd00::1").in("d"),
				assign(Request{Key: "s4", SharingKey: k, Ports: []Port{tcp(80)}}, "10.0.0.7"),
				assign(Request{Key: "s11", SharingKey: k, Ports: []Port{tcp(8080)}}, "10.0.0.7"),
				assign(Request{Key: "s12"}, "10.0.0.0"),
				assign(Request{Key: "s13", Families: v6only}, "fd00::"),
				assign(Request{Key: "s14", Families: v6only}, "fd00::2"),
			},
		},
		{
			name: "restore before pools exist",
			steps: []step{
				restore(Request{Key: "s1"}, []string{"10.0.0.1"}, 0),
				setPool(autoPool("a", "10.0.0.0/30")),
				wantUsed("a", map[Family]uint64{IPv4: 1}),
				assign(Request{Key: "s2"}, "10.0.0.0"),
				assign(Request{Key: "s3"}, "10.0.0.2"),
			},
		},
	})
}

// TestRestoreCopiesIPs pins a bug: Restore kept (and sorted) the caller's slice, so a
// controller reusing its buffer changed what the allocator thought a Service held.
func TestRestoreCopiesIPs(t *testing.T) {
	a := New(RetainOrphans)
	a.SetPool(autoPool("d", "10.0.0.0/24", "fd00::/120"))
	ips := addrs("fd00::1", "10.0.0.1")
	if err := a.Restore(Request{Key: "s1", Families: v6first, Policy: RequireDualStack}, ips); err != nil {
		t.Fatal(err)
	}
	if want := addrs("fd00::1", "10.0.0.1"); !slices.Equal(ips, want) {
		t.Errorf("Restore changed its argument: got %v; want %v", ips, want)
	}
	ips[0], ips[1] = netip.MustParseAddr("10.9.9.9"), netip.MustParseAddr("fd09::9")
	got, _ := a.Get("s1")
	if want := addrs("10.0.0.1", "fd00::1"); !slices.Equal(got.IPs, want) {
		t.Errorf("Get(s1) after the caller reused its slice: got %v; want %v", got.IPs, want)
	}
	if !a.Release("s1") {
		t.Fatal("Release(s1) = false")
	}
	a.Shown("s1", nil)
	if got := a.Holders(netip.MustParseAddr("10.0.0.1")); got != nil {
		t.Errorf("Holders(10.0.0.1) after Release: got %v; want none", got)
	}
	st, _ := a.PoolStats("d")
	if st[IPv4].Used != 0 || st[IPv6].Used != 0 {
		t.Errorf("used after Release: got %d/%d; want 0/0", st[IPv4].Used, st[IPv6].Used)
	}
}

func TestReasonString(t *testing.T) {
	seen := map[string]Reason{}
	for _, r := range Reasons() {
		s := r.String()
		if s == "Unknown" || s == "" {
			t.Errorf("Reason(%d).String() = %q; want a name", int(r), s)
		}
		if prev, dup := seen[s]; dup {
			t.Errorf("Reason(%d) and Reason(%d) are both %q", int(prev), int(r), s)
		}
		seen[s] = r
	}
	if got, want := len(Reasons()), 12; got != want {
		t.Errorf("len(Reasons()): got %d; want %d", got, want)
	}
	if got, want := len(Reasons()), len(reasonNames); got != want {
		t.Errorf("len(Reasons()): got %d; want %d (every named reason)", got, want)
	}
	for _, r := range []Reason{0, ReasonSharingLocalSelector + 1, -1} {
		if got := r.String(); got != "Unknown" {
			t.Errorf("Reason(%d).String() = %q; want Unknown", int(r), got)
		}
	}
	if got := ReasonOf(nil); got != 0 {
		t.Errorf("ReasonOf(nil): got %v; want 0", got)
	}
	if got := ReasonOf(fmt.Errorf("wrapped: %w", &Error{ReasonNoPool, "x"})); got != ReasonNoPool {
		t.Errorf("ReasonOf(wrapped): got %v; want %v", got, ReasonNoPool)
	}
	if got := ReasonOf(errors.New("plain")); got != 0 {
		t.Errorf("ReasonOf(plain): got %v; want 0", got)
	}
}

func TestFamilyStrings(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Family
		name string
	}{{"10.0.0.1", IPv4, "IPv4"}, {"fd00::1", IPv6, "IPv6"}} {
		f := FamilyOf(netip.MustParseAddr(tt.in))
		if f != tt.want || f.String() != tt.name {
			t.Errorf("FamilyOf(%s) = %v (%d); want %v", tt.in, f, int(f), tt.name)
		}
	}
	if got, want := tcp(80).String(), "TCP/80"; got != want {
		t.Errorf("Port.String(): got %q; want %q", got, want)
	}
}

// TestReleasesCountsOnlyWhatCanHelpOthers pins when the controller retries refused
// Services: after a release or a sharer's change, never after a plain assignment
// or a repeated one (a burst of new Services must not retry every pending one).
func TestReleasesCountsOnlyWhatCanHelpOthers(t *testing.T) {
	a := New(RetainOrphans)
	a.SetPool(Pool{Name: "p", Addresses: mustSet("10.0.0.0/30"), AutoAssign: true})
	web := Request{Key: "ns/a", SharingKey: "k", Ports: []Port{{"TCP", 80}}}
	step := func(what string, f func(), wantBump bool) {
		t.Helper()
		before := a.Releases()
		f()
		if got := a.Releases() != before; got != wantBump {
			t.Errorf("%s: Releases moved = %v; want %v", what, got, wantBump)
		}
	}
	step("first assignment", func() { a.Assign(web) }, false)
	step("same request again", func() { a.Assign(web) }, false)
	step("second Service", func() { a.Assign(Request{Key: "ns/b"}) }, false)
	web.Ports = []Port{{"TCP", 8080}}
	step("sharer changes ports", func() { a.Assign(web) }, true)
	step("release, status not yet written", func() { a.Release("ns/b") }, false)
	step("release written", func() { a.Shown("ns/b", nil) }, true)
	step("written again", func() { a.Shown("ns/b", nil) }, false)
}

// TestOwnPortClashIsSharingConflict: a Service whose own port change clashes with
// the Service it shares with is told so, not that the pool is full.
func TestOwnPortClashIsSharingConflict(t *testing.T) {
	a := New(RetainOrphans)
	a.SetPool(Pool{Name: "p", Addresses: mustSet("10.0.0.1"), AutoAssign: true})
	x := Request{Key: "ns/x", SharingKey: "k", Ports: []Port{{"TCP", 80}}}
	y := Request{Key: "ns/y", SharingKey: "k", Ports: []Port{{"TCP", 443}}}
	for _, r := range []Request{x, y} {
		if _, err := a.Assign(r); err != nil {
			t.Fatal(err)
		}
	}
	y.Ports = []Port{{"TCP", 80}}
	got, err := a.Assign(y)
	if ReasonOf(err) != ReasonSharingConflict {
		t.Errorf("reason = %v (%v); want SharingConflict", ReasonOf(err), err)
	}
	if len(got.IPs) != 1 || got.IPs[0] != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("refused Service holds %v; want it to keep 10.0.0.1", got.IPs)
	}
}

// settle lands every status write: each Service's status shows what it holds, so
// every quarantine ends.
func settle(a *Allocator) {
	for _, k := range slices.Sorted(maps.Keys(a.quarantinedBy)) {
		a.Shown(k, a.svcs[k].heldIPs())
	}
}
