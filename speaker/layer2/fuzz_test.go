package layer2

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

// FuzzARPHandle feeds arbitrary frames to the ARP handler, which must never
// panic, never answer for an address it does not announce, and report as a
// conflict only a claim of an announced address by another hardware address.
func FuzzARPHandle(f *testing.F) {
	f.Add(arpFrame(f, arp.OperationRequest, peerMAC, peer4, zeroMAC, vip4))
	f.Add(arpFrame(f, arp.OperationRequest, peerMAC, netip.IPv4Unspecified(), zeroMAC, vip4))
	f.Add(arpFrame(f, arp.OperationReply, peerMAC, vip4, ourMAC, peer4))
	// Address lengths that lie: arp.Packet trusts them when sizing buffers.
	f.Add(ethFrame(f, peerMAC, broadcastMAC, ethernet.EtherTypeARP, []byte{0, 1, 8, 0, 255, 255, 0, 1}))
	f.Add(ethFrame(f, peerMAC, broadcastMAC, ethernet.EtherTypeARP, []byte{0, 1, 8, 0, 0, 0, 0, 1}))
	// A VLAN tag in front of ARP.
	f.Add(append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 2, 0x81, 0, 0, 100, 0x08, 0x06}, make([]byte, 28)...))
	f.Add([]byte{})
	// Claims of the announced address: gratuitous, reply, request from it.
	f.Add(arpFrame(f, arp.OperationRequest, peerMAC, vip4, zeroMAC, vip4))
	f.Add(arpFrame(f, arp.OperationReply, peerMAC, vip4, peerMAC, vip4))
	f.Add(arpFrame(f, arp.OperationRequest, peerMAC, vip4, zeroMAC, peer4))

	r, c := newTestARP(f)
	conflicts := make(chan Conflict, 1)
	r.conflicts = conflicts
	if err := r.Add(vip4); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		reason, _ := r.handle(b)
		checkFuzzConflicts(t, r, conflicts, vip4)
		sent := c.frames()
		if reason != dropNone && len(sent) != 0 {
			t.Fatalf("dropped (%s) but sent %d frames", reason, len(sent))
		}
		for _, s := range sent {
			_, p := parseARP(t, s.frame)
			if p.SenderIP != vip4 {
				t.Fatalf("answered for %v, which is not announced", p.SenderIP)
			}
		}
	})
}

// FuzzNDPHandle feeds arbitrary frames to the NDP handler, which must never
// panic, never answer for an address it does not announce, and report as a
// conflict only a claim of an announced address by another hardware address.
func FuzzNDPHandle(f *testing.F) {
	snm := solicitedNode(f, vip6)
	f.Add(ndpFrame(f, peerMAC, multicastMAC(snm), peer6, snm, 255, ns(vip6, sourceLLA(peerMAC))))
	f.Add(ndpFrame(f, peerMAC, multicastMAC(snm), netip.IPv6Unspecified(), snm, 255, ns(vip6)))
	f.Add(ndpFrame(f, peerMAC, multicastMAC(allNodes), peer6, allNodes, 255, &ndp.NeighborAdvertisement{
		Override: true, TargetAddress: peer6, Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: peerMAC}},
	}))
	// An option with length zero, which would loop a naive parser forever.
	b := ndpFrame(f, peerMAC, multicastMAC(snm), peer6, snm, 255, ns(vip6, sourceLLA(peerMAC)))
	f.Add(append(b[:len(b)-8:len(b)-8], 1, 0, 0, 0, 0, 0, 0, 0))
	f.Add(ipv6Frame(f, peerMAC, multicastMAC(snm), peer6, snm, 255, protoICMPv6, []byte{135, 0}))
	f.Add([]byte{})
	// Claims of the announced address: an NA for it, an NS sent from it.
	f.Add(ndpFrame(f, peerMAC, multicastMAC(allNodes), peer6, allNodes, 255, na(vip6, false, peerMAC)))
	f.Add(ndpFrame(f, peerMAC, multicastMAC(allNodes), peer6, allNodes, 255, na(vip6, false, ourMAC)))
	f.Add(ndpFrame(f, peerMAC, multicastMAC(snm), vip6, snm, 255, ns(peer6, sourceLLA(peerMAC))))

	r, c, _ := newTestNDP(f)
	conflicts := make(chan Conflict, 1)
	r.conflicts = conflicts
	if err := r.Add(vip6); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		reason, _ := r.handle(b)
		checkFuzzConflicts(t, r, conflicts, vip6)
		sent := c.frames()
		if reason != dropNone && len(sent) != 0 {
			t.Fatalf("dropped (%s) but sent %d frames", reason, len(sent))
		}
		for _, s := range sent {
			_, _, m := parseNDP(t, s.frame)
			if na, ok := m.(*ndp.NeighborAdvertisement); !ok || na.TargetAddress != vip6 {
				t.Fatalf("answered %+v; want an advertisement of %v only", m, vip6)
			}
		}
	})
}

// FuzzNDPMessage wraps arbitrary ICMPv6 messages in a valid IPv6 packet with a
// correct checksum, so the fuzzer reaches NDP message parsing that the checksum
// check would otherwise guard.
func FuzzNDPMessage(f *testing.F) {
	snm := solicitedNode(f, vip6)
	for _, m := range []ndp.Message{
		ns(vip6, sourceLLA(peerMAC)),
		ns(vip6),
		&ndp.NeighborAdvertisement{TargetAddress: vip6, Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: peerMAC}}},
	} {
		b, err := ndp.MarshalMessage(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Add([]byte{135, 0, 0, 0}, false)

	r, c, _ := newTestNDP(f)
	if err := r.Add(vip6); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, dad bool) {
		src := peer6
		if dad {
			src = netip.IPv6Unspecified()
		}
		if len(body) >= 4 {
			body[2], body[3] = 0, 0
			sum := icmpv6Checksum(src, snm, body)
			body[2], body[3] = byte(sum>>8), byte(sum)
		}
		reason, _ := r.handle(ipv6Frame(t, peerMAC, multicastMAC(snm), src, snm, 255, protoICMPv6, body))
		sent := c.frames()
		if reason != dropNone && len(sent) != 0 {
			t.Fatalf("dropped (%s) but sent %d frames", reason, len(sent))
		}
		for _, s := range sent {
			_, _, m := parseNDP(t, s.frame)
			if na, ok := m.(*ndp.NeighborAdvertisement); !ok || na.TargetAddress != vip6 {
				t.Fatalf("answered %+v; want an advertisement of %v only", m, vip6)
			}
		}
	})
}

// checkFuzzConflicts takes the Conflict a fuzzed frame reported, if any, checks
// that it is a claim of want by a unicast hardware address other than ours, and
// lifts the rate limit for the next input.
func checkFuzzConflicts(t *testing.T, r *Responder, ch chan Conflict, want netip.Addr) {
	t.Helper()
	select {
	case c := <-ch:
		if c.Addr != want || len(c.HardwareAddr) != 6 || c.HardwareAddr[0]&1 != 0 ||
			bytes.Equal(c.HardwareAddr, ourMAC) || bytes.Equal(c.HardwareAddr, zeroMAC) || c.Kind.String() == "unknown" {
			t.Fatalf("reported %+v; want a claim of %v by another host", c, want)
		}
	default:
	}
	r.mu.Lock()
	clear(r.lastReport)
	r.mu.Unlock()
}
