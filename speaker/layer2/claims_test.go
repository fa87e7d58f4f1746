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

// na builds a Neighbor Advertisement for target with the given target
// link-layer address (none if nil).
func na(target netip.Addr, solicited bool, lla net.HardwareAddr) *ndp.NeighborAdvertisement {
	m := &ndp.NeighborAdvertisement{Solicited: solicited, Override: true, TargetAddress: target}
	if lla != nil {
		m.Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: lla}}
	}
	return m
}

// withConflicts gives r a conflicts channel of the given room.
func withConflicts(r *Responder, room int) chan Conflict {
	ch := make(chan Conflict, room)
	r.conflicts = ch
	return ch
}

// reported returns the Conflicts waiting in ch.
func reported(ch chan Conflict) []Conflict {
	var out []Conflict
	for {
		select {
		case c := <-ch:
			out = append(out, c)
		default:
			return out
		}
	}
}

func TestARPClaims(t *testing.T) {
	other := netip.MustParseAddr("10.77.0.101") // not announced
	tests := []struct {
		name  string
		frame func(t *testing.T) []byte
		want  ClaimKind // 0: no conflict
	}{
		{"gratuitous request from another host", func(t *testing.T) []byte {
			return arpFrame(t, arp.OperationRequest, peerMAC, vip4, zeroMAC, vip4)
		}, ClaimARPAnnouncement},
		{"gratuitous reply from another host", func(t *testing.T) []byte {
			return arpFrame(t, arp.OperationReply, peerMAC, vip4, peerMAC, vip4)
		}, ClaimARPAnnouncement},
		{"reply from another host", func(t *testing.T) []byte {
			return arpFrame(t, arp.OperationReply, peerMAC, vip4, speakerMAC, peer4)
		}, ClaimARPReply},
		{"request sent from the address", func(t *testing.T) []byte {
			return arpFrame(t, arp.OperationRequest, peerMAC, vip4, zeroMAC, peer4)
		}, ClaimARPRequest},
		{"probe for the address", func(t *testing.T) []byte {
			return arpFrame(t, arp.OperationRequest, peerMAC, netip.IPv4Unspecified(), zeroMAC, vip4)
		}, 0},
		{"request for the address", func(t *testing.T) []byte {
			return arpFrame(t, arp.OperationRequest, peerMAC, peer4, zeroMAC, vip4)
		}, 0},
		{"gratuitous for another address", func(t *testing.T) []byte {
			return arpFrame(t, arp.OperationRequest, peerMAC, other, zeroMAC, other)
		}, 0},
		{"gratuitous from our hardware address", func(t *testing.T) []byte {
			return arpFrame(t, arp.OperationRequest, ourMAC, vip4, zeroMAC, vip4)
		}, 0},
		{"gratuitous with a multicast sender", func(t *testing.T) []byte {
			return arpFrame(t, arp.OperationRequest, net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}, vip4, zeroMAC, vip4)
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := newTestARP(t)
			ch := withConflicts(r, 4)
			if err := r.Add(vip4); err != nil {
				t.Fatal(err)
			}
			before := time.Now()
			if _, err := r.handle(tt.frame(t)); err != nil {
				t.Fatal(err)
			}
			got := reported(ch)
			checkClaim(t, got, tt.want, vip4, before)
			want := uint64(0)
			if tt.want != 0 {
				want = 1
			}
			if s := r.Stats(); s.ForeignClaimsIPv4 != want || s.ForeignClaimsIPv6 != 0 {
				t.Errorf("ForeignClaims = %d/%d; want %d/0", s.ForeignClaimsIPv4, s.ForeignClaimsIPv6, want)
			}
		})
	}
}

