package app

import (
	"context"
	"errors"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/heraldlb/herald/speaker/layer2"
)

// fakeAnnouncer is a layer2.Announcer without sockets.
type fakeAnnouncer struct {
	reannounced []netip.Addr
	mu          sync.Mutex
	announced   map[netip.Addr]string
	answers     map[netip.Addr]net.HardwareAddr
	probeErr    error
	setErr      error
	probes      []netip.Addr
	closed      bool
}

func (a *fakeAnnouncer) Set(desired map[netip.Addr]string) error {
	if a.setErr != nil {
		return a.setErr
	}
	a.announced = maps.Clone(desired)
	return nil
}

func (a *fakeAnnouncer) Probe(_ context.Context, addr netip.Addr, _ string, opts layer2.ProbeOptions) (net.HardwareAddr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.probes = append(a.probes, addr)
	answer := a.answers[addr]
	// As the real one: answers from the MACs to ignore are no answer.
	if slices.ContainsFunc(opts.Ignore, func(m net.HardwareAddr) bool { return m.String() == answer.String() }) {
		answer = nil
	}
	return answer, a.probeErr
}

func (a *fakeAnnouncer) Announced() map[netip.Addr]string { return maps.Clone(a.announced) }
func (a *fakeAnnouncer) Reannounce(addr netip.Addr) error {
	a.reannounced = append(a.reannounced, addr)
	return nil
}
func (a *fakeAnnouncer) Stats() layer2.Stats { return layer2.Stats{RequestsSeen: 3} }
func (a *fakeAnnouncer) Close() error        { a.closed = true; return nil }

var lanTopology = layer2.Topology{Links: []layer2.Link{
	{Name: "lo", Index: 1, Loopback: true, Up: true},
	{Name: "eth0", Index: 2, Up: true, HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1},
		Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.11/24")}},
}}

func newTestL2(ann *fakeAnnouncer) *l2Announcer {
	if ann.announced == nil {
		ann.announced = map[netip.Addr]string{}
	}
	_, cancel := context.WithCancel(context.Background())
	return &l2Announcer{log: logr.Discard(), ann: ann, probeTimeout: 10 * time.Millisecond, cancel: cancel,
		topology:  func() (layer2.Topology, error) { return lanTopology, nil },
		conflicts: map[netip.Addr]foreign{}, changed: make(chan struct{})}
}

// Set probes addresses new to the cluster (not takeovers), leaves out those a
// foreign host answers for until conflictRetry, and those with no interface.
func TestL2Set(t *testing.T) {
	foreignMAC := net.HardwareAddr{2, 0, 0, 0, 0, 0x99}
	ann := &fakeAnnouncer{answers: map[netip.Addr]net.HardwareAddr{addr2: foreignMAC}}
	l := newTestL2(ann)
	other := netip.MustParseAddr("192.0.2.1") // no interface holds its subnet
	takeover := netip.MustParseAddr("10.0.0.3")
	got := l.Set(t.Context(), []want{{addr: addr1, probe: true}, {addr: addr2, probe: true}, {addr: other}, {addr: takeover}}, nil)
	expected := map[netip.Addr]appliedAddr{addr1: {iface: "eth0"}, addr2: {conflict: foreignMAC.String()}, takeover: {iface: "eth0"}}
	if !maps.Equal(got, expected) {
		t.Errorf("Set = %v; want %v", got, expected)
	}
	if slices.Contains(ann.probes, takeover) || !slices.Contains(ann.probes, addr1) {
		t.Errorf("probed %v; want the new addresses, not the takeover", ann.probes)
	}
	// Announced already: not probed again; in conflict: not probed before
	// conflictRetry.
	ann.probes = nil
	got = l.Set(t.Context(), []want{{addr: addr1, probe: true}, {addr: addr2, probe: true}}, nil)
	if len(ann.probes) != 0 || got[addr2].conflict == "" || got[addr1].iface != "eth0" {
		t.Errorf("second Set = %v, probes %v; want no probes, the conflict remembered", got, ann.probes)
	}
	// Past the retry, the foreign host is gone: announced.
	l.conflicts[addr2] = foreign{mac: foreignMAC.String(), retry: time.Now().Add(-time.Second)}
	delete(ann.answers, addr2)
	got = l.Set(t.Context(), []want{{addr: addr1}, {addr: addr2}}, nil)
	if got[addr2].iface != "eth0" || len(l.conflicts) != 0 {
		t.Errorf("after the retry: %v, conflicts %v", got, l.conflicts)
	}
	// A failed probe announces anyway.
	ann.probeErr = errors.New("socket gone")
	got = l.Set(t.Context(), []want{{addr: addr1}, {addr: addr2}, {addr: takeover, probe: true}}, nil)
	if got[takeover].iface != "eth0" {
		t.Errorf("after a failed probe: %v; want announced", got)
	}
	// A failed Set reports what is not answered.
	ann.setErr = errors.New("no socket")
	got = l.Set(t.Context(), []want{{addr: addr1}, {addr: netip.MustParseAddr("10.0.0.4")}}, nil)
	if got[netip.MustParseAddr("10.0.0.4")].iface != "" || got[addr1].iface != "eth0" {
		t.Errorf("after a failed Set: %v; want 10.0.0.4 unanswered", got)
	}
	// Unreadable topology: keep what is announced.
	l.topology = func() (layer2.Topology, error) { return layer2.Topology{}, errors.New("netlink") }
	got = l.Set(t.Context(), nil, map[string]bool{"02:00:00:00:00:02": true, "bad": true})
	if len(got) != len(ann.announced) {
		t.Errorf("unreadable topology: %v; want the %d announced", got, len(ann.announced))
	}
}

