package app

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/speaker/flows"
)

func wantsOf(w []want) []string {
	var out []string
	for _, x := range w {
		out = append(out, x.addr.String())
	}
	slices.Sort(out)
	return out
}

// A starting speaker that hears no other announces nothing until the hold-down
// has passed, then announces alone, settled.
func TestSyncStartGateHoldDown(t *testing.T) {
	f := newFixture(t, baseObjects()...)
	f.advance(time.Second)
	if next := f.sync(); !next.Equal(f.s.started.Add(holdDown)) {
		t.Errorf("held down: next = %v; want the end of the hold-down %v", next, f.s.started.Add(holdDown))
	}
	if f.l2.setCount() != 0 || len(f.m.published) != 0 {
		t.Fatalf("announced (%d sets) or published (%d States) while held down", f.l2.setCount(), len(f.m.published))
	}
	if f.s.ready.r.Joined || f.s.ready.r.Alone || f.s.ready.r.Applied {
		t.Errorf("readiness while held down = %+v", f.s.ready.r)
	}
	f.advance(holdDown)
	if next := f.sync(); !next.IsZero() {
		t.Errorf("after the hold-down: next = %v; want zero", next)
	}
	if got, want := f.l2.nowAnnounced(), []string{"10.0.0.1", "10.0.0.2"}; !slices.Equal(got, want) {
		t.Errorf("after the hold-down: announced %v; want %v", got, want)
	}
	if p := f.m.last(); !p.settled || !cmp.Equal(p.claims, map[string]int{"10.0.0.1": 1, "10.0.0.2": 1}) {
		t.Errorf("published %+v; want settled, claims of weight 1", p)
	}
	if !f.s.ready.r.Applied {
		t.Error("not Applied after announcing")
	}
}

// Hearing another speaker (with its State) lifts the gate at once; the speaker
// is not settled for a hold-down after that.
func TestSyncStartGateJoined(t *testing.T) {
	f := newFixture(t, baseObjects()...)
	f.m.setAlive("n1", "n2")
	f.m.states["n2"] = peerState(true, nil)
	f.advance(time.Second)
	next := f.sync()
	if got := f.l2.nowAnnounced(); len(got) != 2 {
		t.Fatalf("joined: announced %v; want both addresses", got)
	}
	p := f.m.last()
	if p.settled || !cmp.Equal(p.claims, map[string]int{"10.0.0.1": 2, "10.0.0.2": 2}) {
		t.Errorf("published %+v; want unsettled, claims of weight 2", p)
	}
	if want := f.now().Add(holdDown); !next.Equal(want) {
		t.Errorf("next = %v; want when it settles, %v", next, want)
	}
	if !f.s.joined || !f.s.ready.r.Joined {
		t.Error("not joined")
	}
	f.advance(holdDown)
	f.sync()
	if !f.m.last().settled {
		t.Error("not settled a hold-down after joining")
	}
}

// A node with no other Ready node in the cluster does not wait.
func TestSyncStartGateAlone(t *testing.T) {
	objs := slices.DeleteFunc(baseObjects(), func(o client.Object) bool { return o.GetName() == "n2" })
	f := newFixture(t, objs...)
	f.sync()
	if got := f.l2.nowAnnounced(); len(got) != 2 {
		t.Errorf("alone: announced %v; want both addresses", got)
	}
	if !f.s.ready.r.Alone {
		t.Error("readiness does not say Alone")
	}
}

// joined brings n1 past the start gate and the hold-down, with n2 alive.
func joined(t *testing.T) *fixture {
	f := newFixture(t, baseObjects()...)
	f.m.setAlive("n1", "n2")
	f.m.states["n2"] = peerState(false, nil)
	f.sync()
	f.advance(holdDown)
	f.sync()
	return f
}

