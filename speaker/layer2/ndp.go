package layer2

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"

	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

const (
	ipv6HeaderLen = 40
	// protoICMPv6 is the IPv6 next-header value of ICMPv6.
	protoICMPv6 = 58
	// ndpHopLimit is the only hop limit NDP accepts and sends: a router would
	// have decremented it, so 255 proves the sender is on the link (RFC 4861,
	// section 7.1).
	ndpHopLimit = 255
	// ICMPv6 types of Neighbor Solicitation and Advertisement.
	icmpNeighborSolicitation  = 135
	icmpNeighborAdvertisement = 136
)

var (
	// allNodes is the link-local all-nodes group, where unsolicited Neighbor
	// Advertisements and answers to duplicate address detection go.
	allNodes = netip.MustParseAddr("ff02::1")
	// solicitedNodePrefix holds every solicited-node multicast address.
	solicitedNodePrefix = netip.MustParsePrefix("ff02::1:ff00:0/104")
)

// A GroupJoiner joins and leaves IPv6 multicast groups on one interface.
// *ndp.Conn is one.
type GroupJoiner interface {
	JoinGroup(group netip.Addr) error
	LeaveGroup(group netip.Addr) error
}

// NewNDP returns a Responder that answers IPv6 Neighbor Solicitations on ifi.
// conn must carry whole Ethernet frames (a packet.Raw socket bound to EtherType
// IPv6 does). groups, which may be nil, joins the solicited-node group of each
// announced address, so that the NIC accepts those frames and MLD-snooping
// switches forward them. The Responder owns conn, and groups if it is an
// io.Closer, and closes them on Close. Tests pass an in-memory conn.
//
// Answers are sent from the interface's first link-local address, read once from
// ifi here; without one they are sent from the announced address itself, which
// receivers accept (RFC 4861, section 7.1.2, puts no rule on the source).
func NewNDP(ifi *net.Interface, conn net.PacketConn, groups GroupJoiner) (*Responder, error) {
	p := &ndpProto{groups: groups, refs: make(map[netip.Addr]int)}
	if ifi != nil {
		// An error leaves src unset, which falls back as documented above.
		if addrs, err := ifi.Addrs(); err == nil {
			p.src = firstLinkLocal(addrs)
		}
	}
	return newResponder(ifi, conn, p)
}

// ndpProto is the IPv6 protocol: Neighbor Discovery (RFC 4861) with duplicate
// address detection probes from RFC 4862.
type ndpProto struct {
	groups GroupJoiner // may be nil
	src    netip.Addr  // link-local source of our messages; invalid: use the target

	// refs counts announced addresses per solicited-node group: addresses that
	// share their low 24 bits share a group. Guarded by Responder.mu.
	refs map[netip.Addr]int
}

var _ protocol = (*ndpProto)(nil)

func (*ndpProto) family() string { return "IPv6" }

func (*ndpProto) valid(addr netip.Addr) bool {
	return addr.Is6() && !addr.Is4In6() && !addr.IsUnspecified() && !addr.IsMulticast()
}

func (p *ndpProto) join(addr netip.Addr) error {
	g, err := ndp.SolicitedNodeMulticast(addr)
	if err != nil {
		return err
	}
	if p.refs[g] == 0 && p.groups != nil {
		if err := p.groups.JoinGroup(g); err != nil {
			return fmt.Errorf("join group %s: %w", g, err)
		}
	}
	p.refs[g]++
	return nil
}

func (p *ndpProto) leave(addr netip.Addr) error {
	g, err := ndp.SolicitedNodeMulticast(addr)
	if err != nil {
		return err
	}
	p.refs[g]--
	if p.refs[g] > 0 {
		return nil
	}
	delete(p.refs, g)
	if p.groups != nil {
		if err := p.groups.LeaveGroup(g); err != nil {
			return fmt.Errorf("leave group %s: %w", g, err)
		}
	}
	return nil
}

