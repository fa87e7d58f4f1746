//go:build linux

package layer2

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

// TestLabConflict: over a real link, A's own takeover and refresh frames (which
// its packet sockets see going out) are no conflict; B's gratuitous ARP and
// unsolicited NA for A's addresses are, with B's hardware address.
func TestLabConflict(t *testing.T) {
	l := newLab(t)
	v4, v6 := netip.MustParseAddr("10.77.0.120"), netip.MustParseAddr("fd77::120")
	ch := make(chan Conflict, 16)
	a := NewAnnouncer(Config{RefreshInterval: 50 * time.Millisecond, Conflicts: ch})
	t.Cleanup(func() { a.Close() })
	l.inA(func() error { return a.Set(map[netip.Addr]string{v4: l.ifA, v6: l.ifA}) })

	time.Sleep(500 * time.Millisecond) // the takeover's three rounds and about ten refreshes
	s := a.Stats()
	if s.GratuitousSent != 3*2+3 || s.RefreshSent < 2*3 {
		t.Errorf("GratuitousSent %d, RefreshSent %d; want 9, ≥ 6", s.GratuitousSent, s.RefreshSent)
	}
	if got := reported(ch); len(got) != 0 || s.ForeignClaimsIPv4+s.ForeignClaimsIPv6 != 0 {
		t.Fatalf("own frames reported as conflicts: %+v (claims %d/%d)", got, s.ForeignClaimsIPv4, s.ForeignClaimsIPv6)
	}

	// B claims both addresses.
	l.inB(func() error {
		ifi, err := net.InterfaceByName(l.ifB)
		if err != nil {
			return err
		}
		c, err := arp.Dial(ifi)
		if err != nil {
			return err
		}
		defer c.Close()
		p, err := arp.NewPacket(arp.OperationRequest, labMACB, v4, zeroMAC, v4)
		if err != nil {
			return err
		}
		if err := c.WriteTo(p, broadcastMAC); err != nil {
			return err
		}
		nc, _, err := ndp.Listen(ifi, ndp.Unspecified) // the link-local address may still be tentative
		if err != nil {
			return err
		}
		defer nc.Close()
		return nc.WriteTo(na(v6, false, labMACB), nil, allNodes)
	})

	got := map[netip.Addr]Conflict{}
	deadline := time.After(3 * time.Second)
	for len(got) < 2 {
		select {
		case c := <-ch:
			got[c.Addr] = c
		case <-deadline:
			t.Fatalf("conflicts reported: %+v; want for %v and %v", got, v4, v6)
		}
	}
	for addr, kind := range map[netip.Addr]ClaimKind{v4: ClaimARPAnnouncement, v6: ClaimNeighborAdvertisement} {
		if c := got[addr]; c.Interface != l.ifA || !bytes.Equal(c.HardwareAddr, labMACB) || c.Kind != kind {
			t.Errorf("Conflict = %+v; want %v on %s by %v (%v)", c, addr, l.ifA, labMACB, kind)
		}
	}
	if s := a.Stats(); s.ForeignClaimsIPv4 != 1 || s.ForeignClaimsIPv6 != 1 {
		t.Errorf("ForeignClaims = %d/%d; want 1/1", s.ForeignClaimsIPv4, s.ForeignClaimsIPv6)
	}
}

// TestLabRefresh: B's kernel, whose cache missed the takeover (it still points
// at an old owner), is moved back to A by the periodic refresh alone.
func TestLabRefresh(t *testing.T) {
	l := newLab(t)
	const interval = 300 * time.Millisecond
	v4, v6 := netip.MustParseAddr("10.77.0.121"), netip.MustParseAddr("fd77::121")
	a := NewAnnouncer(Config{RefreshInterval: interval})
	t.Cleanup(func() { a.Close() })
	l.inA(func() error { return a.Set(map[netip.Addr]string{v4: l.ifA, v6: l.ifA}) })
	time.Sleep(400 * time.Millisecond) // past the takeover's rounds (0-300 ms)

	old := "02:77:00:00:00:99"
	for _, addr := range []netip.Addr{v4, v6} {
		l.ip("-n", l.nsB, "neigh", "replace", addr.String(), "lladdr", old, "dev", l.ifB, "nud", "stale")
	}
	d4 := l.waitNeighbor(v4, labMACA, 3*interval)
	d6 := l.waitNeighbor(v6, labMACA, 3*interval)
	t.Logf("B's stale entries moved back to A by the refresh after %v (IPv4), %v (IPv6)", d4, d6)
	if s := a.Stats(); s.RefreshSent == 0 {
		t.Error("RefreshSent = 0")
	}
}