func TestNDPClaims(t *testing.T) {
	snm := solicitedNode(t, vip6)
	other := netip.MustParseAddr("fd77::101")
	tests := []struct {
		name  string
		frame func(t *testing.T) []byte
		want  ClaimKind
	}{
		{"unsolicited NA from another host", func(t *testing.T) []byte {
			return ndpFrame(t, peerMAC, multicastMAC(allNodes), peer6, allNodes, 255, na(vip6, false, peerMAC))
		}, ClaimNeighborAdvertisement},
		{"solicited NA from another host", func(t *testing.T) []byte {
			return ndpFrame(t, peerMAC, speakerMAC, peer6, netip.MustParseAddr("fd77::3"), 255, na(vip6, true, peerMAC))
		}, ClaimNeighborAdvertisement},
		{"NA without a link-layer option", func(t *testing.T) []byte {
			return ndpFrame(t, peerMAC, multicastMAC(allNodes), peer6, allNodes, 255, na(vip6, false, nil))
		}, ClaimNeighborAdvertisement},
		{"NS sent from the address", func(t *testing.T) []byte {
			g := solicitedNode(t, peer6)
			return ndpFrame(t, peerMAC, multicastMAC(g), vip6, g, 255, ns(peer6, sourceLLA(peerMAC)))
		}, ClaimNeighborSolicitation},
		{"NS for the address", func(t *testing.T) []byte {
			return ndpFrame(t, peerMAC, multicastMAC(snm), peer6, snm, 255, ns(vip6, sourceLLA(peerMAC)))
		}, 0},
		{"DAD for the address", func(t *testing.T) []byte {
			return ndpFrame(t, peerMAC, multicastMAC(snm), netip.IPv6Unspecified(), snm, 255, ns(vip6))
		}, 0},
		{"NA for another address", func(t *testing.T) []byte {
			return ndpFrame(t, peerMAC, multicastMAC(allNodes), peer6, allNodes, 255, na(other, false, peerMAC))
		}, 0},
		{"NA relayed for our hardware address", func(t *testing.T) []byte {
			return ndpFrame(t, peerMAC, multicastMAC(allNodes), peer6, allNodes, 255, na(vip6, false, ourMAC))
		}, 0},
		{"NA from our hardware address", func(t *testing.T) []byte {
			return ndpFrame(t, ourMAC, multicastMAC(allNodes), peer6, allNodes, 255, na(vip6, false, peerMAC))
		}, 0},
		{"NA with a bad hop limit", func(t *testing.T) []byte {
			return ndpFrame(t, peerMAC, multicastMAC(allNodes), peer6, allNodes, 64, na(vip6, false, peerMAC))
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _, _ := newTestNDP(t)
			ch := withConflicts(r, 4)
			if err := r.Add(vip6); err != nil {
				t.Fatal(err)
			}
			before := time.Now()
			if _, err := r.handle(tt.frame(t)); err != nil {
				t.Fatal(err)
			}
			checkClaim(t, reported(ch), tt.want, vip6, before)
			want := uint64(0)
			if tt.want != 0 {
				want = 1
			}
			if s := r.Stats(); s.ForeignClaimsIPv6 != want || s.ForeignClaimsIPv4 != 0 {
				t.Errorf("ForeignClaims = %d/%d; want 0/%d", s.ForeignClaimsIPv4, s.ForeignClaimsIPv6, want)
			}
		})
	}
}

// checkClaim checks that got holds exactly the Conflict expected: a claim of
// addr by peerMAC on test0 of kind want, seen after before; or none if want is 0.
func checkClaim(t *testing.T, got []Conflict, want ClaimKind, addr netip.Addr, before time.Time) {
	t.Helper()
	if want == 0 {
		if len(got) != 0 {
			t.Errorf("reported %+v; want no conflict", got)
		}
		return
	}
	if len(got) != 1 {
		t.Fatalf("reported %d conflicts (%+v); want 1", len(got), got)
	}
	c := got[0]
	if c.Addr != addr || c.Interface != "test0" || !bytes.Equal(c.HardwareAddr, peerMAC) || c.Kind != want || c.Time.Before(before) {
		t.Errorf("Conflict = %+v; want %v on test0 claimed by %v (%v) after %v", c, addr, peerMAC, want, before)
	}
}