func (p *ndpProto) close() error {
	if c, ok := p.groups.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// ipv6Header is the part of a fixed IPv6 header that NDP needs.
type ipv6Header struct {
	hopLimit   uint8
	nextHeader uint8
	src, dst   netip.Addr
}

// parseIPv6 splits an IPv6 packet into its header and payload, trimming any
// Ethernet padding; ok is false if b is not a whole IPv6 packet.
func parseIPv6(b []byte) (h ipv6Header, payload []byte, ok bool) {
	if len(b) < ipv6HeaderLen || b[0]>>4 != 6 {
		return h, nil, false
	}
	n := int(binary.BigEndian.Uint16(b[4:6]))
	if len(b)-ipv6HeaderLen < n {
		return h, nil, false
	}
	h = ipv6Header{
		nextHeader: b[6],
		hopLimit:   b[7],
		src:        netip.AddrFrom16([16]byte(b[8:24])),
		dst:        netip.AddrFrom16([16]byte(b[24:40])),
	}
	return h, b[ipv6HeaderLen : ipv6HeaderLen+n], true
}

func (p *ndpProto) handle(r *Responder, b []byte) (dropReason, error) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil {
		return dropMalformed, nil
	}
	if f.EtherType != ethernet.EtherTypeIPv6 {
		return dropWrongProtocol, nil
	}
	mac := r.ifi.HardwareAddr
	if bytes.Equal(f.Source, mac) {
		return dropFromSelf, nil
	}
	h, icmp, ok := parseIPv6(f.Payload)
	if !ok {
		return dropMalformed, nil
	}
	if h.nextHeader != protoICMPv6 {
		// Extension headers before ICMPv6 are not followed; NDP messages carry none.
		return dropWrongProtocol, nil
	}
	if len(icmp) < 4 {
		return dropMalformed, nil
	}
	if icmp[0] != icmpNeighborSolicitation && icmp[0] != icmpNeighborAdvertisement {
		return dropWrongProtocol, nil
	}
	// Validation from RFC 4861, sections 7.1.1 and 7.1.2.
	if h.hopLimit != ndpHopLimit || icmp[1] != 0 || icmpv6Checksum(h.src, h.dst, icmp) != 0 {
		return dropMalformed, nil
	}
	m, err := ndp.ParseMessage(icmp)
	if err != nil {
		return dropMalformed, nil
	}

	switch m := m.(type) {
	case *ndp.NeighborAdvertisement:
		if m.TargetAddress.IsMulticast() || (h.dst.IsMulticast() && m.Solicited) {
			return dropMalformed, nil
		}
		owner := linkLayerOption(m.Options, ndp.Target)
		if owner == nil {
			owner = f.Source
		}
		target := normalize(m.TargetAddress)
		r.observe(target, owner)
		r.claimed(target, owner, ClaimNeighborAdvertisement)
		return dropNotRequest, nil

	case *ndp.NeighborSolicitation:
		target := normalize(m.TargetAddress)
		if target.IsMulticast() {
			return dropMalformed, nil
		}
		sender := linkLayerOption(m.Options, ndp.Source)
		dad := h.src.IsUnspecified()
		if dad {
			// Duplicate address detection: sent to the solicited-node group and
			// without a source link-layer option. The sender is about to claim target.
			if !solicitedNodePrefix.Contains(h.dst) || sender != nil {
				return dropMalformed, nil
			}
			r.observe(target, f.Source)
		} else {
			// A solicitation sent from an address we announce: its sender
			// holds that address too.
			from := sender
			if from == nil {
				from = f.Source
			}
			r.claimed(normalize(h.src), from, ClaimNeighborSolicitation)
		}
		r.stats.requests.Add(1)
		if !r.announced(target) {
			return dropNotAnnounced, nil
		}

		// Answer DAD at the all-nodes group, unsolicited (RFC 4861, section
		// 7.2.4), so the prober learns the address is taken; answer others at
		// the solicitor.
		dst, dstMAC, solicited := allNodes, multicastMAC(allNodes), false
		if !dad {
			dst, dstMAC, solicited = h.src, sender, true
			if dstMAC == nil {
				dstMAC = f.Source
			}
		}
		if err := p.advertise(r, target, solicited, dst, dstMAC); err != nil {
			return dropNone, fmt.Errorf("answer Neighbor Solicitation for %s from %s: %w", target, h.src, err)
		}
		r.stats.replies.Add(1)
		return dropNone, nil
	}
	return dropWrongProtocol, nil
}

