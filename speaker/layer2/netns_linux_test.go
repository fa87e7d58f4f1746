//go:build linux

package layer2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The privileged tests build two network namespaces joined by a veth pair:
//
//	A (ha0, 02:77:00:00:00:0a, 10.77.0.1/24, fd77::1/64) — runs herald's code
//	B (hb0, 02:77:00:00:00:0b, 10.77.0.2/24, fd77::2/64) — the client, its kernel
//
// Nothing leaves the namespaces; both are deleted when the test ends.

var (
	labMACA = net.HardwareAddr{0x02, 0x77, 0, 0, 0, 0x0a}
	labMACB = net.HardwareAddr{0x02, 0x77, 0, 0, 0, 0x0b}
	labSeq  atomic.Int64
)

type lab struct {
	t   *testing.T
	nsA string
	nsB string
	ifA string
	ifB string
}

// newLab creates the namespaces, or skips the test without root or `ip`.
func newLab(t *testing.T) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
	id := fmt.Sprintf("%d-%d", os.Getpid(), labSeq.Add(1))
	l := &lab{t: t, nsA: "hl2a-" + id, nsB: "hl2b-" + id, ifA: "ha0", ifB: "hb0"}
	for _, ns := range []string{l.nsA, l.nsB} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			if errors.Is(err, os.ErrPermission) || strings.Contains(string(out), "Operation not permitted") {
				t.Skipf("cannot create network namespaces: %s", out)
			}
			t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
	}
	l.ip("link", "add", l.ifA, "netns", l.nsA, "address", labMACA.String(), "type", "veth",
		"peer", "name", l.ifB, "netns", l.nsB, "address", labMACB.String())
	for _, s := range []struct{ ns, dev, v4, v6 string }{
		{l.nsA, l.ifA, "10.77.0.1/24", "fd77::1/64"},
		{l.nsB, l.ifB, "10.77.0.2/24", "fd77::2/64"},
	} {
		l.ip("-n", s.ns, "link", "set", "lo", "up")
		l.ip("-n", s.ns, "addr", "add", s.v4, "dev", s.dev)
		l.ip("-n", s.ns, "addr", "add", s.v6, "dev", s.dev, "nodad")
		l.ip("-n", s.ns, "link", "set", s.dev, "up")
	}
	l.ip("-n", l.nsA, "route", "add", "default", "via", "10.77.0.2")
	l.ip("-n", l.nsA, "-6", "route", "add", "default", "via", "fd77::2")
	l.waitIPv6Multicast()
	return l
}

