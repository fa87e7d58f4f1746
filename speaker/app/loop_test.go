package app

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/speaker/plan"
)

// onConflict: only a herald speaker that memberlist does not show alive, on a
// key this node claims, is split brain; then yieldDecision says who stops.
func TestOnConflict(t *testing.T) {
	const n3MAC = "02:00:00:00:00:03"
	for _, tt := range []struct {
		name    string
		mac     string
		setup   func(f *fixture)
		want    bool // recompute (this node yielded)
		events  int
		keepMsg bool // the Event says n1 keeps it
	}{
		{name: "foreign host", mac: "02:00:00:00:00:99"},
		{name: "this node's own MAC", mac: "02:00:00:00:00:01", setup: func(f *fixture) { f.m.macs["02:00:00:00:00:01"] = "n1" }},
		{name: "alive member: a hand-over", mac: n3MAC, setup: func(f *fixture) { f.m.setAlive("n1", "n2", "n3") }},
		{name: "address not in the plan", mac: n3MAC, setup: func(f *fixture) { delete(f.s.keyOf, addr1) }},
		{name: "already yielded", mac: n3MAC, setup: func(f *fixture) { f.s.yielded["10.0.0.1"] = yielded{to: "n3"} }},
		{name: "not claimed by this node", mac: n3MAC, setup: func(f *fixture) { delete(f.s.claims.at, "10.0.0.1") }},
		{name: "dead member that held it: yield", mac: n3MAC, want: true, events: 1,
			setup: func(f *fixture) { f.m.lastClaims["n3"] = map[string]int{"10.0.0.1": 3} }},
		{name: "dead member that did not hold it, this node did: keep", mac: n3MAC, events: 1, keepMsg: true,
			setup: func(f *fixture) { f.m.leftAt["n3"] = f.now().Add(time.Minute) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := joined(t)
			f.s.report(t.Context(), map[string]plan.Group{"10.0.0.1": {Key: "10.0.0.1", IPs: []netip.Addr{addr1}, Services: []string{"ns/web"}}},
				map[netip.Addr]appliedAddr{addr1: {iface: "eth0"}})
			f.events()
			f.m.macs[n3MAC] = "n3"
			if tt.setup != nil {
				tt.setup(f)
			}
			before := len(f.s.yielded)
			got := f.s.onConflict(t.Context(), conflictFrom(addr1, tt.mac))
			if got != tt.want {
				t.Errorf("onConflict = %v; want %v", got, tt.want)
			}
			if y, ok := f.s.yielded["10.0.0.1"]; tt.want && (!ok || y.to != "n3" || y.mac != n3MAC || !y.check.Equal(f.now().Add(yieldCheck))) {
				t.Errorf("yielded = %+v; want 10.0.0.1 to n3, checked in yieldCheck", f.s.yielded)
			}
			if !tt.want && len(f.s.yielded) != before {
				t.Errorf("yielded = %+v; want unchanged", f.s.yielded)
			}
			evs := withEvent(f.events(), "SplitBrain")
			if len(evs) != tt.events {
				t.Fatalf("SplitBrain Events = %q; want %d", evs, tt.events)
			}
			if tt.events > 0 && strings.Contains(evs[0], "n1 keeps it") != tt.keepMsg {
				t.Errorf("Event %q; want keeps=%v", evs[0], tt.keepMsg)
			}
			// The keeper announces again: the other side hears only
			// broadcasts, and must hear it to yield.
			if reann := len(f.l2.reann) > 0; reann != tt.keepMsg {
				t.Errorf("announced again: %v; want %v", f.l2.reann, tt.keepMsg)
			}
		})
	}
}

func group(key string, svcs ...string) plan.Group {
	a := netip.MustParseAddr(key)
	return plan.Group{Key: key, IPs: []netip.Addr{a}, Services: svcs, Nodes: []string{"n1"}}
}