// While a live member's State is unknown, nothing new is taken (claims may be
// missing), but what is held stays announced, and the loop looks again soon.
func TestSyncPendingStates(t *testing.T) {
	f := newFixture(t, baseObjects()...)
	f.m.setAlive("n1", "n2")
	f.m.states["n2"] = peerState(false, nil)
	// Only web at first.
	if err := f.c.Delete(t.Context(), lbService("db", "", "")); err != nil {
		t.Fatal(err)
	}
	f.sync()
	f.advance(holdDown)
	f.sync()
	if got := f.l2.nowAnnounced(); !slices.Equal(got, []string{"10.0.0.1"}) {
		t.Fatalf("before: announced %v", got)
	}
	// n3 appears, its State not merged yet; db is created.
	f.m.setAlive("n1", "n2", "n3")
	if err := f.c.Create(t.Context(), lbService("db", "10.0.0.2", "")); err != nil {
		t.Fatal(err)
	}
	next := f.sync()
	if got := f.l2.nowAnnounced(); !slices.Equal(got, []string{"10.0.0.1"}) {
		t.Errorf("pending: announced %v; want only the held 10.0.0.1", got)
	}
	if want := f.now().Add(100 * time.Millisecond); !next.Equal(want) {
		t.Errorf("pending: next = %v; want %v", next, want)
	}
	f.m.states["n3"] = peerState(false, nil)
	f.sync()
	if got := f.l2.nowAnnounced(); len(got) != 2 {
		t.Errorf("States known: announced %v; want both", got)
	}
}

// A pending State keeps a starting speaker behind the gate: joining needs
// every live member's State.
func TestSyncPendingDoesNotJoin(t *testing.T) {
	f := newFixture(t, baseObjects()...)
	f.m.setAlive("n1", "n2")
	f.sync()
	if f.s.joined || f.l2.setCount() != 0 {
		t.Errorf("joined=%v, %d sets; want held at the gate until n2's State is known", f.s.joined, f.l2.setCount())
	}
}

// Only what is answered is claimed.
func TestSyncClaimsOnlyAnswered(t *testing.T) {
	f := joined(t)
	f.l2.fail[addr2] = true
	f.sync()
	if p := f.m.last(); !cmp.Equal(p.claims, map[string]int{"10.0.0.1": 2}) {
		t.Errorf("claims = %v; want only the answered 10.0.0.1", p.claims)
	}
}

// A group this node cannot announce is refused (published, not announced),
// with one CannotAnnounce Event; it is taken when the reason goes.
func TestSyncRefuses(t *testing.T) {
	f := joined(t)
	f.events()
	f.l2.cannot[addr1] = "no interface named eth9"
	f.sync()
	f.sync()
	if got := f.l2.nowAnnounced(); !slices.Equal(got, []string{"10.0.0.2"}) {
		t.Errorf("announced %v; want 10.0.0.2 only", got)
	}
	p := f.m.last()
	if !slices.Equal(p.refuses, []string{"10.0.0.1"}) || !cmp.Equal(p.claims, map[string]int{"10.0.0.2": 2}) {
		t.Errorf("published %+v; want 10.0.0.1 refused and not claimed", p)
	}
	evs := withEvent(f.events(), "CannotAnnounce")
	if len(evs) != 1 || !strings.Contains(evs[0], "no interface named eth9") {
		t.Errorf("CannotAnnounce Events = %q; want one, with the reason", evs)
	}
	f.l2.cannot[addr1] = "the link is down"
	f.sync()
	if n := count(f.events(), "CannotAnnounce"); n != 1 {
		t.Errorf("%d CannotAnnounce Events on a new reason; want 1", n)
	}
	delete(f.l2.cannot, addr1)
	f.sync()
	if got := f.l2.nowAnnounced(); len(got) != 2 || len(f.m.last().refuses) != 0 || len(f.s.refused) != 0 {
		t.Errorf("reason gone: announced %v, refuses %v", got, f.m.last().refuses)
	}
}

// A yielded key is not announced while the node it was yielded to is unseen,
// and is given back to the election when memberlist sees that node again.
func TestSyncYieldedNotAnnounced(t *testing.T) {
	f := joined(t)
	f.s.yielded["10.0.0.1"] = yielded{to: "n3", check: f.now().Add(time.Hour)}
	next := f.sync()
	if got := f.l2.nowAnnounced(); !slices.Equal(got, []string{"10.0.0.2"}) {
		t.Errorf("yielded: announced %v; want 10.0.0.2 only", got)
	}
	if want := f.now().Add(time.Hour); !next.Equal(want) {
		t.Errorf("next = %v; want the yield's check %v", next, want)
	}
	f.m.setAlive("n1", "n2", "n3")
	f.m.states["n3"] = peerState(true, nil)
	f.sync()
	if _, still := f.s.yielded["10.0.0.1"]; still {
		t.Error("still yielded once n3 is seen again")
	}
	if got := f.l2.nowAnnounced(); len(got) != 2 {
		t.Errorf("after n3 is back: announced %v; want both (n3 is not eligible)", got)
	}
}

