package announced

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"go4.org/netipx"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/speaker/plan"
)

func pool(name, prefix string) plan.Pool {
	var b netipx.IPSetBuilder
	b.AddPrefix(netip.MustParsePrefix(prefix))
	set, _ := b.IPSet()
	return plan.Pool{Name: name, Addresses: set}
}

func nodes(names ...string) []plan.Node {
	var out []plan.Node
	for _, n := range names {
		out = append(out, plan.Node{Name: n, Ready: true, Labels: map[string]string{"name": n}})
	}
	return out
}

func only(names ...string) plan.Selector {
	return func(l map[string]string) bool {
		for _, n := range names {
			if l["name"] == n {
				return true
			}
		}
		return false
	}
}

func svc(key, ip, pool string) plan.Service {
	return plan.Service{Key: key, IPs: []netip.Addr{netip.MustParseAddr(ip)}, AllocatedFrom: pool}
}

// input is a three-node cluster with pool lan announced in layer 2 on every
// node, and pool wan announced by nothing, seen from n1, which is alone alive
// unless a case says otherwise (so it reports every Service nobody owns).
func input(svcs ...plan.Service) Input {
	in := Input{Self: "n1", Alive: []string{"n1"}, Services: svcs, Nodes: nodes("n1", "n2", "n3"),
		Pools:  []plan.Pool{pool("lan", "10.0.0.0/24"), pool("wan", "10.9.0.0/24"), pool("bgp", "10.7.0.0/24")},
		L2Anns: []plan.Announcement{{Name: "l2", Pools: []string{"lan"}}},
		Owner:  map[string]string{},
		Local:  Local{Interfaces: map[netip.Addr]string{}, Conflicts: map[netip.Addr]string{}, Refused: map[string]string{}, Unsettled: map[string]bool{}},
	}
	return in
}

func (in Input) planned() Input {
	in.L2 = plan.Compute(in.Services, in.Nodes, in.Pools, in.L2Anns)
	return in
}