// report sends Announcing once per change, IPConflict when a foreign host
// answers, and each Warning once per change.
func TestReport(t *testing.T) {
	f := newFixture(t, baseObjects()...)
	ctx := t.Context()
	web := group("10.0.0.1", "ns/web")
	on := map[netip.Addr]appliedAddr{addr1: {iface: "eth0"}}
	f.s.report(ctx, map[string]plan.Group{"10.0.0.1": web}, on)
	f.s.report(ctx, map[string]plan.Group{"10.0.0.1": web}, on)
	evs := f.events()
	if a := withEvent(evs, "Announcing"); len(a) != 1 || !strings.Contains(a[0], "Node n1 announces 10.0.0.1 on eth0") {
		t.Errorf("Announcing Events = %q; want one", a)
	}
	// Another interface is a change.
	f.s.report(ctx, map[string]plan.Group{"10.0.0.1": web}, map[netip.Addr]appliedAddr{addr1: {iface: "eth1"}})
	if n := count(f.events(), "Announcing"); n != 1 {
		t.Errorf("%d Announcing Events on an interface change; want 1", n)
	}
	if got := f.s.servicesOf("10.0.0.1"); !slices.Equal(got, []string{"ns/web"}) {
		t.Errorf("servicesOf = %v", got)
	}
	// Dropped, then in conflict: IPConflict, no Announcing.
	f.s.report(ctx, nil, nil)
	f.s.report(ctx, map[string]plan.Group{"10.0.0.1": web}, map[netip.Addr]appliedAddr{addr1: {conflict: "02:00:00:00:00:99"}})
	f.s.report(ctx, map[string]plan.Group{"10.0.0.1": web}, map[netip.Addr]appliedAddr{addr1: {conflict: "02:00:00:00:00:99"}})
	evs = f.events()
	if c := withEvent(evs, "IPConflict"); len(c) != 1 || count(evs, "Announcing") != 0 || !strings.Contains(c[0], "02:00:00:00:00:99") {
		t.Errorf("conflict: Events %q; want one IPConflict naming the MAC", evs)
	}
	// A Service that does not exist (any more) gets no Event.
	f.s.report(ctx, map[string]plan.Group{"10.0.0.2": group("10.0.0.2", "ns/gone")}, map[netip.Addr]appliedAddr{addr2: {iface: "eth0"}})
	if evs := f.events(); len(evs) != 0 {
		t.Errorf("Events for a missing Service: %q", evs)
	}
}

// A Service that comes to share an announced address gets its own Announcing
// Event; the Service already there gets none.
func TestReportSharerJoins(t *testing.T) {
	f := newFixture(t, baseObjects()...)
	ctx := t.Context()
	on := map[netip.Addr]appliedAddr{addr1: {iface: "eth0"}}
	f.s.report(ctx, map[string]plan.Group{"10.0.0.1": group("10.0.0.1", "ns/web")}, on)
	f.events()
	f.s.report(ctx, map[string]plan.Group{"10.0.0.1": group("10.0.0.1", "ns/db", "ns/web")}, on)
	evs := f.events()
	if a := withEvent(evs, "Announcing"); len(a) != 1 {
		t.Errorf("Announcing Events when db joined web's address: %q; want one, for db", evs)
	}
	f.s.report(ctx, map[string]plan.Group{"10.0.0.1": group("10.0.0.1", "ns/db", "ns/web")}, on)
	if n := count(f.events(), "Announcing"); n != 0 {
		t.Errorf("%d Announcing Events with nothing new", n)
	}
}

func TestReportWarnings(t *testing.T) {
	f := newFixture(t, baseObjects()...)
	ctx := t.Context()
	g := group("10.0.0.1", "ns/web")
	g.OutsidePools = []netip.Addr{addr1}
	on := map[netip.Addr]appliedAddr{addr1: {iface: "eth0"}}
	f.s.report(ctx, map[string]plan.Group{"10.0.0.1": g}, on)
	f.s.report(ctx, map[string]plan.Group{"10.0.0.1": g}, on)
	evs := f.events()
	if n := count(evs, "OutsidePools"); n != 1 {
		t.Errorf("%d OutsidePools Events over two reports; want 1: %q", n, evs)
	}
	g.UnreadablePools = []string{"lan"}
	f.s.report(ctx, map[string]plan.Group{"10.0.0.1": g}, on)
	f.s.report(ctx, map[string]plan.Group{"10.0.0.1": g}, on)
	evs = f.events()
	if count(evs, "PoolUnreadable") != 1 || count(evs, "OutsidePools") != 1 {
		t.Errorf("after the pool became unreadable: %q; want one PoolUnreadable and OutsidePools again", evs)
	}
	// Unreachable goes to the unserved Services only.
	u := group("10.0.0.1", "ns/db", "ns/web")
	u.Unserved = map[string][]string{"n1": {"ns/db"}, "n2": {"ns/web"}}
	f.s.report(ctx, map[string]plan.Group{"10.0.0.1": u}, on)
	f.s.report(ctx, map[string]plan.Group{"10.0.0.1": u}, on)
	un := withEvent(f.events(), "Unreachable")
	if len(un) != 1 || !strings.Contains(un[0], "no ready endpoint") {
		t.Errorf("Unreachable Events = %q; want one, for ns/db", un)
	}
	if w := groupWarning(u, "n1"); w != "unserved:ns/db" {
		t.Errorf("groupWarning = %q", w)
	}
}