// Taking over from a member that failed, n1 first probes: if that member still
// answers on the wire, n1 yields to it (SplitBrain Event) and checks again
// every yieldCheck; when it no longer answers, n1 takes the address.
func TestSyncTakeoverProbe(t *testing.T) {
	f := joined(t)
	// Pretend n1 does not announce web yet: n3 held it and failed.
	f.s.claims.drop()
	f.l2.announced = map[netip.Addr]bool{}
	f.m.failed["10.0.0.1"] = []string{"n3"}
	f.m.macs["02:00:00:00:00:03"] = "n3"
	f.l2.answers[addr1] = "02:00:00:00:00:03"
	f.events()
	next := f.sync()
	if got := f.l2.nowAnnounced(); !slices.Equal(got, []string{"10.0.0.2"}) {
		t.Fatalf("n3 still answers: announced %v; want 10.0.0.2 only", got)
	}
	if y, ok := f.s.yielded["10.0.0.1"]; !ok || y.to != "n3" {
		t.Fatalf("yielded = %+v; want 10.0.0.1 to n3", f.s.yielded)
	}
	// The takeover probe waits briefly: it delays every real failover.
	if len(f.l2.waits) == 0 || slices.ContainsFunc(f.l2.waits, func(w time.Duration) bool { return w != takeoverProbeWait }) {
		t.Errorf("probe waits %v; want takeoverProbeWait each", f.l2.waits)
	}
	if want := f.now().Add(yieldCheck); !next.Equal(want) {
		t.Errorf("next = %v; want the check %v", next, want)
	}
	evs := withEvent(f.events(), "SplitBrain")
	if len(evs) != 1 || !strings.Contains(evs[0], "n3 still answers for 10.0.0.1") {
		t.Errorf("SplitBrain Events = %q", evs)
	}
	// Still answering at the check: stays yielded.
	f.advance(yieldCheck)
	f.sync()
	if _, ok := f.s.yielded["10.0.0.1"]; !ok {
		t.Fatal("given back while n3 still answers")
	}
	// Silent: taken back at the next check.
	delete(f.l2.answers, addr1)
	f.advance(yieldCheck)
	f.sync()
	if got := f.l2.nowAnnounced(); len(got) != 2 {
		t.Errorf("n3 silent: announced %v; want both", got)
	}
}

// An answer from a host that is not the failed holder is no reason to yield.
func TestSyncTakeoverProbeOtherAnswerer(t *testing.T) {
	f := joined(t)
	f.s.claims.drop()
	f.m.failed["10.0.0.1"] = []string{"n3"}
	f.l2.answers[addr1] = "02:00:00:00:00:99"
	f.sync()
	if len(f.s.yielded) != 0 {
		t.Errorf("yielded %+v to a host that is not the failed holder", f.s.yielded)
	}
	if got := f.l2.nowAnnounced(); len(got) != 2 {
		t.Errorf("announced %v; want both", got)
	}
}

// A key n1 already holds is not probed.
func TestSyncTakeoverHeldNotProbed(t *testing.T) {
	f := joined(t)
	f.m.failed["10.0.0.1"] = []string{"n3"}
	f.sync()
	if len(f.l2.probed) != 0 {
		t.Errorf("probed %v for a key n1 holds", f.l2.probed)
	}
}

