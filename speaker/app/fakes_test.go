package app

import (
	"context"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/speaker/layer2"
	"github.com/heraldlb/herald/speaker/membership"
)

// fakeMembers is a memberView whose answers the test sets.
type fakeMembers struct {
	mu         sync.Mutex
	alive      []string
	states     map[string]membership.State
	macs       map[string]string // MAC → member
	failed     map[string][]string
	lastClaims map[string]map[string]int
	leftAt     map[string]time.Time
	changed    chan struct{}
	joinErr    error

	published []published
	joins     []string
	calls     []string // Leave, Shutdown in order
}

type published struct {
	settled bool
	claims  map[string]int
	refuses []string
}

func newFakeMembers(alive ...string) *fakeMembers {
	return &fakeMembers{alive: alive, states: map[string]membership.State{}, macs: map[string]string{},
		failed: map[string][]string{}, lastClaims: map[string]map[string]int{}, leftAt: map[string]time.Time{},
		changed: make(chan struct{}, 1)}
}

func (f *fakeMembers) Alive() []membership.Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []membership.Member
	for _, n := range f.alive {
		out = append(out, membership.Member{Name: n})
	}
	return out
}

func (f *fakeMembers) States() map[string]membership.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.states)
}

func (f *fakeMembers) SetState(settled bool, claims map[string]int, refuses []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.published = append(f.published, published{settled, claims, refuses})
}

func (f *fakeMembers) KnownMACs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.macs))
}

func (f *fakeMembers) MemberOfMAC(mac string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.macs[mac]
	return n, ok
}

// Failed: a member listed as a failed holder of any key, and not alive.
func (f *fakeMembers) Failed(node string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if slices.Contains(f.alive, node) {
		return false
	}
	for _, nodes := range f.failed {
		if slices.Contains(nodes, node) {
			return true
		}
	}
	return false
}
func (f *fakeMembers) LastClaims(node string) map[string]int {
	return f.lastClaims[node]
}
func (f *fakeMembers) LeftAt(node string) time.Time { return f.leftAt[node] }
func (f *fakeMembers) Changed() <-chan struct{}     { return f.changed }

func (f *fakeMembers) Join(peers []string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.joins = append(f.joins, peers...)
	return len(peers), f.joinErr
}

func (f *fakeMembers) Leave(time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "Leave")
	return nil
}

func (f *fakeMembers) Shutdown() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "Shutdown")
	return nil
}

func (f *fakeMembers) last() published {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.published) == 0 {
		return published{}
	}
	return f.published[len(f.published)-1]
}

func (f *fakeMembers) setAlive(names ...string) {
	f.mu.Lock()
	f.alive = names
	f.mu.Unlock()
}

// fakeL2 is an l2Sink that answers on "eth0" for whatever it is given, but
// for the addresses the test says cannot be announced or are in conflict.
type fakeL2 struct {
	mu        sync.Mutex
	cannot    map[netip.Addr]string // why an address cannot be announced
	conflict  map[netip.Addr]string // MAC of a foreign host answering
	fail      map[netip.Addr]bool   // Set leaves it unanswered
	answers   map[netip.Addr]string // what a probe (answerer) hears
	noProbe   bool                  // answerer cannot probe
	announced map[netip.Addr]bool
	sets      [][]want
	probed    []netip.Addr
	withdrawn []netip.Addr
	reann     []netip.Addr
	waits     []time.Duration // the wait of each answerer call
	ipvs      string          // why the kernel answers for everything, or ""
	changed   chan struct{}
	closed    bool
}

func newFakeL2() *fakeL2 {
	return &fakeL2{cannot: map[netip.Addr]string{}, conflict: map[netip.Addr]string{}, fail: map[netip.Addr]bool{},
		answers: map[netip.Addr]string{}, announced: map[netip.Addr]bool{}, changed: make(chan struct{}, 1)}
}

func (f *fakeL2) Set(_ context.Context, desired []want, _ map[string]bool) map[netip.Addr]appliedAddr {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sets = append(f.sets, slices.Clone(desired))
	out := map[netip.Addr]appliedAddr{}
	clear(f.announced)
	for _, w := range desired {
		switch {
		case f.conflict[w.addr] != "":
			out[w.addr] = appliedAddr{conflict: f.conflict[w.addr]}
		case f.fail[w.addr]:
			out[w.addr] = appliedAddr{}
		default:
			out[w.addr] = appliedAddr{iface: "eth0"}
			f.announced[w.addr] = true
		}
	}
	return out
}

func (f *fakeL2) cannotAnnounce(ips []netip.Addr, _ []string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ip := range ips {
		if why := f.cannot[ip]; why != "" {
			return why
		}
	}
	return ""
}

func (f *fakeL2) answerer(_ context.Context, addr netip.Addr, _ []string, _ []net.HardwareAddr, wait time.Duration) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.probed = append(f.probed, addr)
	f.waits = append(f.waits, wait)
	if f.noProbe {
		return "", false
	}
	return f.answers[addr], true
}