// Only the node holding an address warns that a Service uses it, once.
func TestReportNodeAddresses(t *testing.T) {
	f := newFixture(t, baseObjects()...)
	ctx := t.Context()
	cs := []plan.NodeAddressConflict{
		{Service: "ns/web", Addr: netip.MustParseAddr("192.168.0.1"), Node: "n1"},
		{Service: "ns/db", Addr: netip.MustParseAddr("192.168.0.2"), Node: "n2"},
	}
	f.s.reportNodeAddresses(ctx, cs)
	f.s.reportNodeAddresses(ctx, cs)
	evs := withEvent(f.events(), "NodeAddress")
	if len(evs) != 1 || !strings.Contains(evs[0], "192.168.0.1 is node n1's own address") {
		t.Errorf("NodeAddress Events = %q; want one, for n1's address", evs)
	}
	f.s.reportNodeAddresses(ctx, nil)
	f.s.reportNodeAddresses(ctx, cs)
	if n := count(f.events(), "NodeAddress"); n != 1 {
		t.Errorf("%d Events after the conflict came back; want 1", n)
	}
	if got := f.s.serviceRef(ctx, "no-slash"); got != nil {
		t.Errorf("serviceRef(no-slash) = %v", got)
	}
}

// handOver leaves first, withdraws an address as soon as a live speaker
// announces it (a fellow member's MAC on the conflicts channel), keeps the
// others until the hand-over time is up, then closes.
func TestHandOver(t *testing.T) {
	f := joined(t)
	close(f.s.bgp.workerDone)
	f.m.macs["02:00:00:00:00:02"] = "n2"
	f.m.macs["02:00:00:00:00:01"] = "n1"
	f.s.conflicts <- conflictFrom(addr1, "02:00:00:00:00:02")
	f.s.conflicts <- conflictFrom(addr2, "02:00:00:00:00:99") // a foreign host
	f.s.conflicts <- conflictFrom(addr2, "02:00:00:00:00:01") // this node
	start := time.Now()
	f.s.handOver()
	if took := time.Since(start); took < f.s.cfg.HandOver {
		t.Errorf("handOver took %v; want the hand-over time %v", took, f.s.cfg.HandOver)
	}
	if !slices.Equal(f.l2.withdrawn, []netip.Addr{addr1}) {
		t.Errorf("withdrawn %v; want only 10.0.0.1", f.l2.withdrawn)
	}
	if !f.l2.closed || !slices.Equal(f.m.calls, []string{"Leave", "Shutdown"}) {
		t.Errorf("closed=%v, memberlist calls %v; want closed, Leave then Shutdown", f.l2.closed, f.m.calls)
	}
}

func notReadyNode(name, ip string) *corev1.Node {
	n := readyNode(name, ip, nil)
	n.Status.Conditions[0].Status = corev1.ConditionFalse
	return n
}

