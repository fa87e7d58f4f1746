package layer2

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

var (
	ourMAC     = net.HardwareAddr{0x02, 0x77, 0, 0, 0, 0x11}
	peerMAC    = net.HardwareAddr{0x02, 0x77, 0, 0, 0, 0x22}
	speakerMAC = net.HardwareAddr{0x02, 0x77, 0, 0, 0, 0x33}

	vip4  = netip.MustParseAddr("10.77.0.100")
	peer4 = netip.MustParseAddr("10.77.0.2")
	vip6  = netip.MustParseAddr("fd77::100")
	peer6 = netip.MustParseAddr("fd77::2")
)

// testInterface returns an interface no kernel knows (so it has no addresses).
func testInterface(name string) *net.Interface {
	return &net.Interface{Index: 999999, Name: name, HardwareAddr: ourMAC, MTU: 1500}
}

func newTestARP(t testing.TB) (*Responder, *memConn) {
	t.Helper()
	c := newMemConn()
	r, err := NewARP(testInterface("test0"), c)
	if err != nil {
		t.Fatalf("NewARP: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r, c
}

// fakeGroups is a GroupJoiner that records memberships.
type fakeGroups struct {
	joined  map[netip.Addr]int
	joinErr error
	closed  int
}

func (g *fakeGroups) JoinGroup(a netip.Addr) error {
	if g.joinErr != nil {
		return g.joinErr
	}
	g.joined[a]++
	return nil
}

func (g *fakeGroups) LeaveGroup(a netip.Addr) error {
	g.joined[a]--
	if g.joined[a] == 0 {
		delete(g.joined, a)
	}
	return nil
}

func (g *fakeGroups) Close() error { g.closed++; return nil }

func newTestNDP(t testing.TB) (*Responder, *memConn, *fakeGroups) {
	t.Helper()
	c := newMemConn()
	g := &fakeGroups{joined: make(map[netip.Addr]int)}
	r, err := NewNDP(testInterface("test0"), c, g)
	if err != nil {
		t.Fatalf("NewNDP: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r, c, g
}

// arpFrame builds an Ethernet frame holding an ARP packet.
func arpFrame(t testing.TB, op arp.Operation, srcMAC net.HardwareAddr, srcIP netip.Addr, dstMAC net.HardwareAddr, dstIP netip.Addr) []byte {
	t.Helper()
	p, err := arp.NewPacket(op, srcMAC, srcIP, dstMAC, dstIP)
	if err != nil {
		t.Fatalf("NewPacket: %v", err)
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	dst := broadcastMAC
	if op == arp.OperationReply {
		dst = dstMAC
	}
	return ethFrame(t, srcMAC, dst, ethernet.EtherTypeARP, pb)
}

func ethFrame(t testing.TB, src, dst net.HardwareAddr, et ethernet.EtherType, payload []byte) []byte {
	t.Helper()
	f := ethernet.Frame{Destination: dst, Source: src, EtherType: et, Payload: payload}
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// parseARP parses a frame written by a Responder.
func parseARP(t testing.TB, b []byte) (*ethernet.Frame, *arp.Packet) {
	t.Helper()
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil {
		t.Fatalf("parse Ethernet: %v", err)
	}
	if f.EtherType != ethernet.EtherTypeARP {
		t.Fatalf("EtherType = %v; want ARP", f.EtherType)
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		t.Fatalf("parse ARP: %v", err)
	}
	return &f, &p
}

// ndpFrame builds an Ethernet frame holding an NDP message with a correct
// checksum.
func ndpFrame(t testing.TB, srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, hop uint8, m ndp.Message) []byte {
	t.Helper()
	body, err := ndp.MarshalMessageChecksum(m, src, dst)
	if err != nil {
		t.Fatalf("MarshalMessageChecksum: %v", err)
	}
	return ipv6Frame(t, srcMAC, dstMAC, src, dst, hop, protoICMPv6, body)
}

func ipv6Frame(t testing.TB, srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, hop, next uint8, body []byte) []byte {
	t.Helper()
	pkt := make([]byte, ipv6HeaderLen)
	pkt[0] = 6 << 4
	binary.BigEndian.PutUint16(pkt[4:6], uint16(len(body)))
	pkt[6] = next
	pkt[7] = hop
	s, d := src.As16(), dst.As16()
	copy(pkt[8:24], s[:])
	copy(pkt[24:40], d[:])
	return ethFrame(t, srcMAC, dstMAC, ethernet.EtherTypeIPv6, append(pkt, body...))
}

// parseNDP parses and checks (hop limit, checksum) a frame written by a Responder.
func parseNDP(t testing.TB, b []byte) (*ethernet.Frame, ipv6Header, ndp.Message) {
	t.Helper()
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil {
		t.Fatalf("parse Ethernet: %v", err)
	}
	if f.EtherType != ethernet.EtherTypeIPv6 {
		t.Fatalf("EtherType = %v; want IPv6", f.EtherType)
	}
	h, body, ok := parseIPv6(f.Payload)
	if !ok || h.nextHeader != protoICMPv6 {
		t.Fatalf("not an ICMPv6 packet: %x", f.Payload)
	}
	if h.hopLimit != 255 {
		t.Errorf("hop limit = %d; want 255", h.hopLimit)
	}
	if c := icmpv6Checksum(h.src, h.dst, body); c != 0 {
		t.Errorf("checksum does not verify (residue %#x)", c)
	}
	m, err := ndp.ParseMessage(body)
	if err != nil {
		t.Fatalf("ParseMessage: %v", err)
	}
	return &f, h, m
}

func solicitedNode(t testing.TB, a netip.Addr) netip.Addr {
	t.Helper()
	g, err := ndp.SolicitedNodeMulticast(a)
	if err != nil {
		t.Fatal(err)
	}
	return g
}
