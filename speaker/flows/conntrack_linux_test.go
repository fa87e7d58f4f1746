//go:build linux

package flows

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// inNewNetns locks the calling goroutine to its thread and moves the thread into
// a new network namespace, whose conntrack table is its own and empty; the
// function it returns moves it back. It skips tb without root.
func inNewNetns(tb testing.TB) (back func()) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root for a network namespace and its conntrack table")
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatal(err)
	}
	ns, err := netns.New()
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		tb.Skipf("creating a network namespace: %v", err)
	}
	return func() {
		defer orig.Close()
		defer ns.Close()
		if err := netns.Set(orig); err != nil {
			// The thread stays locked, so it ends with the goroutine
			// rather than run other code in the test's namespace.
			tb.Errorf("back to the original network namespace: %v", err)
			return
		}
		runtime.UnlockOSThread()
	}
}

// TestConntrackDeletesOnlyUntranslatedFlows writes flows into the kernel's
// conntrack table of a new network namespace and has Conntrack delete.
func TestConntrackDeletesOnlyUntranslatedFlows(t *testing.T) {
	defer inNewNetns(t)()

	const vip, vip6, other = "172.18.255.200", "fc00::c8", "172.18.255.201"
	flows := []*netlink.ConntrackFlow{
		flowFrom(40001, unix.IPPROTO_TCP, tcpSynSent, vip, vip, 80, 80),                // deleted
		flowFrom(40002, unix.IPPROTO_TCP, tcpSynSent, vip, "10.244.1.7", 80, 8080),     // kube-proxy's DNAT: kept
		flowFrom(40003, unix.IPPROTO_TCP, 3, vip, vip, 81, 81),                         // answered: kept
		flowFrom(40004, unix.IPPROTO_TCP, tcpSynSent, other, other, 80, 80),            // not asked about: kept
		flowFrom(40005, unix.IPPROTO_TCP, tcpSynSent, vip6, vip6, 443, 443),            // deleted
		flowFrom(40006, unix.IPPROTO_TCP, tcpSynSent, vip6, "fd00:10:244::7", 443, 80), // kept
	}
	for _, f := range flows {
		f.TimeOut = 120
		fam := netlink.InetFamily(unix.AF_INET)
		if f.Forward.DstIP.To4() == nil {
			fam = unix.AF_INET6
		}
		f.FamilyType = uint8(fam)
		if err := netlink.ConntrackCreate(netlink.ConntrackTable, fam, f); err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPROTONOSUPPORT) {
				t.Skipf("no conntrack in this kernel: %v", err)
			}
			t.Fatalf("creating %v: %v", f, err)
		}
	}
	got, err := Conntrack{}.DeleteUntranslated([]netip.Addr{netip.MustParseAddr(vip), netip.MustParseAddr(vip6)})
	if err != nil {
		t.Fatal(err)
	}
	if got[netip.MustParseAddr(vip)] != 1 || got[netip.MustParseAddr(vip6)] != 1 || len(got) != 2 {
		t.Errorf("deleted %v; want one flow to each address", got)
	}
	left := 0
	for _, fam := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
		l, err := netlink.ConntrackTableList(netlink.ConntrackTable, fam)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range l {
			if Untranslated(f) && (f.Forward.DstIP.Equal(net.ParseIP(vip)) || f.Forward.DstIP.Equal(net.ParseIP(vip6))) {
				t.Errorf("left: %v", f)
			}
			left++
		}
	}
	if left != 4 {
		t.Errorf("%d flows left; want the 4 others", left)
	}
}

// BenchmarkSweep50k is one sweep (one dump of the table, matches deleted) of a
// node's conntrack table holding 50,000 answered, translated flows and 8
// untranslated ones: what a busy node pays at each of the nine marks of a new
// address's first minute.
func BenchmarkSweep50k(b *testing.B) {
	defer inNewNetns(b)()
	const vip = "172.18.255.200"
	for i := range 50_000 {
		f := flowFrom(uint16(1024+i%60000), unix.IPPROTO_TCP, 3, fmt.Sprintf("10.96.%d.%d", i/60000, 10), fmt.Sprintf("10.244.%d.%d", i%200, 1+i%250), 80, 8080)
		f.TimeOut = 600
		f.FamilyType = unix.AF_INET
		if err := netlink.ConntrackCreate(netlink.ConntrackTable, unix.AF_INET, f); err != nil {
			b.Skipf("creating flow %d: %v", i, err)
		}
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for p := range 8 {
			f := flowFrom(uint16(61000+p), unix.IPPROTO_TCP, tcpSynSent, vip, vip, 80, 80)
			f.TimeOut, f.FamilyType = 120, unix.AF_INET
			if err := netlink.ConntrackCreate(netlink.ConntrackTable, unix.AF_INET, f); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		got, err := Conntrack{}.DeleteUntranslated([]netip.Addr{netip.MustParseAddr(vip)})
		if err != nil || got[netip.MustParseAddr(vip)] != 8 {
			b.Fatalf("deleted %v, %v; want 8", got, err)
		}
	}
}