// A yielded key whose check cannot probe stays yielded.
func TestCheckYieldedCannotProbe(t *testing.T) {
	f := joined(t)
	f.s.yielded["10.0.0.1"] = yielded{to: "n3", check: f.now()}
	f.l2.noProbe = true
	f.s.checkYielded(t.Context())
	y, ok := f.s.yielded["10.0.0.1"]
	if !ok || !y.check.Equal(f.now().Add(yieldCheck)) {
		t.Errorf("yielded = %+v; want kept, checked again in yieldCheck", f.s.yielded)
	}
	// A key no longer in the plan is dropped.
	f.s.yielded["10.9.9.9"] = yielded{to: "n3", check: f.now()}
	f.s.checkYielded(t.Context())
	if _, ok := f.s.yielded["10.9.9.9"]; ok {
		t.Error("a key gone from the plan stays yielded")
	}
	// Not due: not probed.
	f.l2.probed = nil
	f.s.yielded["10.0.0.1"] = yielded{to: "n3", check: f.now().Add(time.Second)}
	f.s.checkYielded(t.Context())
	if len(f.l2.probed) != 0 {
		t.Errorf("probed %v before the check was due", f.l2.probed)
	}
}

// A cluster that cannot be read keeps the current announcements.
func TestSyncSnapshotError(t *testing.T) {
	f := joined(t)
	before := f.l2.setCount()
	f.s.client = failingClient{f.c}
	// Nothing applied, and a retry in a second rather than at the next event.
	if next := f.sync(); !next.Equal(f.now().Add(time.Second)) || f.l2.setCount() != before {
		t.Errorf("next=%v, sets %d→%d; want nothing applied and a retry in 1 s", next, before, f.l2.setCount())
	}
}

// failingClient cannot list.
type failingClient struct{ client.Client }

func (failingClient) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("the API server is gone")
}

// A group this node was elected for but failed to answer for (the raw socket
// failed, no foreign host in the way) is refused for applyRetry, so another
// node takes it, then tried again.
func TestSyncApplyFailureRefuses(t *testing.T) {
	f := joined(t)
	f.events()
	f.l2.fail[addr1] = true
	f.sync()
	if got := f.m.last().refuses; len(got) != 0 {
		t.Errorf("refuses after the first failure = %v; want none yet", got)
	}
	f.sync()
	if got := f.m.last().refuses; !slices.Equal(got, []string{"10.0.0.1"}) {
		t.Errorf("refuses after a failed answer = %v; want [10.0.0.1]", got)
	}
	if n := count(f.events(), "CannotAnnounce"); n != 1 {
		t.Errorf("%d CannotAnnounce Events; want 1", n)
	}
	delete(f.l2.fail, addr1)
	f.advance(applyRetry + time.Second)
	f.sync()
	if got := f.m.last().refuses; len(got) != 0 {
		t.Errorf("refuses after applyRetry = %v; want none", got)
	}
	if got := f.l2.nowAnnounced(); !slices.Contains(got, "10.0.0.1") {
		t.Errorf("announced %v after applyRetry; want 10.0.0.1 again", got)
	}
	// A foreign host in the way is the probe's business, not a refusal.
	f.l2.conflict[addr2] = "02:00:00:00:00:99"
	f.sync()
	f.sync()
	if got := f.m.last().refuses; len(got) != 0 {
		t.Errorf("refuses with a foreign host answering = %v; want none", got)
	}
}

// The node-side IPVS check warns once per finding, on the Node.
func TestReportIPVS(t *testing.T) {
	f := joined(t)
	f.events()
	f.l2.ipvs = "kube-ipvs0 exists and net.ipv4.conf.all.arp_ignore=0"
	f.sync()
	f.sync()
	evs := withEvent(f.events(), "KubeProxyStrictARP")
	if len(evs) != 1 || !strings.Contains(evs[0], "arp_ignore=0") {
		t.Errorf("KubeProxyStrictARP Events = %q; want one with the finding", evs)
	}
	f.l2.ipvs = ""
	f.sync()
	f.l2.ipvs = "kube-ipvs0 exists and net.ipv4.conf.all.arp_ignore=0"
	f.sync()
	if n := count(f.events(), "KubeProxyStrictARP"); n != 1 {
		t.Errorf("%d Events after it came back; want 1", n)
	}
}