// TestOwnAnnouncementsAreNoConflict: a Responder's own gratuitous frames, as its
// packet socket sees them again (it sees outgoing frames, and a looped network
// returns them), are never a conflict.
func TestOwnAnnouncementsAreNoConflict(t *testing.T) {
	r4, c4 := newTestARP(t)
	r6, c6, _ := newTestNDP(t)
	ch4, ch6 := withConflicts(r4, 8), withConflicts(r6, 8)
	for _, tt := range []struct {
		r    *Responder
		c    *memConn
		addr netip.Addr
	}{{r4, c4, vip4}, {r6, c6, vip6}} {
		if err := tt.r.Add(tt.addr); err != nil {
			t.Fatal(err)
		}
		if err := tt.r.Gratuitous(tt.addr); err != nil {
			t.Fatal(err)
		}
		sent := tt.c.frames()
		if len(sent) == 0 {
			t.Fatal("nothing sent")
		}
		for _, s := range sent {
			if reason, err := tt.r.handle(s.frame); reason != dropFromSelf || err != nil {
				t.Errorf("own frame handled as %v, %v; want fromSelf", reason, err)
			}
		}
	}
	if got := append(reported(ch4), reported(ch6)...); len(got) != 0 {
		t.Errorf("own announcements reported as conflicts: %+v", got)
	}
	if s := r4.Stats().add(r6.Stats()); s.ForeignClaimsIPv4+s.ForeignClaimsIPv6 != 0 {
		t.Errorf("ForeignClaims = %d/%d; want 0/0", s.ForeignClaimsIPv4, s.ForeignClaimsIPv6)
	}
}

// TestConflictRateLimit: a flood of claims for one address is counted in full
// but reported once per conflictReportInterval; a report the channel has no room
// for is dropped, counted, and does not hold back the next.
func TestConflictRateLimit(t *testing.T) {
	r, _ := newTestARP(t)
	ch := withConflicts(r, 1)
	other := netip.MustParseAddr("10.77.0.101")
	for _, a := range []netip.Addr{vip4, other} {
		if err := r.Add(a); err != nil {
			t.Fatal(err)
		}
	}
	claim := func(a netip.Addr) []byte { return arpFrame(t, arp.OperationRequest, peerMAC, a, zeroMAC, a) }

	for range 100 {
		r.handle(claim(vip4))
	}
	if got := reported(ch); len(got) != 1 {
		t.Fatalf("100 claims within a second reported %d times; want 1", len(got))
	}
	if s := r.Stats(); s.ForeignClaimsIPv4 != 100 || s.ConflictReportsDropped != 0 {
		t.Errorf("ForeignClaimsIPv4 = %d, ConflictReportsDropped = %d; want 100, 0", s.ForeignClaimsIPv4, s.ConflictReportsDropped)
	}

	// Another address has its own limit, but the channel is full.
	r.handle(claim(vip4)) // still limited: leaves the channel empty
	select {
	case ch <- Conflict{}: // the owner is slow
	default:
		t.Fatal("a claim within the quiet second was reported")
	}
	r.handle(claim(other))
	if s := r.Stats(); s.ConflictReportsDropped != 1 {
		t.Errorf("ConflictReportsDropped = %d; want 1", s.ConflictReportsDropped)
	}
	<-ch
	r.handle(claim(other)) // the drop started no quiet period
	if got := reported(ch); len(got) != 1 || got[0].Addr != other {
		t.Errorf("after a drop reported %+v; want one conflict for %v", got, other)
	}

	// Once the interval has passed, the next claim is reported again.
	r.mu.Lock()
	r.lastReport[vip4] = time.Now().Add(-conflictReportInterval)
	r.mu.Unlock()
	r.handle(claim(vip4))
	if got := reported(ch); len(got) != 1 || got[0].Addr != vip4 {
		t.Errorf("after the interval reported %+v; want one conflict for %v", got, vip4)
	}

	// A withdrawn address is nobody's conflict, and its limit is forgotten.
	if err := r.Remove(vip4); err != nil {
		t.Fatal(err)
	}
	r.handle(claim(vip4))
	if got := reported(ch); len(got) != 0 {
		t.Errorf("claims of a withdrawn address reported: %+v", got)
	}
	r.mu.Lock()
	_, kept := r.lastReport[vip4]
	r.mu.Unlock()
	if kept {
		t.Error("rate limit of a withdrawn address kept")
	}
}

