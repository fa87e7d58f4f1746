package flows

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var (
	a1 = netip.MustParseAddr("172.18.255.200")
	a2 = netip.MustParseAddr("fc00:f853:ccd:e793::c8")
	t0 = time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
)

func TestDue(t *testing.T) {
	sec := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Second))) }
	for _, tc := range []struct {
		name      string
		firstSeen map[netip.Addr]time.Time
		last, now time.Time
		young     []netip.Addr
		next      time.Time
	}{
		{name: "nothing seen", now: t0},
		{name: "just seen: the first sweep a second later", firstSeen: map[netip.Addr]time.Time{a1: t0}, now: t0,
			next: sec(1)},
		{name: "first sweep", firstSeen: map[netip.Addr]time.Time{a1: t0}, now: sec(1),
			young: []netip.Addr{a1}, next: sec(2)},
		{name: "a late wake-up sweeps once, then goes by the marks", firstSeen: map[netip.Addr]time.Time{a1: t0}, last: sec(2), now: sec(4),
			young: []netip.Addr{a1}, next: sec(5)},
		{name: "not before the next mark", firstSeen: map[netip.Addr]time.Time{a1: t0}, last: sec(3), now: sec(4.5),
			next: sec(5)},
		{name: "farther apart later", firstSeen: map[netip.Addr]time.Time{a1: t0}, last: sec(8), now: sec(13),
			young: []netip.Addr{a1}, next: sec(21)},
		{name: "the youngest sets the pace; both swept, sorted", firstSeen: map[netip.Addr]time.Time{a2: sec(30), a1: sec(38)},
			last: sec(38.5), now: sec(39),
			young: []netip.Addr{a1, a2}, next: sec(40)},
		{name: "old addresses are left alone", firstSeen: map[netip.Addr]time.Time{a1: t0, a2: sec(50)}, last: sec(63), now: sec(71),
			young: []netip.Addr{a2}, next: sec(84)},
		{name: "past its last mark: no more sweeps", firstSeen: map[netip.Addr]time.Time{a1: t0}, last: sec(55), now: sec(57)},
		{name: "old: no more sweeps", firstSeen: map[netip.Addr]time.Time{a1: t0}, now: t0.Add(Window)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			young, next := Due(tc.firstSeen, tc.last, tc.now)
			if diff := cmp.Diff(tc.young, young, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("young (-want +got):\n%s", diff)
			}
			if !next.Equal(tc.next) {
				t.Errorf("next %v; want %v", next, tc.next)
			}
		})
	}
}

// flow is a flow from the client 172.18.0.1 (fc00::1) port sport to dst.
func flow(proto uint8, state uint8, dst, replySrc string, dport, replySport uint16) *netlink.ConntrackFlow {
	return flowFrom(38418, proto, state, dst, replySrc, dport, replySport)
}

func flowFrom(sport uint16, proto uint8, state uint8, dst, replySrc string, dport, replySport uint16) *netlink.ConntrackFlow {
	ip := func(s string) net.IP {
		if a := net.ParseIP(s); a.To4() != nil {
			return a.To4()
		} else {
			return a
		}
	}
	client := ip("172.18.0.1")
	if ip(dst).To4() == nil {
		client = ip("fc00::1")
	}
	f := &netlink.ConntrackFlow{
		Forward: netlink.IPTuple{Protocol: proto, SrcIP: client, DstIP: ip(dst), SrcPort: sport, DstPort: dport},
		Reverse: netlink.IPTuple{Protocol: proto, SrcIP: ip(replySrc), DstIP: client, SrcPort: replySport, DstPort: sport},
	}
	if proto == unix.IPPROTO_TCP {
		f.ProtoInfo = &netlink.ProtoInfoTCP{State: state}
	}
	return f
}

func TestUntranslated(t *testing.T) {
	const vip = "172.18.255.200"
	for _, tc := range []struct {
		name string
		f    *netlink.ConntrackFlow
		want bool
	}{
		{"SYN to the address, no NAT (the case)", flow(unix.IPPROTO_TCP, tcpSynSent, vip, vip, 80, 80), true},
		{"kube-proxy's DNAT to a pod", flow(unix.IPPROTO_TCP, tcpSynSent, vip, "10.244.1.7", 80, 8080), false},
		{"DNAT to another port of the same address", flow(unix.IPPROTO_TCP, tcpSynSent, vip, vip, 80, 8080), false},
		{"answered (established), even without NAT", flow(unix.IPPROTO_TCP, 3, vip, vip, 80, 80), false},
		{"UDP (kube-proxy clears its own)", flow(unix.IPPROTO_UDP, 0, vip, vip, 53, 53), false},
		{"no protocol information", &netlink.ConntrackFlow{Forward: netlink.IPTuple{Protocol: unix.IPPROTO_TCP, DstIP: net.ParseIP(vip)}, Reverse: netlink.IPTuple{SrcIP: net.ParseIP(vip)}}, false},
	} {
		if got := Untranslated(tc.f); got != tc.want {
			t.Errorf("%s: Untranslated = %v; want %v", tc.name, got, tc.want)
		}
	}
}

// fakeTable records the addresses of each sweep.
type fakeTable struct {
	mu     sync.Mutex
	sweeps [][]netip.Addr
	err    error
	swept  chan struct{}
}

func (f *fakeTable) DeleteUntranslated(addrs []netip.Addr) (map[netip.Addr]int, error) {
	f.mu.Lock()
	f.sweeps = append(f.sweeps, addrs)
	f.mu.Unlock()
	f.swept <- struct{}{}
	return map[netip.Addr]int{addrs[0]: 2}, f.err
}

func (f *fakeTable) waitSweep(t *testing.T, what string) {
	t.Helper()
	select {
	case <-f.swept:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s was not swept", what)
	}
}

func TestSweeperSweepsNewAddressesAtTheirMarksAndStopsWithoutPermission(t *testing.T) {
	table := &fakeTable{swept: make(chan struct{}, 10)}
	s := NewSweeper(table, logr.Discard())
	deleted := make(chan int, 10)
	s.Deleted = func(a netip.Addr, n int) {
		if a == a1 {
			deleted <- n
		}
	}
	clock := t0
	var mu sync.Mutex
	s.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()

	s.Observe([]netip.Addr{a1})
	mu.Lock()
	clock = clock.Add(time.Second) // its first mark
	mu.Unlock()
	table.waitSweep(t, "a new address")
	select {
	case n := <-deleted:
		if n != 2 {
			t.Errorf("Deleted reported %d for %v; want 2", n, a1)
		}
	case <-time.After(5 * time.Second):
		t.Error("Deleted not called")
	}
	// An address seen before and listed again is not new: no extra sweep.
	mu.Lock()
	clock = clock.Add(100 * time.Millisecond)
	mu.Unlock()
	s.Observe([]netip.Addr{a1})
	select {
	case <-table.swept:
		t.Fatal("swept again within the interval for an address seen before")
	case <-time.After(200 * time.Millisecond):
	}
	// Gone and back: young again.
	s.Observe(nil)
	table.mu.Lock()
	table.err = syscall.EPERM
	table.mu.Unlock()
	mu.Lock()
	clock = clock.Add(2 * time.Second)
	mu.Unlock()
	s.Observe([]netip.Addr{a1})
	mu.Lock()
	clock = clock.Add(time.Second)
	mu.Unlock()
	table.waitSweep(t, "an address that came back")
	select {
	case <-done: // EPERM: it stopped
	case <-time.After(5 * time.Second):
		t.Fatal("the sweeper went on without permission")
	}
}