// A group this node stops announcing gets a NotAnnouncing Event.
func TestReportNotAnnouncing(t *testing.T) {
	f := joined(t)
	f.sync()
	f.events()
	if err := f.c.Delete(t.Context(), &heraldv1.L2Announcement{ObjectMeta: metav1.ObjectMeta{Name: "l2"}}); err != nil {
		t.Fatal(err)
	}
	f.sync()
	if n := count(f.events(), "NotAnnouncing"); n != 2 {
		t.Errorf("%d NotAnnouncing Events; want one per Service (2)", n)
	}
	f.sync()
	if n := count(f.events(), "NotAnnouncing"); n != 0 {
		t.Errorf("%d NotAnnouncing Events on a pass with no change; want 0", n)
	}
}

// Every takeover is probed, not only those from a known holder: this node's
// copy of a failed member's claims can be a moment old (a returning node's
// stale gossip made a live member look dead for milliseconds in the lab, and
// another node took an address it had just claimed). A member that left, which
// answers until its new owners announce, is no reason to yield.
func TestSyncTakeoverProbeUnknownHolder(t *testing.T) {
	for _, tt := range []struct {
		name   string
		failed bool
		yield  bool
	}{{"failed member answers: yield", true, true}, {"member that left answers: take over", false, false}} {
		t.Run(tt.name, func(t *testing.T) {
			f := joined(t)
			f.s.claims.drop()
			f.l2.announced = map[netip.Addr]bool{}
			if tt.failed {
				f.m.failed["some other key"] = []string{"n3"} // n3 failed; its claims on 10.0.0.1 unknown here
			}
			f.m.macs["02:00:00:00:00:03"] = "n3"
			f.l2.answers[addr1] = "02:00:00:00:00:03"
			f.sync()
			if _, ok := f.s.yielded["10.0.0.1"]; ok != tt.yield {
				t.Errorf("yielded %+v; want 10.0.0.1 yielded %v", f.s.yielded, tt.yield)
			}
			if got := f.l2.nowAnnounced(); slices.Contains(got, "10.0.0.1") == tt.yield {
				t.Errorf("announced %v", got)
			}
		})
	}
}

// A takeover answered by a live member (it came back while the probe ran, or
// still answers while it hands over) waits a moment for the next pass, which
// sees that member's claims; no split brain is reported.
func TestSyncTakeoverAnsweredByLiveMember(t *testing.T) {
	f := joined(t)
	f.s.claims.drop()
	f.l2.announced = map[netip.Addr]bool{}
	f.m.macs["02:00:00:00:00:02"] = "n2"
	f.l2.answers[addr1] = "02:00:00:00:00:02"
	f.events()
	next := f.sync()
	y, ok := f.s.yielded["10.0.0.1"]
	if !ok || y.to != "n2" || !y.check.Equal(f.now().Add(aliveRecheck)) || !next.Equal(y.check) {
		t.Errorf("yielded %+v, next %v; want 10.0.0.1 to n2 until aliveRecheck", f.s.yielded, next)
	}
	if n := count(f.events(), "SplitBrain"); n != 0 {
		t.Errorf("%d SplitBrain Events for a live member", n)
	}
	// n2 stops answering (it withdrew): the next pass takes the address.
	delete(f.l2.answers, addr1)
	f.advance(aliveRecheck)
	f.sync()
	if got := f.l2.nowAnnounced(); !slices.Contains(got, "10.0.0.1") {
		t.Errorf("announced %v after n2 stopped answering; want 10.0.0.1", got)
	}
}

// recordingTable is a flows.Table that hands each sweep's addresses over.
type recordingTable chan []netip.Addr

func (r recordingTable) DeleteUntranslated(addrs []netip.Addr) (map[netip.Addr]int, error) {
	r <- addrs
	return nil, nil
}

// Every speaker, announcing or not (here: still held down), has its node's
// untranslated flows to the Services' addresses deleted.
func TestSyncSweepsEveryServiceAddress(t *testing.T) {
	f := newFixture(t, baseObjects()...)
	table := make(recordingTable, 1)
	f.s.flows = flows.NewSweeper(table, logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.s.flows.Run(ctx)
	f.sync()
	select {
	case got := <-table:
		if want := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}; !slices.Equal(got, want) {
			t.Errorf("swept %v; want %v", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no sweep for the Services' addresses")
	}
}