func (f *fakeL2) withdraw(addr netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.withdrawn = append(f.withdrawn, addr)
	delete(f.announced, addr)
}

func (f *fakeL2) reannounce(addr netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reann = append(f.reann, addr)
}

func (f *fakeL2) ipvsWithoutStrictARP() (bool, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ipvs != "", f.ipvs
}

func (f *fakeL2) Changed() <-chan struct{} { return f.changed }

func (f *fakeL2) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

// nowAnnounced lists the addresses answered for, sorted.
func (f *fakeL2) nowAnnounced() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for a := range f.announced {
		out = append(out, a.String())
	}
	slices.Sort(out)
	return out
}

func (f *fakeL2) setCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sets)
}

var (
	addr1 = netip.MustParseAddr("10.0.0.1")
	addr2 = netip.MustParseAddr("10.0.0.2")
)

const (
	// holdDown is the fixture's Config.HoldDown.
	holdDown = 10 * time.Second
	// eligibleLabel marks the nodes the fixture's L2Announcement selects: n1
	// (this speaker) only, so that it wins every election it takes part in.
	eligibleLabel = "test.herald.io/l2"
)

// fixture is a speaker "n1" on fakes: a cluster with Ready nodes n1 and n2
// (only n1 eligible for layer 2), pool lan (10.0.0.0/24), and Services web
// (10.0.0.1) and db (10.0.0.2); a clock the test moves.
type fixture struct {
	t       *testing.T
	s       *speaker
	c       client.Client
	m       *fakeMembers
	l2      *fakeL2
	rec     *record.FakeRecorder
	clock   time.Time
	clockMu sync.Mutex
}

func readyNode(name, ip string, labels map[string]string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Status: corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}},
	}}
}

func baseObjects() []client.Object {
	lan := ippool("lan", "u1", "10.0.0.0/24")
	return []client.Object{
		&lan,
		readyNode("n1", "192.168.0.1", map[string]string{eligibleLabel: "true"}),
		readyNode("n2", "192.168.0.2", nil),
		&heraldv1.L2Announcement{ObjectMeta: metav1.ObjectMeta{Name: "l2"}, Spec: heraldv1.L2AnnouncementSpec{
			IPPools: []string{"lan"}, NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{eligibleLabel: "true"}}}},
		lbService("web", "10.0.0.1", ""),
		lbService("db", "10.0.0.2", ""),
	}
}

func newFixture(t *testing.T, objs ...client.Object) *fixture {
	t.Helper()
	scheme, err := Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
		WithStatusSubresource(&corev1.Service{}, &heraldv1.BGPPeer{}).Build()
	rec := record.NewFakeRecorder(100)
	f := &fixture{t: t, c: c, rec: rec, m: newFakeMembers("n1"), l2: newFakeL2(),
		clock: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := newSpeakerWith(Config{NodeName: "n1", HoldDown: holdDown, MemberlistPort: 7946, HandleClassless: true,
		HandOver: 50 * time.Millisecond, Namespace: "herald-system"}, c, rec)
	s.members, s.l2 = f.m, f.l2
	s.now = f.now
	s.hostMACs = func() []string { return []string{"02:00:00:00:00:01"} }
	s.linkState = func(netip.Addr) bool { return true }
	s.started = f.now()
	f.s = s
	return f
}

func (f *fixture) now() time.Time {
	f.clockMu.Lock()
	defer f.clockMu.Unlock()
	return f.clock
}

func (f *fixture) advance(d time.Duration) {
	f.clockMu.Lock()
	f.clock = f.clock.Add(d)
	f.clockMu.Unlock()
}

// sync runs one pass of the loop.
func (f *fixture) sync() time.Time {
	f.t.Helper()
	return f.s.sync(context.Background())
}

// events drains the Events recorded so far.
func (f *fixture) events() []string { return drainEvents(f.rec) }

// drainEvents returns the Events a fake recorder holds, emptying it.
func drainEvents(rec *record.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// count returns how many of evs have the reason (an Event reads "Type Reason
// message").
func count(evs []string, reason string) int {
	n := 0
	for _, e := range evs {
		if _, rest, ok := strings.Cut(e, " "); ok && strings.HasPrefix(rest, reason+" ") {
			n++
		}
	}
	return n
}

// withEvent returns the Events with the reason.
func withEvent(evs []string, reason string) []string {
	var out []string
	for _, e := range evs {
		if _, rest, ok := strings.Cut(e, " "); ok && strings.HasPrefix(rest, reason+" ") {
			out = append(out, e)
		}
	}
	return out
}

// peerState is a live member's State as n1 reads it.
func peerState(settled bool, claims map[string]int) membership.State {
	return membership.State{Epoch: 1, Settled: settled, Claims: claims}
}

// conflictFrom is a layer 2 report of mac answering for addr.
func conflictFrom(addr netip.Addr, mac string) layer2.Conflict {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		panic(err)
	}
	return layer2.Conflict{Addr: addr, HardwareAddr: hw, Interface: "eth0"}
}
