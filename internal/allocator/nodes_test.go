package allocator

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func setNodes(m map[string][]string) step {
	return call(func(_ *testing.T, a *Allocator) {
		nodes := map[netip.Addr][]string{}
		for ip, names := range m {
			nodes[netip.MustParseAddr(ip)] = names
		}
		a.SetNodeAddresses(nodes)
	})
}

func wantMessage(req Request, contains ...string) step {
	return call(func(t *testing.T, a *Allocator) {
		t.Helper()
		_, err := a.Assign(req)
		if err == nil {
			t.Fatalf("Assign(%s): no error; want one containing %q", req.Key, contains)
		}
		for _, c := range contains {
			if !strings.Contains(err.Error(), c) {
				t.Errorf("Assign(%s) error %q; want it to contain %q", req.Key, err, c)
			}
		}
	})
}

// TestNodeAddresses pins issue 8: a Service that requested a node's address got it,
// and two MACs answered ARP for it.
func TestNodeAddresses(t *testing.T) {
	runScenarios(t, []scenario{
		{
			name:  "requested node address is refused, naming the node",
			pools: []Pool{autoPool("a", "10.0.0.0/29")},
			steps: []step{
				setNodes(map[string][]string{"10.0.0.5": {"worker-1"}}),
				refuse(Request{Key: "s1", IPs: addrs("10.0.0.5")}, ReasonNodeAddress),
				wantMessage(Request{Key: "s1", IPs: addrs("10.0.0.5")}, "10.0.0.5", "node worker-1"),
				assign(Request{Key: "s1", IPs: addrs("10.0.0.4")}, "10.0.0.4"),
			},
		},
		{
			name:  "automatic assignment skips node addresses",
			pools: []Pool{autoPool("a", "10.0.0.0/30")},
			steps: []step{
				setNodes(map[string][]string{"10.0.0.0": {"n1"}, "10.0.0.1": {"n2"}, "10.0.0.3": {"n3"}}),
				assign(Request{Key: "s1"}, "10.0.0.2"),
				refuse(Request{Key: "s2"}, ReasonPoolExhausted),
				// The node gives the address up: it can be handed out again.
				setNodes(map[string][]string{"10.0.0.0": {"n1"}, "10.0.0.1": {"n2"}}),
				assign(Request{Key: "s2"}, "10.0.0.3"),
			},
		},
		{
			name:  "avoidBuggyIPs and node addresses together",
			pools: []Pool{avoidBuggy(autoPool("a", "10.0.0.254-10.0.1.3"))},
			steps: []step{
				setNodes(map[string][]string{"10.0.0.254": {"n1"}, "10.0.1.1": {"n2"}}),
				assign(Request{Key: "s1"}, "10.0.1.2"),
			},
		},
		{
			name:  "a Service that holds an address a node later takes keeps it",
			pools: []Pool{autoPool("a", "10.0.0.0/30")},
			steps: []step{
				assign(Request{Key: "s1", IPs: addrs("10.0.0.1")}, "10.0.0.1"),
				assign(Request{Key: "s2"}, "10.0.0.0"),
				setNodes(map[string][]string{"10.0.0.1": {"n1"}, "10.0.0.0": {"n2"}}),
				// Keeping it cuts nothing; the controller warns (see ipam).
				assign(Request{Key: "s1", IPs: addrs("10.0.0.1")}, "10.0.0.1").in("a"),
				assign(Request{Key: "s2"}, "10.0.0.0").in("a"),
				// But once let go, it is never handed out again.
				release("s2", true),
				assign(Request{Key: "s3"}, "10.0.0.2"),
				refuse(Request{Key: "s2", IPs: addrs("10.0.0.0")}, ReasonNodeAddress),
			},
		},
		{
			name:  "a sharer cannot join a node address",
			pools: []Pool{autoPool("a", "10.0.0.0/30")},
			steps: []step{
				assign(Request{Key: "s1", SharingKey: "k", Ports: []Port{tcp(80)}}, "10.0.0.0"),
				setNodes(map[string][]string{"10.0.0.0": {"n1"}}),
				assign(Request{Key: "s2", SharingKey: "k", Ports: []Port{tcp(443)}}, "10.0.0.1"),
			},
		},
	})
}

func TestSetNodeAddressesReportsChange(t *testing.T) {
	a := New(RetainOrphans)
	ip := netip.MustParseAddr("10.0.0.1")
	if !a.SetNodeAddresses(map[netip.Addr][]string{ip: {"b", "a"}}) {
		t.Error("first SetNodeAddresses reported no change")
	}
	if a.SetNodeAddresses(map[netip.Addr][]string{ip: {"a", "b", "a"}}) {
		t.Error("the same addresses in another order reported a change")
	}
	if got := a.NodesOf(ip); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("NodesOf = %v; want [a b]", got)
	}
	r := a.Releases()
	if !a.SetNodeAddresses(nil) || a.Releases() == r {
		t.Error("dropping a node address must report a change and count as a release (a refused Service may now succeed)")
	}
}

