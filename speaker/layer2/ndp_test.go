package layer2

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

func ns(target netip.Addr, opts ...ndp.Option) *ndp.NeighborSolicitation {
	return &ndp.NeighborSolicitation{TargetAddress: target, Options: opts}
}

func sourceLLA(mac net.HardwareAddr) ndp.Option {
	return &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}
}

func TestNDPAnswersAnnouncedAddress(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []ndp.Option
	}{
		{"with source link-layer option", []ndp.Option{sourceLLA(peerMAC)}},
		{"without source link-layer option", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, c, _ := newTestNDP(t)
			if err := r.Add(vip6); err != nil {
				t.Fatal(err)
			}
			snm := solicitedNode(t, vip6)
			got, err := r.handle(ndpFrame(t, peerMAC, multicastMAC(snm), peer6, snm, 255, ns(vip6, tt.opts...)))
			if err != nil || got != dropNone {
				t.Fatalf("handle = %v, %v; want none, nil", got, err)
			}
			sent := c.frames()
			if len(sent) != 1 {
				t.Fatalf("sent %d frames; want 1", len(sent))
			}
			f, h, m := parseNDP(t, sent[0].frame)
			if !bytes.Equal(f.Destination, peerMAC) || !bytes.Equal(f.Source, ourMAC) {
				t.Errorf("Ethernet %v → %v; want %v → %v", f.Source, f.Destination, ourMAC, peerMAC)
			}
			// The test interface has no link-local address, so the target is the source.
			if h.src != vip6 || h.dst != peer6 {
				t.Errorf("IPv6 %v → %v; want %v → %v", h.src, h.dst, vip6, peer6)
			}
			na, ok := m.(*ndp.NeighborAdvertisement)
			if !ok {
				t.Fatalf("sent %T; want a Neighbor Advertisement", m)
			}
			if !na.Solicited || !na.Override || na.Router || na.TargetAddress != vip6 ||
				!bytes.Equal(linkLayerOption(na.Options, ndp.Target), ourMAC) {
				t.Errorf("NA = %+v; want solicited, override, target %v at %v", na, vip6, ourMAC)
			}
		})
	}
}

// TestNDPDefendsAgainstDAD: duplicate address detection for an address we
// announce is answered at all-nodes, unsolicited (RFC 4861, section 7.2.4).
func TestNDPDefendsAgainstDAD(t *testing.T) {
	r, c, _ := newTestNDP(t)
	if err := r.Add(vip6); err != nil {
		t.Fatal(err)
	}
	snm := solicitedNode(t, vip6)
	if got, err := r.handle(ndpFrame(t, peerMAC, multicastMAC(snm), netip.IPv6Unspecified(), snm, 255, ns(vip6))); got != dropNone || err != nil {
		t.Fatalf("handle = %v, %v; want none, nil", got, err)
	}
	sent := c.frames()
	if len(sent) != 1 {
		t.Fatalf("sent %d frames; want 1", len(sent))
	}
	f, h, m := parseNDP(t, sent[0].frame)
	na := m.(*ndp.NeighborAdvertisement)
	if h.dst != allNodes || !bytes.Equal(f.Destination, net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}) || na.Solicited || !na.Override {
		t.Errorf("NA %+v to %v/%v; want unsolicited, override, to ff02::1", na, h.dst, f.Destination)
	}
}