func (p *ndpProto) gratuitous(r *Responder, addr netip.Addr) (int, error) {
	// An unsolicited Neighbor Advertisement with the override flag (RFC 4861,
	// section 7.2.6): receivers that have addr cached replace the old owner's
	// link-layer address with ours.
	if err := p.advertise(r, addr, false, allNodes, multicastMAC(allNodes)); err != nil {
		return 0, err
	}
	return 1, nil
}

func (p *ndpProto) probe(r *Responder, addr netip.Addr) error {
	// A duplicate address detection solicitation (RFC 4862, section 5.4.2): from
	// the unspecified address, to the target's solicited-node group, without a
	// source link-layer option.
	g, err := ndp.SolicitedNodeMulticast(addr)
	if err != nil {
		return err
	}
	ns := &ndp.NeighborSolicitation{TargetAddress: addr}
	return p.send(r, ns, netip.IPv6Unspecified(), g, multicastMAC(g))
}

// advertise sends a Neighbor Advertisement for target, with the override flag and
// our link-layer address.
func (p *ndpProto) advertise(r *Responder, target netip.Addr, solicited bool, dst netip.Addr, dstMAC net.HardwareAddr) error {
	src := p.src
	if !src.IsValid() {
		src = target
	}
	na := &ndp.NeighborAdvertisement{
		Solicited:     solicited,
		Override:      true,
		TargetAddress: target,
		Options: []ndp.Option{
			&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: r.ifi.HardwareAddr},
		},
	}
	return p.send(r, na, src, dst, dstMAC)
}

// send frames an NDP message in IPv6 and Ethernet and writes it to dstMAC.
func (p *ndpProto) send(r *Responder, m ndp.Message, src, dst netip.Addr, dstMAC net.HardwareAddr) error {
	body, err := ndp.MarshalMessageChecksum(m, src, dst)
	if err != nil {
		return err
	}
	pkt := make([]byte, ipv6HeaderLen, ipv6HeaderLen+len(body))
	pkt[0] = 6 << 4
	binary.BigEndian.PutUint16(pkt[4:6], uint16(len(body)))
	pkt[6] = protoICMPv6
	pkt[7] = ndpHopLimit
	s, d := src.As16(), dst.As16()
	copy(pkt[8:24], s[:])
	copy(pkt[24:40], d[:])
	pkt = append(pkt, body...)
	f := ethernet.Frame{
		Destination: dstMAC,
		Source:      r.ifi.HardwareAddr,
		EtherType:   ethernet.EtherTypeIPv6,
		Payload:     pkt,
	}
	fb, err := f.MarshalBinary()
	if err != nil {
		return err
	}
	return r.send(fb, dstMAC)
}

// icmpv6Checksum returns the ICMPv6 checksum of b sent from src to dst (RFC 8200,
// section 8.1). Over a message that carries its checksum, the result is zero.
func icmpv6Checksum(src, dst netip.Addr, b []byte) uint16 {
	var sum uint64
	add := func(p []byte) {
		for len(p) >= 2 {
			sum += uint64(binary.BigEndian.Uint16(p))
			p = p[2:]
		}
		if len(p) == 1 {
			sum += uint64(p[0]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	sum += uint64(len(b)) + protoICMPv6
	add(b)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// multicastMAC returns the Ethernet address of an IPv6 multicast group (RFC 2464,
// section 7).
func multicastMAC(group netip.Addr) net.HardwareAddr {
	g := group.As16()
	return net.HardwareAddr{0x33, 0x33, g[12], g[13], g[14], g[15]}
}

// linkLayerOption returns the link-layer address in the first option of the given
// direction, or nil.
func linkLayerOption(opts []ndp.Option, d ndp.Direction) net.HardwareAddr {
	for _, o := range opts {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == d {
			return lla.Addr
		}
	}
	return nil
}

// firstLinkLocal returns the first IPv6 link-local unicast address in addrs.
func firstLinkLocal(addrs []net.Addr) netip.Addr {
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if ok && ip.Is6() && !ip.Is4In6() && ip.IsLinkLocalUnicast() {
			return ip
		}
	}
	return netip.Addr{}
}