func TestClaimKindString(t *testing.T) {
	for k := ClaimARPReply; k <= ClaimNeighborSolicitation; k++ {
		if s := k.String(); s == "" || s == "unknown" {
			t.Errorf("ClaimKind(%d).String() = %q", k, s)
		}
	}
	if got := ClaimKind(0).String(); got != "unknown" {
		t.Errorf("ClaimKind(0).String() = %q; want unknown", got)
	}
}

// TestAnnouncerConflicts: an Announcer reports claims from other hosts on its
// Config.Conflicts channel, with the interface, but not those of its own
// interfaces, nor of addresses it no longer announces.
func TestAnnouncerConflicts(t *testing.T) {
	n := newFakeNet("eth0", "eth1")
	ch := make(chan Conflict, 8)
	a := n.announcerWith(t, Config{GratuitousSchedule: []time.Duration{}, Conflicts: ch})
	v4b := netip.MustParseAddr("10.77.0.101")
	if err := a.Set(map[netip.Addr]string{vip4: "eth0", vip6: "eth0", v4b: "eth1"}); err != nil {
		t.Fatal(err)
	}
	eth1MAC := n.ifaces["eth1"].HardwareAddr
	c4, c6 := n.conn("eth0/IPv4"), n.conn("eth0/IPv6")

	// Frames from eth1 (this node, on the same LAN) claim nothing.
	c4.deliver(arpFrame(t, arp.OperationRequest, eth1MAC, vip4, zeroMAC, vip4))
	// Another host claims both families' addresses.
	c4.deliver(arpFrame(t, arp.OperationRequest, peerMAC, vip4, zeroMAC, vip4))
	c6.deliver(ndpFrame(t, peerMAC, multicastMAC(allNodes), peer6, allNodes, 255, na(vip6, false, peerMAC)))

	got := map[netip.Addr]Conflict{}
	for len(got) < 2 {
		select {
		case c := <-ch:
			if _, dup := got[c.Addr]; dup {
				t.Fatalf("second conflict for %v: %+v", c.Addr, c)
			}
			got[c.Addr] = c
		case <-time.After(5 * time.Second):
			t.Fatalf("conflicts reported: %+v; want for %v and %v", got, vip4, vip6)
		}
	}
	for _, want := range []struct {
		addr netip.Addr
		kind ClaimKind
	}{{vip4, ClaimARPAnnouncement}, {vip6, ClaimNeighborAdvertisement}} {
		c := got[want.addr]
		if c.Interface != "eth0" || !bytes.Equal(c.HardwareAddr, peerMAC) || c.Kind != want.kind {
			t.Errorf("Conflict = %+v; want %v on eth0 by %v (%v)", c, want.addr, peerMAC, want.kind)
		}
	}
	s := a.Stats()
	if s.ForeignClaimsIPv4 != 1 || s.ForeignClaimsIPv6 != 1 {
		t.Errorf("ForeignClaims = %d/%d; want 1/1 (eth1's frame is ours)", s.ForeignClaimsIPv4, s.ForeignClaimsIPv6)
	}

	// Withdrawn: no more conflicts for it.
	if err := a.Set(map[netip.Addr]string{vip6: "eth0", v4b: "eth1"}); err != nil {
		t.Fatal(err)
	}
	c6.deliver(ndpFrame(t, peerMAC, multicastMAC(allNodes), peer6, allNodes, 255, na(vip6, false, peerMAC)))
	n.conn("eth1/IPv4").deliver(arpFrame(t, arp.OperationRequest, peerMAC, vip4, zeroMAC, vip4))
	time.Sleep(50 * time.Millisecond)
	if got := reported(ch); len(got) != 0 {
		t.Errorf("reported %+v; want nothing (vip6 within its quiet second, %v withdrawn)", got, vip4)
	}
}