func TestNDPDropReasons(t *testing.T) {
	snm := solicitedNode(t, vip6)
	snmMAC := multicastMAC(snm)
	tests := []struct {
		name  string
		frame func(t *testing.T) []byte
		want  dropReason
	}{
		{"not announced", func(t *testing.T) []byte {
			other := netip.MustParseAddr("fd77::101")
			g := solicitedNode(t, other)
			return ndpFrame(t, peerMAC, multicastMAC(g), peer6, g, 255, ns(other, sourceLLA(peerMAC)))
		}, dropNotAnnounced},
		{"advertisement", func(t *testing.T) []byte {
			return ndpFrame(t, peerMAC, ourMAC, peer6, vip6, 255, &ndp.NeighborAdvertisement{Solicited: true, TargetAddress: peer6})
		}, dropNotRequest},
		{"from self", func(t *testing.T) []byte {
			return ndpFrame(t, ourMAC, snmMAC, peer6, snm, 255, ns(vip6))
		}, dropFromSelf},
		{"hop limit not 255", func(t *testing.T) []byte {
			return ndpFrame(t, peerMAC, snmMAC, peer6, snm, 64, ns(vip6))
		}, dropMalformed},
		{"bad checksum", func(t *testing.T) []byte {
			b := ndpFrame(t, peerMAC, snmMAC, peer6, snm, 255, ns(vip6))
			b[14+40+2] ^= 0xff
			return b
		}, dropMalformed},
		{"truncated IPv6", func(t *testing.T) []byte {
			return ndpFrame(t, peerMAC, snmMAC, peer6, snm, 255, ns(vip6))[:14+30]
		}, dropMalformed},
		{"payload length beyond frame", func(t *testing.T) []byte {
			b := ndpFrame(t, peerMAC, snmMAC, peer6, snm, 255, ns(vip6))
			b[14+4], b[14+5] = 0xff, 0xff
			return b
		}, dropMalformed},
		{"UDP", func(t *testing.T) []byte {
			return ipv6Frame(t, peerMAC, snmMAC, peer6, snm, 255, 17, make([]byte, 8))
		}, dropWrongProtocol},
		{"echo request", func(t *testing.T) []byte {
			return ipv6Frame(t, peerMAC, snmMAC, peer6, snm, 255, protoICMPv6, []byte{128, 0, 0, 0, 0, 0, 0, 0})
		}, dropWrongProtocol},
		{"ARP frame", func(t *testing.T) []byte {
			return ethFrame(t, peerMAC, broadcastMAC, ethernet.EtherTypeARP, make([]byte, 28))
		}, dropWrongProtocol},
		{"DAD with source link-layer option", func(t *testing.T) []byte {
			return ndpFrame(t, peerMAC, snmMAC, netip.IPv6Unspecified(), snm, 255, ns(vip6, sourceLLA(peerMAC)))
		}, dropMalformed},
		{"DAD not to solicited-node group", func(t *testing.T) []byte {
			return ndpFrame(t, peerMAC, ourMAC, netip.IPv6Unspecified(), vip6, 255, ns(vip6))
		}, dropMalformed},
		{"solicited advertisement to multicast", func(t *testing.T) []byte {
			return ndpFrame(t, peerMAC, snmMAC, peer6, allNodes, 255, &ndp.NeighborAdvertisement{Solicited: true, TargetAddress: peer6})
		}, dropMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, c, _ := newTestNDP(t)
			if err := r.Add(vip6); err != nil {
				t.Fatal(err)
			}
			got, err := r.handle(tt.frame(t))
			if err != nil {
				t.Fatalf("handle: %v", err)
			}
			if got != tt.want {
				t.Errorf("drop reason = %q; want %q", got, tt.want)
			}
			if n := len(c.frames()); n != 0 {
				t.Errorf("sent %d frames; want none", n)
			}
		})
	}
}

func TestNDPGroupMembership(t *testing.T) {
	r, _, g := newTestNDP(t)
	// Both addresses end in 00:01:00, so they share one solicited-node group.
	a, b := netip.MustParseAddr("fd77::100"), netip.MustParseAddr("fd77::1:0:100")
	grp := solicitedNode(t, a)
	if solicitedNode(t, b) != grp {
		t.Fatal("test addresses do not share a group")
	}
	for _, addr := range []netip.Addr{a, b, b} {
		if err := r.Add(addr); err != nil {
			t.Fatal(err)
		}
	}
	if g.joined[grp] != 1 {
		t.Errorf("joined %v %d times; want 1", grp, g.joined[grp])
	}
	if err := r.Remove(a); err != nil {
		t.Fatal(err)
	}
	if g.joined[grp] != 1 {
		t.Errorf("left %v while %v still needs it", grp, b)
	}
	if err := r.Remove(b); err != nil {
		t.Fatal(err)
	}
	if len(g.joined) != 0 {
		t.Errorf("still joined %v; want none", g.joined)
	}

	g.joinErr = errors.New("no buffer space")
	if err := r.Add(a); err == nil {
		t.Error("Add succeeded though joining the group failed")
	}
	if got := r.Announced(); len(got) != 0 {
		t.Errorf("Announced = %v after a failed Add; want none", got)
	}
	if err := r.Add(peer4); err == nil {
		t.Error("NDP Add of an IPv4 address succeeded")
	}
	r.Close()
	r.Close()
	if g.closed != 1 {
		t.Errorf("group socket closed %d times; want 1", g.closed)
	}
}

func TestNDPGratuitous(t *testing.T) {
	r, c, _ := newTestNDP(t)
	if err := r.Add(vip6); err != nil {
		t.Fatal(err)
	}
	if err := r.Gratuitous(vip6); err != nil {
		t.Fatalf("Gratuitous: %v", err)
	}
	sent := c.frames()
	if len(sent) != 1 {
		t.Fatalf("sent %d frames; want 1", len(sent))
	}
	f, h, m := parseNDP(t, sent[0].frame)
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok || na.Solicited || !na.Override || na.TargetAddress != vip6 || !bytes.Equal(linkLayerOption(na.Options, ndp.Target), ourMAC) {
		t.Errorf("sent %+v; want unsolicited override NA for %v at %v", m, vip6, ourMAC)
	}
	if h.dst != allNodes || !bytes.Equal(f.Destination, multicastMAC(allNodes)) {
		t.Errorf("sent to %v/%v; want ff02::1", h.dst, f.Destination)
	}
}