// A probe answered by a speaker not yet known (speakers starting together) is
// remembered as a conflict only until that speaker's MAC is known: then the
// address is announced at once, not after conflictRetry. CI saw two starting
// speakers each take the other for a foreign host and leave an address
// unannounced for 30 s.
func TestL2ConflictWithAFellowSpeakerEndsWhenItIsKnown(t *testing.T) {
	fellow := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	ann := &fakeAnnouncer{answers: map[netip.Addr]net.HardwareAddr{addr1: fellow}}
	l := newTestL2(ann)
	got := l.Set(t.Context(), []want{{addr: addr1, probe: true}}, nil)
	if got[addr1].conflict != fellow.String() {
		t.Fatalf("first Set = %v; want a conflict with %s", got, fellow)
	}
	got = l.Set(t.Context(), []want{{addr: addr1, probe: true}}, nil)
	if got[addr1].conflict == "" {
		t.Fatalf("second Set, the MAC still unknown = %v; want the conflict kept until conflictRetry", got)
	}
	ann.probes = nil
	got = l.Set(t.Context(), []want{{addr: addr1, probe: true}}, map[string]bool{fellow.String(): true})
	if got[addr1].iface != "eth0" || len(l.conflicts) != 0 {
		t.Errorf("Set once the MAC is a speaker's = %v, conflicts %v; want %s announced on eth0", got, l.conflicts, addr1)
	}
}

func TestL2CannotAnnounce(t *testing.T) {
	l := newTestL2(&fakeAnnouncer{})
	if why := l.cannotAnnounce([]netip.Addr{addr1}, nil); why != "" {
		t.Errorf("cannotAnnounce(10.0.0.1) = %q", why)
	}
	if why := l.cannotAnnounce([]netip.Addr{addr1}, []string{"eth9"}); why == "" {
		t.Error("cannotAnnounce on a missing interface = \"\"")
	}
	l.topology = func() (layer2.Topology, error) { return layer2.Topology{}, errors.New("netlink") }
	if why := l.cannotAnnounce([]netip.Addr{addr1}, []string{"eth9"}); why != "" {
		t.Errorf("cannotAnnounce with no topology = %q; want \"\" (not the address's fault)", why)
	}
}

func TestL2AnswererWithdrawClose(t *testing.T) {
	ann := &fakeAnnouncer{answers: map[netip.Addr]net.HardwareAddr{addr1: {2, 0, 0, 0, 0, 0xAB}}}
	l := newTestL2(ann)
	if mac, ok := l.answerer(t.Context(), addr1, nil, nil, 0); !ok || mac != "02:00:00:00:00:ab" {
		t.Errorf("answerer = %q, %v; want the lower-case MAC", mac, ok)
	}
	if mac, ok := l.answerer(t.Context(), addr2, nil, nil, 0); !ok || mac != "" {
		t.Errorf("answerer(silent) = %q, %v", mac, ok)
	}
	if _, ok := l.answerer(t.Context(), netip.MustParseAddr("192.0.2.1"), nil, nil, 0); ok {
		t.Error("answerer with no interface: ok")
	}
	ann.probeErr = errors.New("x")
	if _, ok := l.answerer(t.Context(), addr1, nil, nil, 0); ok {
		t.Error("answerer with a failing probe: ok")
	}
	ann.announced = map[netip.Addr]string{addr1: "eth0", addr2: "eth0"}
	l.withdraw(addr1)
	l.withdraw(netip.MustParseAddr("10.0.0.9"))
	if !maps.Equal(ann.announced, map[netip.Addr]string{addr2: "eth0"}) {
		t.Errorf("after withdraw: %v", ann.announced)
	}
	if l.Changed() == nil {
		t.Error("Changed is nil")
	}
	if err := l.Close(); err != nil || !ann.closed {
		t.Errorf("Close = %v, closed %v", err, ann.closed)
	}
}
