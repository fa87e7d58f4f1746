package layer2

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/arp"
)

// fakeNet stands in for the kernel under an Announcer: interfaces by name, and a
// memConn behind every Responder the Announcer opens.
type fakeNet struct {
	mu sync.Mutex
	// mu guards the following fields.
	ifaces  map[string]*net.Interface
	conns   map[string][]*memConn // "eth0/IPv4" → every conn opened, oldest first
	dialErr error
	// writeErr, when set, makes new conns fail every write.
	writeErr error
}

func newFakeNet(names ...string) *fakeNet {
	n := &fakeNet{ifaces: make(map[string]*net.Interface), conns: make(map[string][]*memConn)}
	for i, name := range names {
		n.ifaces[name] = &net.Interface{Index: 100 + i, Name: name, MTU: 1500, HardwareAddr: net.HardwareAddr{2, 0x77, 0, 0, 1, byte(i)}}
	}
	return n
}

func (n *fakeNet) announcer(t *testing.T, schedule ...time.Duration) *Announcer {
	t.Helper()
	if schedule == nil {
		schedule = []time.Duration{}
	}
	return n.announcerWith(t, Config{GratuitousSchedule: schedule})
}

// announcerWith returns an Announcer configured by cfg over the fake network.
func (n *fakeNet) announcerWith(t *testing.T, cfg Config) *Announcer {
	t.Helper()
	a := NewAnnouncer(cfg)
	a.interfaceByName = func(name string) (*net.Interface, error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		ifi, ok := n.ifaces[name]
		if !ok {
			return nil, fmt.Errorf("route ip+net: no such network interface")
		}
		c := *ifi
		return &c, nil
	}
	a.dial = func(ifi *net.Interface, ipv6 bool) (*Responder, error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.dialErr != nil {
			return nil, n.dialErr
		}
		c := newMemConn()
		c.writeErr = n.writeErr
		key := ifi.Name + "/IPv4"
		var r *Responder
		var err error
		if ipv6 {
			key = ifi.Name + "/IPv6"
			r, err = NewNDP(ifi, c, nil)
		} else {
			r, err = NewARP(ifi, c)
		}
		if err == nil {
			n.conns[key] = append(n.conns[key], c)
		}
		return r, err
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// conn returns the newest conn opened for key, or nil.
func (n *fakeNet) conn(key string) *memConn {
	n.mu.Lock()
	defer n.mu.Unlock()
	cs := n.conns[key]
	if len(cs) == 0 {
		return nil
	}
	return cs[len(cs)-1]
}

func (n *fakeNet) opened(key string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.conns[key])
}

func isClosed(c *memConn) bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

func checkAnnounced(t *testing.T, a *Announcer, want map[netip.Addr]string) {
	t.Helper()
	if got := a.Announced(); !maps.Equal(got, want) {
		t.Errorf("Announced = %v; want %v", got, want)
	}
}

func TestAnnouncerSet(t *testing.T) {
	n := newFakeNet("eth0", "eth1")
	a := n.announcer(t, 0, 10*time.Millisecond, 20*time.Millisecond)

	want := map[netip.Addr]string{vip4: "eth0", vip6: "eth0"}
	if err := a.Set(want); err != nil {
		t.Fatalf("Set: %v", err)
	}
	checkAnnounced(t, a, want)
	v4, v6 := n.conn("eth0/IPv4"), n.conn("eth0/IPv6")
	// Three rounds: two ARP frames each, one NA each.
	if got := len(v4.waitFrames(6, 5*time.Second)); got != 6 {
		t.Errorf("IPv4 gratuitous frames = %d; want 6", got)
	}
	if got := len(v6.waitFrames(3, 5*time.Second)); got != 3 {
		t.Errorf("IPv6 gratuitous frames = %d; want 3", got)
	}

	// The Responder is serving.
	v4.deliver(arpFrame(t, arp.OperationRequest, peerMAC, peer4, zeroMAC, vip4))
	if got := len(v4.waitFrames(1, 5*time.Second)); got != 1 {
		t.Errorf("reply frames = %d; want 1", got)
	}

	// Setting the same again sends nothing new.
	if err := a.Set(want); err != nil {
		t.Fatalf("Set again: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if got := len(v4.frames()); got != 0 {
		t.Errorf("unchanged Set sent %d frames; want 0", got)
	}

	// Move the IPv4 address, drop the IPv6 one.
	want = map[netip.Addr]string{vip4: "eth1"}
	if err := a.Set(want); err != nil {
		t.Fatalf("Set: %v", err)
	}
	checkAnnounced(t, a, want)
	if !isClosed(v4) || !isClosed(v6) {
		t.Errorf("eth0 sockets closed: IPv4 %v, IPv6 %v; want both", isClosed(v4), isClosed(v6))
	}
	if got := len(n.conn("eth1/IPv4").waitFrames(6, 5*time.Second)); got != 6 {
		t.Errorf("eth1 gratuitous frames = %d; want 6", got)
	}

	if err := a.Set(nil); err != nil {
		t.Fatalf("Set(nil): %v", err)
	}
	checkAnnounced(t, a, map[netip.Addr]string{})
	if !isClosed(n.conn("eth1/IPv4")) {
		t.Error("eth1 socket open with nothing to announce")
	}

	// Counts of closed Responders are kept.
	s := a.Stats()
	if s.GratuitousSent != 6+3+6 || s.RepliesSent != 1 || s.RequestsSeen != 1 {
		t.Errorf("Stats = %+v; want 15 gratuitous, 1 request, 1 reply", s)
	}
}

func TestAnnouncerRecordsOnlySuccess(t *testing.T) {
	want := map[netip.Addr]string{vip4: "eth0"}

	t.Run("dial fails", func(t *testing.T) {
		n := newFakeNet("eth0")
		a := n.announcer(t, 0)
		n.dialErr = errors.New("operation not permitted")
		err := a.Set(want)
		if err == nil || !strings.Contains(err.Error(), "announce 10.77.0.100 on eth0") || !strings.Contains(err.Error(), "operation not permitted") {
			t.Fatalf("Set error = %v; want it to say what failed", err)
		}
		checkAnnounced(t, a, map[netip.Addr]string{})
		n.dialErr = nil
		if err := a.Set(want); err != nil {
			t.Fatalf("retry: %v", err)
		}
		checkAnnounced(t, a, want)
	})

	t.Run("gratuitous fails", func(t *testing.T) {
		n := newFakeNet("eth0")
		a := n.announcer(t, 0)
		n.writeErr = errors.New("network is down")
		if err := a.Set(want); err == nil || !strings.Contains(err.Error(), "network is down") {
			t.Fatalf("Set error = %v; want network is down", err)
		}
		checkAnnounced(t, a, map[netip.Addr]string{})
		if c := n.conn("eth0/IPv4"); !isClosed(c) {
			t.Error("socket left open for an address not announced")
		}
		n.writeErr = nil
		if err := a.Set(want); err != nil {
			t.Fatalf("retry: %v", err)
		}
		checkAnnounced(t, a, want)
	})

	t.Run("interface missing", func(t *testing.T) {
		n := newFakeNet("eth0")
		a := n.announcer(t, 0)
		err := a.Set(map[netip.Addr]string{vip4: "eth0", vip6: "eth9"})
		if err == nil || !strings.Contains(err.Error(), `look up interface "eth9"`) {
			t.Fatalf("Set error = %v; want interface lookup failure", err)
		}
		checkAnnounced(t, a, want)
	})

	t.Run("invalid input", func(t *testing.T) {
		n := newFakeNet("eth0")
		a := n.announcer(t, 0)
		if err := a.Set(map[netip.Addr]string{{}: "eth0", vip6: ""}); err == nil {
			t.Fatal("Set accepted an invalid address and an empty interface")
		}
		checkAnnounced(t, a, map[netip.Addr]string{})
	})
}

// TestAnnouncerInterfaceRecreated: an interface deleted and created again under
// the same name gets new sockets, and its addresses are announced again.
func TestAnnouncerInterfaceRecreated(t *testing.T) {
	n := newFakeNet("eth0")
	a := n.announcer(t, 0)
	want := map[netip.Addr]string{vip4: "eth0"}
	if err := a.Set(want); err != nil {
		t.Fatal(err)
	}
	old := n.conn("eth0/IPv4")
	n.mu.Lock()
	n.ifaces["eth0"].Index = 555
	n.mu.Unlock()
	if err := a.Set(want); err != nil {
		t.Fatal(err)
	}
	if !isClosed(old) || n.opened("eth0/IPv4") != 2 {
		t.Fatalf("old socket closed: %v, sockets opened: %d; want true, 2", isClosed(old), n.opened("eth0/IPv4"))
	}
	if got := len(n.conn("eth0/IPv4").frames()); got != 2 {
		t.Errorf("gratuitous frames on the new socket = %d; want 2", got)
	}
	checkAnnounced(t, a, want)
}

func TestAnnouncerProbe(t *testing.T) {
	n := newFakeNet("eth0")
	a := n.announcer(t, 0)
	addr := netip.MustParseAddr("10.77.0.50")

	// No Responder on eth0 yet: a short-lived one is opened and closed.
	mac, err := a.Probe(context.Background(), addr, "eth0", ProbeOptions{Wait: 20 * time.Millisecond})
	if err != nil || mac != nil {
		t.Fatalf("Probe = %v, %v; want nil, nil", mac, err)
	}
	if c := n.conn("eth0/IPv4"); c == nil || !isClosed(c) {
		t.Error("short-lived probe socket not closed")
	}

	// With eth0 announcing, its Responder probes; an answer is a conflict.
	if err := a.Set(map[netip.Addr]string{vip4: "eth0"}); err != nil {
		t.Fatal(err)
	}
	c := n.conn("eth0/IPv4")
	c.frames()
	go func() {
		c.waitFrames(1, 5*time.Second)
		c.deliver(arpFrame(t, arp.OperationReply, peerMAC, addr, ourMAC, netip.IPv4Unspecified()))
	}()
	mac, err = a.Probe(context.Background(), addr, "eth0", ProbeOptions{Wait: 5 * time.Second, Count: 1})
	if err != nil || mac.String() != peerMAC.String() {
		t.Fatalf("Probe = %v, %v; want %v", mac, err, peerMAC)
	}
	if n.opened("eth0/IPv4") != 2 {
		t.Errorf("sockets opened = %d; want 2 (probe reused the announcing one)", n.opened("eth0/IPv4"))
	}
	if s := a.Stats(); s.ConflictsDetected != 1 || s.ProbesSent != 3 {
		t.Errorf("Stats = %+v; want 3 probes (2 + 1), 1 conflict", s)
	}

	if _, err := a.Probe(context.Background(), addr, "eth9", ProbeOptions{}); err == nil {
		t.Error("Probe on a missing interface succeeded")
	}
}

func TestAnnouncerClose(t *testing.T) {
	n := newFakeNet("eth0")
	// A repeat an hour away: Close must not wait for it.
	a := n.announcer(t, 0, time.Hour)
	if err := a.Set(map[netip.Addr]string{vip4: "eth0", vip6: "eth0"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if !isClosed(n.conn("eth0/IPv4")) || !isClosed(n.conn("eth0/IPv6")) {
		t.Error("sockets open after Close")
	}
	if err := a.Set(map[netip.Addr]string{vip4: "eth0"}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Set after Close = %v; want net.ErrClosed", err)
	}
	if _, err := a.Probe(context.Background(), vip4, "eth0", ProbeOptions{}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Probe after Close = %v; want net.ErrClosed", err)
	}
	checkAnnounced(t, a, map[netip.Addr]string{})
}

// TestAnnouncerDefaultSchedule pins the default: three rounds, at 0, 100 and 300 ms.
func TestAnnouncerDefaultSchedule(t *testing.T) {
	a := NewAnnouncer(Config{})
	defer a.Close()
	want := []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond}
	if fmt.Sprint(a.schedule) != fmt.Sprint(want) {
		t.Errorf("schedule = %v; want %v", a.schedule, want)
	}
}