func TestNDPProbe(t *testing.T) {
	addr := netip.MustParseAddr("fd77::50")
	r, c, _ := newTestNDP(t)
	r.Start()
	res := startProbe(r, context.Background(), addr, ProbeOptions{Wait: 10 * time.Second, Count: 1})
	sent := c.waitFrames(1, 5*time.Second)
	if len(sent) != 1 {
		t.Fatalf("sent %d frames; want 1 probe", len(sent))
	}
	f, h, m := parseNDP(t, sent[0].frame)
	snm := solicitedNode(t, addr)
	nsm, ok := m.(*ndp.NeighborSolicitation)
	if !ok || nsm.TargetAddress != addr || len(nsm.Options) != 0 || !h.src.IsUnspecified() || h.dst != snm ||
		!bytes.Equal(f.Destination, multicastMAC(snm)) {
		t.Errorf("probe %+v from %v to %v/%v; want DAD NS for %v from :: to %v", m, h.src, h.dst, f.Destination, addr, snm)
	}
	// The owner answers DAD at all-nodes; the link-layer option names it.
	c.deliver(ndpFrame(t, peerMAC, multicastMAC(allNodes), peer6, allNodes, 255, &ndp.NeighborAdvertisement{
		Override: true, TargetAddress: addr, Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: peerMAC}},
	}))
	select {
	case got := <-res:
		if got.err != nil || !bytes.Equal(got.mac, peerMAC) {
			t.Errorf("Probe = %v, %v; want %v, nil", got.mac, got.err, peerMAC)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Probe did not return after an answer")
	}
}

func TestNDPProbeSeesOtherDAD(t *testing.T) {
	addr := netip.MustParseAddr("fd77::50")
	r, c, _ := newTestNDP(t)
	r.Start()
	res := startProbe(r, context.Background(), addr, ProbeOptions{Wait: 10 * time.Second, Count: 1})
	c.waitFrames(1, 5*time.Second)
	snm := solicitedNode(t, addr)
	c.deliver(ndpFrame(t, speakerMAC, multicastMAC(snm), netip.IPv6Unspecified(), snm, 255, ns(addr)))
	if got := <-res; got.err != nil || !bytes.Equal(got.mac, speakerMAC) {
		t.Errorf("Probe = %v, %v; want %v, nil", got.mac, got.err, speakerMAC)
	}
}

func TestFirstLinkLocal(t *testing.T) {
	addrs := []net.Addr{
		&net.IPNet{IP: net.ParseIP("10.77.0.1"), Mask: net.CIDRMask(24, 32)},
		&net.IPNet{IP: net.ParseIP("fd77::1"), Mask: net.CIDRMask(64, 128)},
		&net.IPNet{IP: net.ParseIP("fe80::77:1"), Mask: net.CIDRMask(64, 128)},
	}
	if got, want := firstLinkLocal(addrs), netip.MustParseAddr("fe80::77:1"); got != want {
		t.Errorf("firstLinkLocal = %v; want %v", got, want)
	}
	if got := firstLinkLocal(addrs[:2]); got.IsValid() {
		t.Errorf("firstLinkLocal = %v; want none", got)
	}
}

// TestICMPv6Checksum checks icmpv6Checksum against golang.org/x/net/icmp's,
// which ndp.MarshalMessageChecksum uses, for even and odd lengths.
func TestICMPv6Checksum(t *testing.T) {
	src, dst := netip.MustParseAddr("fe80::1"), netip.MustParseAddr("ff02::1:ff00:2")
	b, err := ndp.MarshalMessageChecksum(ns(netip.MustParseAddr("fe80::2"), sourceLLA(peerMAC)), src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if c := icmpv6Checksum(src, dst, b); c != 0 {
		t.Errorf("residue over a checksummed message = %#x; want 0", c)
	}
	want := uint16(b[2])<<8 | uint16(b[3])
	b[2], b[3] = 0, 0
	if got := icmpv6Checksum(src, dst, b); got != want {
		t.Errorf("checksum = %#04x; want %#04x", got, want)
	}
	// Odd length: checked against x/net/icmp's own checksum, not ours.
	odd := append(b, 0x5a)
	odd[2], odd[3] = 0, 0
	ref, err := (&icmp.Message{Type: ipv6.ICMPTypeNeighborSolicitation, Body: &icmp.RawBody{Data: odd[4:]}}).
		Marshal(icmp.IPv6PseudoHeader(net.IP(src.AsSlice()), net.IP(dst.AsSlice())))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := icmpv6Checksum(src, dst, odd), uint16(ref[2])<<8|uint16(ref[3]); got != want {
		t.Errorf("odd length: checksum = %#04x; x/net/icmp says %#04x", got, want)
	}
}