func TestNodeOverlaps(t *testing.T) {
	a := New(RetainOrphans)
	a.SetPool(autoPool("a", "10.0.0.0/24"))
	a.SetPool(autoPool("b", "10.0.1.0/24"))
	a.SetNodeAddresses(map[netip.Addr][]string{
		netip.MustParseAddr("10.0.0.9"): {"n2"},
		netip.MustParseAddr("10.0.0.3"): {"n1"},
		netip.MustParseAddr("10.9.0.1"): {"n3"},
	})
	got := a.NodeOverlaps("a")
	want := []NodeAddress{{netip.MustParseAddr("10.0.0.3"), []string{"n1"}}, {netip.MustParseAddr("10.0.0.9"), []string{"n2"}}}
	if diff := cmp.Diff(want, got, addrCmp); diff != "" {
		t.Errorf("NodeOverlaps(a) (-want +got):\n%s", diff)
	}
	if got := a.NodeOverlaps("b"); len(got) != 0 {
		t.Errorf("NodeOverlaps(b) = %v; want none", got)
	}
	if got, want := want[0].String(), "10.0.0.3 (node n1)"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
}

// TestSharingLocalSelector pins issue 8: two Local Services sharing an address by
// key whose pods ran on different nodes left no node to announce it, cutting the
// first Service.
func TestSharingLocalSelector(t *testing.T) {
	const k = "web"
	app := func(v string) map[string]string { return map[string]string{"app": v} }
	local := func(key string, port int32, sel map[string]string, ips ...string) Request {
		return Request{Key: key, SharingKey: k, Ports: []Port{tcp(port)}, LocalTraffic: true, Selector: sel, IPs: addrs(ips...)}
	}
	runScenarios(t, []scenario{
		{
			name:  "requested: refused unless selectors are equal",
			pools: []Pool{autoPool("a", "10.0.0.0/30")},
			steps: []step{
				assign(local("ns/first", 80, app("a"), "10.0.0.1"), "10.0.0.1"),
				refuse(local("ns/second", 443, app("b"), "10.0.0.1"), ReasonSharingLocalSelector),
				wantMessage(local("ns/second", 443, app("b"), "10.0.0.1"), "Service ns/first", "app=a", "app=b", "select the same pods"),
				assign(local("ns/second", 443, app("a"), "10.0.0.1"), "10.0.0.1"),
				wantHolders("10.0.0.1", "ns/first", "ns/second"),
			},
		},
		{
			name:  "automatic: refused, not quietly given a second address",
			pools: []Pool{autoPool("a", "10.0.0.0/30")},
			steps: []step{
				assign(local("ns/first", 80, app("a")), "10.0.0.0"),
				refuse(local("ns/second", 443, app("b")), ReasonSharingLocalSelector),
				// The first is untouched.
				assign(local("ns/first", 80, app("a")), "10.0.0.0"),
				assign(local("ns/second", 443, app("a")), "10.0.0.0"),
			},
		},
		{
			name:  "Cluster policy sharing ignores selectors",
			pools: []Pool{autoPool("a", "10.0.0.0/30")},
			steps: []step{
				assign(Request{Key: "s1", SharingKey: k, Ports: []Port{tcp(80)}, Selector: app("a")}, "10.0.0.0"),
				assign(Request{Key: "s2", SharingKey: k, Ports: []Port{tcp(443)}, Selector: app("b")}, "10.0.0.0"),
			},
		},
		{
			name:  "a sharer that changes its selector keeps its address and is told why",
			pools: []Pool{autoPool("a", "10.0.0.0/30")},
			steps: []step{
				assign(local("s1", 80, app("a")), "10.0.0.0"),
				assign(local("s2", 443, app("a")), "10.0.0.0"),
				refuse(local("s2", 443, app("b")), ReasonSharingLocalSelector, "10.0.0.0"),
				// The one that did not change is fine.
				assign(local("s1", 80, app("a")), "10.0.0.0"),
			},
		},
		{
			name:  "restore keeps Local sharers with different selectors (no move on restart)",
			pools: []Pool{autoPool("a", "10.0.0.0/30")},
			steps: []step{
				call(func(t *testing.T, a *Allocator) {
					if err := a.Restore(local("s1", 80, app("a")), addrs("10.0.0.0")); err != nil {
						t.Fatal(err)
					}
					if err := a.Restore(local("s2", 443, app("b")), addrs("10.0.0.0")); err != nil {
						t.Fatalf("Restore of a Local sharer with another selector: %v; want it kept", err)
					}
				}),
				refuse(local("s2", 443, app("b")), ReasonSharingLocalSelector, "10.0.0.0"),
			},
		},
	})
}