// waitIPv6Multicast waits until both ends route IPv6 multicast. The kernel adds
// the ff00::/8 route when it sees the carrier come up, which link-watch reports
// up to a second late; until then every multicast packet (unsolicited NAs, DAD
// solicitations and their answers) is dropped as Ip6InNoRoutes.
func (l *lab) waitIPv6Multicast() {
	l.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, s := range []struct{ ns, dev string }{{l.nsA, l.ifA}, {l.nsB, l.ifB}} {
		for !strings.Contains(l.ip("-n", s.ns, "-6", "route", "show", "table", "local", "dev", s.dev), "multicast ff00::/8") {
			if time.Now().After(deadline) {
				l.t.Fatalf("%s: no IPv6 multicast route on %s", s.ns, s.dev)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// ip runs the ip command, failing the test if it fails.
func (l *lab) ip(args ...string) string {
	l.t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// in runs fn on a thread inside network namespace ns and returns its error.
// Sockets opened by fn stay in ns; goroutines fn starts may run anywhere, which
// is fine once their sockets exist.
func in(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine rather than return
		// to the scheduler's pool inside another namespace.
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func (l *lab) inA(fn func() error) {
	l.t.Helper()
	if err := in(l.nsA, fn); err != nil {
		l.t.Fatal(err)
	}
}

func (l *lab) inB(fn func() error) {
	l.t.Helper()
	if err := in(l.nsB, fn); err != nil {
		l.t.Fatal(err)
	}
}

// resolveFromB asks for addr with a real ARP request from B (mdlayher/arp's
// client), waiting at most timeout for the answer.
func (l *lab) resolveFromB(addr netip.Addr, timeout time.Duration) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := in(l.nsB, func() error {
		ifi, err := net.InterfaceByName(l.ifB)
		if err != nil {
			return err
		}
		c, err := arp.Dial(ifi)
		if err != nil {
			return fmt.Errorf("arp.Dial: %w", err)
		}
		defer c.Close()
		if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
			return err
		}
		mac, err = c.Resolve(addr)
		return err
	})
	return mac, err
}

// kernelNeighbor makes B's kernel resolve addr (by sending it a UDP datagram) and
// waits until B's neighbour table maps it to want.
func (l *lab) kernelNeighbor(addr netip.Addr, want net.HardwareAddr) {
	l.t.Helper()
	l.inB(func() error {
		c, err := net.Dial("udp", netip.AddrPortFrom(addr, 9).String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("herald"))
		return err
	})
	l.waitNeighbor(addr, want, 3*time.Second)
}

// waitNeighbor waits until B's neighbour entry for addr has hardware address
// want, and returns how long that took.
func (l *lab) waitNeighbor(addr netip.Addr, want net.HardwareAddr, timeout time.Duration) time.Duration {
	l.t.Helper()
	start := time.Now()
	var out string
	for time.Since(start) < timeout {
		out = l.ip("-n", l.nsB, "neigh", "show", addr.String(), "dev", l.ifB)
		if strings.Contains(out, "lladdr "+want.String()) {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	l.t.Fatalf("B's neighbour entry for %s = %q; want lladdr %s", addr, strings.TrimSpace(out), want)
	return 0
}

// dial opens a started Responder on A's interface.
func (l *lab) dial(ipv6 bool) *Responder {
	l.t.Helper()
	var r *Responder
	l.inA(func() error {
		ifi, err := net.InterfaceByName(l.ifA)
		if err != nil {
			return err
		}
		if ipv6 {
			r, err = DialNDP(ifi)
		} else {
			r, err = DialARP(ifi)
		}
		return err
	})
	r.Start()
	l.t.Cleanup(func() { r.Close() })
	return r
}

// TestLabARPResponder: a real ARP client and B's kernel both learn A's hardware
// address for an address no interface holds.
func TestLabARPResponder(t *testing.T) {
	l := newLab(t)
	r := l.dial(false)
	addr := netip.MustParseAddr("10.77.0.100")

	if _, err := l.resolveFromB(addr, 300*time.Millisecond); err == nil {
		t.Fatal("address resolved before it was announced")
	}
	if err := r.Add(addr); err != nil {
		t.Fatal(err)
	}
	mac, err := l.resolveFromB(addr, 2*time.Second)
	if err != nil || !bytes.Equal(mac, labMACA) {
		t.Fatalf("ARP resolve %s from B = %v, %v; want %v", addr, mac, err, labMACA)
	}
	l.kernelNeighbor(addr, labMACA)

	if err := r.Remove(addr); err != nil {
		t.Fatal(err)
	}
	if mac, err := l.resolveFromB(addr, 300*time.Millisecond); err == nil {
		t.Errorf("address resolved to %v after it was withdrawn", mac)
	}
	if s := r.Stats(); s.RepliesSent < 2 || s.Dropped["notAnnounced"] < 2 {
		t.Errorf("Stats = %+v; want ≥ 2 replies and ≥ 2 unannounced requests", s)
	}
}

// TestLabNDPResponder: B's kernel resolves an IPv6 address no interface holds,
// and the solicited-node group is joined and left with the address.
func TestLabNDPResponder(t *testing.T) {
	l := newLab(t)
	r := l.dial(true)
	addr := netip.MustParseAddr("fd77::100")
	group := "ff02::1:ff00:100"

	if err := r.Add(addr); err != nil {
		t.Fatal(err)
	}
	if out := l.ip("-n", l.nsA, "maddr", "show", "dev", l.ifA); !strings.Contains(out, group) {
		t.Errorf("A has not joined %s:\n%s", group, out)
	}
	l.kernelNeighbor(addr, labMACA)
	if s := r.Stats(); s.RepliesSent < 1 {
		t.Errorf("Stats = %+v; want ≥ 1 reply", s)
	}
	if err := r.Remove(addr); err != nil {
		t.Fatal(err)
	}
	if out := l.ip("-n", l.nsA, "maddr", "show", "dev", l.ifA); strings.Contains(out, group) {
		t.Errorf("A still in %s after withdrawal:\n%s", group, out)
	}
}

// TestLabTakeover: B has the addresses cached at another (old owner's) hardware
// address; the Announcer's gratuitous ARP and unsolicited NA move them to A with
// no traffic from B. The interface comes from netlink and ChooseInterface.
func TestLabTakeover(t *testing.T) {
	l := newLab(t)
	old := "02:77:00:00:00:99"
	v4, v6 := netip.MustParseAddr("10.77.0.101"), netip.MustParseAddr("fd77::101")
	for _, a := range []netip.Addr{v4, v6} {
		l.ip("-n", l.nsB, "neigh", "replace", a.String(), "lladdr", old, "dev", l.ifB, "nud", "stale")
	}

	a := NewAnnouncer(Config{})
	t.Cleanup(func() { a.Close() })
	l.inA(func() error {
		topo, err := ReadTopology()
		if err != nil {
			return err
		}
		if topo.DefaultIPv4 != l.ifA || topo.DefaultIPv6 != l.ifA {
			return fmt.Errorf("default routes on %q/%q; want %s", topo.DefaultIPv4, topo.DefaultIPv6, l.ifA)
		}
		desired := make(map[netip.Addr]string)
		for _, addr := range []netip.Addr{v4, v6} {
			c, err := ChooseInterface(topo, addr, nil)
			if err != nil {
				return err
			}
			if c != (Choice{l.ifA, ChoiceConnected}) {
				return fmt.Errorf("ChooseInterface(%s) = %+v; want %s by connected subnet", addr, c, l.ifA)
			}
			desired[addr] = c.Interface
		}
		return a.Set(desired)
	})
	d4 := l.waitNeighbor(v4, labMACA, 2*time.Second)
	d6 := l.waitNeighbor(v6, labMACA, 2*time.Second)
	t.Logf("B's cache moved to A after %v (IPv4), %v (IPv6)", d4, d6)

	mac, err := l.resolveFromB(v4, 2*time.Second)
	if err != nil || !bytes.Equal(mac, labMACA) {
		t.Errorf("ARP resolve %s from B = %v, %v; want %v", v4, mac, err, labMACA)
	}
	time.Sleep(400 * time.Millisecond) // let the repeats go out
	if s := a.Stats(); s.GratuitousSent != 3*2+3 {
		t.Errorf("GratuitousSent = %d; want 9 (3 rounds × 2 ARP + 3 NA)", s.GratuitousSent)
	}
	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestLabProbe: an address that B's kernel holds is reported in use, with B's
// hardware address, for both families; a free one is not; an ignored speaker's
// answer is no conflict.
func TestLabProbe(t *testing.T) {
	l := newLab(t)
	a := NewAnnouncer(Config{})
	t.Cleanup(func() { a.Close() })
	ctx := context.Background()
	tests := []struct {
		addr   string
		ignore []net.HardwareAddr
		want   net.HardwareAddr
	}{
		{"10.77.0.2", nil, labMACB},
		{"10.77.0.77", nil, nil},
		{"10.77.0.2", []net.HardwareAddr{labMACB}, nil},
		{"fd77::2", nil, labMACB},
		{"fd77::77", nil, nil},
		{"fd77::2", []net.HardwareAddr{labMACB}, nil},
	}
	for _, tt := range tests {
		var got net.HardwareAddr
		l.inA(func() error {
			var err error
			got, err = a.Probe(ctx, netip.MustParseAddr(tt.addr), l.ifA, ProbeOptions{Wait: 200 * time.Millisecond, Ignore: tt.ignore})
			return err
		})
		if !bytes.Equal(got, tt.want) {
			t.Errorf("Probe(%s, ignore %v) = %v; want %v", tt.addr, tt.ignore, got, tt.want)
		}
	}
	if s := a.Stats(); s.ConflictsDetected != 2 {
		t.Errorf("ConflictsDetected = %d; want 2", s.ConflictsDetected)
	}
}

// TestLabWatch: address and default route changes are signalled through netlink
// subscriptions, and the channel closes when the context ends.
func TestLabWatch(t *testing.T) {
	l := newLab(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ch <-chan struct{}
	l.inA(func() error {
		var err error
		ch, err = Watch(ctx)
		return err
	})
	wait := func(what string) {
		t.Helper()
		select {
		case _, ok := <-ch:
			if !ok {
				t.Fatalf("%s: channel closed", what)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("%s: no signal", what)
		}
	}
	wait("initial")
	l.ip("-n", l.nsA, "addr", "add", "10.77.0.9/24", "dev", l.ifA)
	wait("address added")
	var topo Topology
	l.inA(func() error {
		var err error
		topo, err = ReadTopology()
		return err
	})
	i := slices.IndexFunc(topo.Links, func(k Link) bool { return k.Name == l.ifA })
	if i < 0 || !slices.Contains(topo.Links[i].Prefixes, netip.MustParsePrefix("10.77.0.9/24")) || !topo.Links[i].Up {
		t.Errorf("ReadTopology does not show 10.77.0.9/24 on an up %s: %+v", l.ifA, topo.Links)
	}
	time.Sleep(50 * time.Millisecond)
	drainSignals(ch)
	l.ip("-n", l.nsA, "route", "del", "default")
	wait("default route deleted")
	drainSignals(ch)
	l.ip("-n", l.nsA, "link", "set", l.ifA, "down")
	wait("link down")

	cancel()
	deadline := time.After(3 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("channel not closed after cancel")
		}
	}
}

// drainSignals empties a coalescing signal channel.
func drainSignals(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// TestWatchWithoutSysAdmin: in the process's own network namespace, Watch needs
// no CAP_SYS_ADMIN. The speaker's pod has only NET_RAW and NET_BIND_SERVICE; it
// crash-looped on kind when every subscription called setns(2). It runs in a
// child process: the other tests here move threads between namespaces, and a
// thread they leave behind is no process's own namespace.
func TestWatchWithoutSysAdmin(t *testing.T) {
	if os.Getenv("HERALD_WATCH_CHILD") == "1" {
		watchWithoutSysAdmin(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root, to drop a capability it has")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestWatchWithoutSysAdmin$", "-test.count=1")
	cmd.Env = append(os.Environ(), "HERALD_WATCH_CHILD=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func watchWithoutSysAdmin(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		// Capabilities are per thread: drop CAP_SYS_ADMIN on this one, and never
		// hand it back to the runtime (no UnlockOSThread: it ends with the goroutine).
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		data[0].Effective &^= 1 << unix.CAP_SYS_ADMIN
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		ch, err := Watch(ctx)
		if err == nil {
			<-ch // the first value: the subscriptions are in place
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatalf("Watch without CAP_SYS_ADMIN: %v", err)
	}
}