// joinOnce contacts the Ready nodes with an address that memberlist does not
// show alive, never this node.
func TestJoinOnce(t *testing.T) {
	noAddr := readyNode("n5", "", nil)
	noAddr.Status.Addresses = nil
	noCond := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n6"}, Status: corev1.NodeStatus{
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.0.6"}}}}
	f := newFixture(t, readyNode("n1", "192.168.0.1", nil), readyNode("n2", "192.168.0.2", nil),
		readyNode("n3", "192.168.0.3", nil), notReadyNode("n4", "192.168.0.4"), noAddr, noCond)
	f.m.setAlive("n1", "n3")
	f.s.joinOnce(t.Context())
	if want := []string{"192.168.0.2:7946"}; !slices.Equal(f.m.joins, want) {
		t.Errorf("joined %v; want %v", f.m.joins, want)
	}
	// A List error joins nothing.
	f.m.joins = nil
	f.s.client = failingClient{f.c}
	f.s.joinOnce(t.Context())
	if len(f.m.joins) != 0 {
		t.Errorf("joined %v with no Node list", f.m.joins)
	}
}

// joinLoop joins at once, again when poked, and stops with its context.
func TestJoinLoop(t *testing.T) {
	f := newFixture(t, readyNode("n1", "192.168.0.1", nil), readyNode("n2", "192.168.0.2", nil))
	f.m.joinErr = context.DeadlineExceeded // logged, not fatal
	ctx, cancel := context.WithCancel(t.Context())
	poke := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.s.joinLoop(ctx, poke)
	}()
	poke <- struct{}{} // taken after the first round
	poke <- struct{}{} // taken after the second: the third has started
	cancel()
	<-done
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if len(f.m.joins) < 2 {
		t.Errorf("joins %v; want at least one a round", f.m.joins)
	}
}

// waitFor polls cond for up to 2 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// The loop recomputes on every kind of change, drops its claims and goes back
// behind the gate when the node's link comes back, acts on split brain, and
// hands over when its context ends.
func TestRun(t *testing.T) {
	f := newFixture(t, baseObjects()...)
	close(f.s.bgp.workerDone)
	f.m.setAlive("n1", "n2")
	f.m.states["n2"] = peerState(false, nil)
	var linkMu = make(chan bool, 1)
	linkMu <- true
	f.s.linkState = func(netip.Addr) bool { v := <-linkMu; linkMu <- v; return v }
	setLink := func(up bool) { <-linkMu; linkMu <- up }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.s.run(ctx)
	}()
	sets := func(n int) func() bool { return func() bool { return f.l2.setCount() >= n } }

	f.s.poke()
	waitFor(t, "a sync on a poke", sets(1))
	f.m.changed <- struct{}{}
	waitFor(t, "a sync on a membership change", sets(2))

	// A conflict from a foreign host is the probe's business; split brain
	// is tested in TestOnConflict.
	f.s.conflicts <- conflictFrom(addr1, "02:00:00:00:00:99")
	f.s.poke()
	waitFor(t, "a sync on a poke after a conflict", sets(3))

	// The link goes down, then comes back: claims dropped, not joined.
	setLink(false)
	f.l2.changed <- struct{}{}
	waitFor(t, "a sync on a link change", sets(4))
	f.m.setAlive("n1")
	setLink(true)
	f.l2.changed <- struct{}{}
	waitFor(t, "the gate after the link came back", func() bool {
		f.s.ready.mu.Lock()
		defer f.s.ready.mu.Unlock()
		return !f.s.ready.r.Joined && !f.s.ready.r.Applied
	})
	// Read after the loop's readiness update (under its mutex), before anything
	// else wakes the loop.
	if len(f.s.claims.weight) != 0 {
		t.Errorf("claims %v after the link came back; want none", f.s.claims.weight)
	}

	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
	if !f.l2.closed || !f.s.ready.r.Stopping {
		t.Errorf("closed=%v stopping=%v; want handed over", f.l2.closed, f.s.ready.r.Stopping)
	}
}

// A speaker held at the gate on the real clock (a recheck timer at the end of
// the hold-down) announces as soon as a poke finds the other's State.
func TestRunGateThenPoke(t *testing.T) {
	f := newFixture(t, baseObjects()...)
	close(f.s.bgp.workerDone)
	f.m.setAlive("n1", "n2") // n2's State unknown: not joined, held down
	f.s.now = time.Now
	f.s.started = time.Now()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.s.run(ctx)
	}()
	f.m.mu.Lock()
	f.m.states["n2"] = peerState(false, nil)
	f.m.mu.Unlock()
	f.s.poke()
	waitFor(t, "announcing after n2's State is known", func() bool { return f.l2.setCount() >= 1 })
	cancel()
	<-done
}