func TestDecide(t *testing.T) {
	web := svc("ns/web", "10.0.0.5", "lan")
	local := web
	local.Key, local.LocalTraffic = "ns/local", true
	cases := []struct {
		name   string
		in     func() Input
		key    string
		absent bool
		want   Verdict
		// contains, when set, is checked instead of the exact message.
		contains []string
	}{
		{name: "announced here in layer 2", key: "ns/web", in: func() Input {
			in := input(web).planned()
			in.Owner["10.0.0.5"] = "n1"
			in.Local.Interfaces[netip.MustParseAddr("10.0.0.5")] = "eth0"
			return in
		}, want: Verdict{Announced: true, Reason: heraldv1.AnnouncedReasonAnnounced, Message: "node n1 announces 10.0.0.5 on eth0 (layer 2)"}},
		{name: "owned by another node: it reports", key: "ns/web", absent: true, in: func() Input {
			in := input(web).planned()
			in.Alive = []string{"n1", "n2"}
			in.Owner["10.0.0.5"] = "n2"
			return in
		}},
		{name: "owned here but not settled: left as it is", key: "ns/web", absent: true, in: func() Input {
			in := input(web).planned()
			in.Owner["10.0.0.5"] = "n1"
			in.Local.Unsettled["10.0.0.5"] = true
			return in
		}},
		{name: "another host answers", key: "ns/web", in: func() Input {
			in := input(web).planned()
			in.Owner["10.0.0.5"] = "n1"
			in.Local.Conflicts[netip.MustParseAddr("10.0.0.5")] = "52:54:00:aa:bb:cc"
			return in
		}, want: Verdict{Reason: heraldv1.AnnouncedReasonAddressConflict, Message: "node n1 was elected but does not announce: 10.0.0.5 is already answered by 52:54:00:aa:bb:cc, which is not a herald speaker (layer 2)"}},
		{name: "no announcement covers the pool", key: "ns/wan", in: func() Input {
			return input(svc("ns/wan", "10.9.0.1", "")).planned()
		}, want: Verdict{Reason: heraldv1.AnnouncedReasonNotCovered, Message: "no L2Announcement or BGPAnnouncement covers IPPool wan and selects this Service: nothing announces 10.9.0.1"}},
		{name: "Local without endpoints", key: "ns/local", in: func() Input { return input(local).planned() },
			want: Verdict{Reason: heraldv1.AnnouncedReasonNoReadyEndpoint, Message: "layer 2: externalTrafficPolicy is Local and no node has a ready endpoint of this Service: it is announced from the nodes that get one"}},
		{name: "Local with endpoints only on excluded nodes", key: "ns/local", in: func() Input {
			l := local
			l.EndpointNodes = map[string]bool{"n3": true}
			in := input(l)
			in.L2Anns[0].NodeSelector = only("n1", "n2")
			return in.planned()
		}, want: Verdict{Reason: heraldv1.AnnouncedReasonNoEligibleNode, Message: "layer 2: the nodes with ready endpoints (n3) may not announce it: n1, n2: no ready endpoint of this Service (externalTrafficPolicy Local); n3: not selected by the nodeSelector of L2Announcement l2"}},
		{name: "no eligible node, each for its reason", key: "ns/web", in: func() Input {
			in := input(web)
			in.L2Anns[0].NodeSelector = only("n2", "n3")
			in.Nodes[1].Ready = false
			in.Nodes[2].Labels[plan.ExcludeLabel] = ""
			return in.planned()
		}, want: Verdict{Reason: heraldv1.AnnouncedReasonNoEligibleNode, Message: "layer 2: no node may announce it: n1: not selected by the nodeSelector of L2Announcement l2; n2: not Ready; n3: labelled node.kubernetes.io/exclude-from-external-load-balancers"}},
		{name: "eligible nodes have no live speaker", key: "ns/web", in: func() Input {
			in := input(web)
			in.L2Anns[0].NodeSelector = only("n2", "n3")
			return in.planned()
		}, want: Verdict{Reason: heraldv1.AnnouncedReasonNoSpeaker, Message: "layer 2: no speaker is alive on the eligible nodes n2, n3"}},
		{name: "every live eligible node refuses", key: "ns/web", in: func() Input {
			in := input(web).planned()
			in.Refuses = map[string][]string{"10.0.0.5": {"n1"}}
			in.Local.Refused["10.0.0.5"] = "no interface has a subnet holding 10.0.0.5"
			return in
		}, want: Verdict{Reason: heraldv1.AnnouncedReasonInterfaceUnavailable, Message: "layer 2: every eligible node with a live speaker refuses 10.0.0.5: n1 (no interface has a subnet holding 10.0.0.5) cannot announce it (see their CannotAnnounce Events)"}},
		{name: "node address", key: "ns/node", in: func() Input {
			in := input(svc("ns/node", "10.0.0.11", "lan"))
			in.Nodes[0].Addresses = []netip.Addr{netip.MustParseAddr("10.0.0.11")}
			return in.planned()
		}, want: Verdict{Reason: heraldv1.AnnouncedReasonNodeAddress, Message: "10.0.0.11 is a node's own address; no speaker announces it: give the Service another address"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := Decide(c.in())[c.key]
			if c.absent {
				if ok {
					t.Fatalf("Decide reported %s: %+v; want it left to another node", c.key, got)
				}
				return
			}
			if !ok {
				t.Fatalf("Decide did not report %s", c.key)
			}
			if got != c.want {
				t.Errorf("verdict\n got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func bgpInput(s plan.Service) Input {
	in := input(s)
	in.Alive = []string{"n1", "n2", "n3"}
	in.BGP = BGP{
		Peers: []plan.BGPPeer{{Name: "r1"}},
		Anns:  []plan.BGPAnnouncement{{Name: "b", Pools: []string{"bgp"}}},
		Sessions: map[string]map[string]Session{
			"n1": {"r1": {Established: true, State: "Established"}},
			"n2": {"r1": {Established: true, State: "Established"}},
			"n3": {"r1": {State: "Active", LastError: "connect: connection refused"}},
		},
	}
	return in.planned()
}

func TestDecideBGP(t *testing.T) {
	s := svc("ns/bgp", "10.7.0.1", "bgp")
	// Whoever the hash picks reports it.
	self := Reporter(s.Key, "", []string{"n1", "n2", "n3"})
	in := bgpInput(s)
	in.Self = self
	got := Decide(in)[s.Key]
	want := Verdict{Announced: true, Reason: heraldv1.AnnouncedReasonAnnounced,
		Message: "nodes n1 (to r1), n2 (to r1) announce 10.7.0.1 over BGP; sessions down: n3 to r1: Active (connect: connection refused)"}
	if got != want {
		t.Errorf("verdict\n got %+v\nwant %+v", got, want)
	}

	for _, n := range []string{"n1", "n2"} {
		in.BGP.Sessions[n]["r1"] = Session{State: "Idle"}
	}
	got = Decide(in)[s.Key]
	if got.Announced || got.Reason != heraldv1.AnnouncedReasonBGPSessionsDown || !strings.Contains(got.Message, "n3 to r1: Active (connect: connection refused)") {
		t.Errorf("with every session down: %+v", got)
	}

	// A node whose speaker is gone announces nothing: the others do.
	in = bgpInput(s)
	in.Alive = []string{"n3"}
	in.Self = "n3"
	got = Decide(in)[s.Key]
	if got.Reason != heraldv1.AnnouncedReasonBGPSessionsDown {
		t.Errorf("with n1, n2 gone and n3's session down: %+v", got)
	}
	in.BGP.Sessions["n3"]["r1"] = Session{Established: true}
	got = Decide(in)[s.Key]
	if !got.Announced || got.Message != "node n3 (to r1) announces 10.7.0.1 over BGP" {
		t.Errorf("with only n3 alive: %+v", got)
	}
}

// TestReporterOneWriter: every live speaker agrees on one reporter, and a
// speaker leaving moves only the Services it reported.
func TestReporterOneWriter(t *testing.T) {
	alive := []string{"a", "b", "c", "d"}
	moved, count := 0, map[string]int{}
	for i := range 1000 {
		key := "ns/svc-" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('0'+i%10)) + string(rune(i))
		r := Reporter(key, "", alive)
		count[r]++
		r2 := Reporter(key, "", []string{"a", "b", "d"})
		if r != "c" && r2 != r {
			moved++
		}
		if Reporter(key, "owner", alive) != "owner" {
			t.Fatal("the layer 2 owner does not report")
		}
	}
	if moved != 0 {
		t.Errorf("%d Services moved reporter though theirs stayed", moved)
	}
	for n, c := range count {
		if c < 150 {
			t.Errorf("%s reports %d of 1000 Services: the hash does not spread", n, c)
		}
	}
}

// BenchmarkDecide5000: the verdicts one speaker of three computes at every sync
// with 5,000 Services in layer 2 and 5,000 over BGP.
func BenchmarkDecide5000(b *testing.B) {
	var svcs []plan.Service
	for i := range 5000 {
		svcs = append(svcs, svc(fmt.Sprintf("ns/l2-%d", i), netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String(), "lan"))
		svcs = append(svcs, svc(fmt.Sprintf("ns/bgp-%d", i), netip.AddrFrom4([4]byte{10, 7, byte(i >> 8), byte(i)}).String(), "bgp"))
	}
	in := bgpInput(svcs[0])
	in.Services = svcs
	in.Pools = []plan.Pool{pool("lan", "10.0.0.0/16"), pool("bgp", "10.7.0.0/16")}
	in = in.planned()
	nodes := []string{"n1", "n2", "n3"}
	for i, g := range in.L2.Groups {
		in.Owner[g.Key] = nodes[i%3]
		if nodes[i%3] == "n1" {
			for _, ip := range g.IPs {
				in.Local.Interfaces[ip] = "eth0"
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if len(Decide(in)) == 0 {
			b.Fatal("nothing decided")
		}
	}
}
