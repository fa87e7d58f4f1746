package layer2

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

// arpHardwareEthernet is the ARP hardware type of Ethernet (RFC 826).
const arpHardwareEthernet = 1

// NewARP returns a Responder that answers ARP requests on ifi. conn must carry
// whole Ethernet frames (a packet.Raw socket bound to EtherType ARP does); the
// Responder owns it and closes it on Close. Tests pass an in-memory conn.
func NewARP(ifi *net.Interface, conn net.PacketConn) (*Responder, error) {
	return newResponder(ifi, conn, arpProto{})
}

// arpProto is the IPv4 protocol: ARP (RFC 826) with probes and announcements
// from RFC 5227.
type arpProto struct{}

var _ protocol = arpProto{}

func (arpProto) family() string { return "IPv4" }

func (arpProto) valid(addr netip.Addr) bool {
	return addr.Is4() && !addr.IsUnspecified() && !addr.IsMulticast() &&
		addr != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

func (arpProto) join(netip.Addr) error  { return nil }
func (arpProto) leave(netip.Addr) error { return nil }
func (arpProto) close() error           { return nil }

func (arpProto) handle(r *Responder, b []byte) (dropReason, error) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil {
		return dropMalformed, nil
	}
	if f.EtherType != ethernet.EtherTypeARP {
		return dropWrongProtocol, nil
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		return dropMalformed, nil
	}
	if p.HardwareType != arpHardwareEthernet || p.ProtocolType != uint16(ethernet.EtherTypeIPv4) ||
		p.HardwareAddrLength != 6 || p.IPLength != 4 {
		return dropMalformed, nil
	}
	mac := r.ifi.HardwareAddr
	if bytes.Equal(f.Source, mac) || bytes.Equal(p.SenderHardwareAddr, mac) {
		return dropFromSelf, nil
	}

	// Whoever sends from an address claims it; whoever probes for one is about to
	// (RFC 5227, section 2.1.1). Either conflicts with a probe of ours.
	if p.SenderIP.IsUnspecified() {
		if p.Operation == arp.OperationRequest {
			r.observe(p.TargetIP, p.SenderHardwareAddr)
		}
	} else {
		r.observe(p.SenderIP, p.SenderHardwareAddr)
		// Whoever sends from an address we announce answers for it too: two
		// hosts on the wire for one address.
		switch {
		case p.SenderIP == p.TargetIP:
			r.claimed(p.SenderIP, p.SenderHardwareAddr, ClaimARPAnnouncement)
		case p.Operation == arp.OperationReply:
			r.claimed(p.SenderIP, p.SenderHardwareAddr, ClaimARPReply)
		case p.Operation == arp.OperationRequest:
			r.claimed(p.SenderIP, p.SenderHardwareAddr, ClaimARPRequest)
		}
	}

	if p.Operation != arp.OperationRequest {
		return dropNotRequest, nil
	}
	r.stats.requests.Add(1)
	if !r.announced(p.TargetIP) {
		return dropNotAnnounced, nil
	}
	if p.SenderIP == p.TargetIP {
		return dropAnnouncement, nil
	}
	if p.SenderHardwareAddr[0]&1 != 0 || bytes.Equal(p.SenderHardwareAddr, zeroMAC) {
		// A multicast or zero sender cannot be answered.
		return dropMalformed, nil
	}

	// Probes (sender 0.0.0.0) are answered too: that is how a host probing for
	// an address we announce learns that it is taken.
	reply, err := arp.NewPacket(arp.OperationReply, mac, p.TargetIP, p.SenderHardwareAddr, p.SenderIP)
	if err != nil {
		return dropNone, fmt.Errorf("build ARP reply for %s: %w", p.TargetIP, err)
	}
	if err := sendARP(r, reply, p.SenderHardwareAddr); err != nil {
		return dropNone, fmt.Errorf("reply to ARP request for %s from %s: %w", p.TargetIP, p.SenderHardwareAddr, err)
	}
	r.stats.replies.Add(1)
	return dropNone, nil
}

func (arpProto) gratuitous(r *Responder, addr netip.Addr) (int, error) {
	mac := r.ifi.HardwareAddr
	// An ARP Announcement (RFC 5227, section 2.3): a request whose sender and
	// target address are both addr. Plus the reply form (what `arping -A` sends),
	// since some hosts only update their caches from replies; Linux treats a reply
	// as gratuitous only when its target hardware address equals its sender's.
	req, err := arp.NewPacket(arp.OperationRequest, mac, addr, zeroMAC, addr)
	if err != nil {
		return 0, err
	}
	rep, err := arp.NewPacket(arp.OperationReply, mac, addr, mac, addr)
	if err != nil {
		return 0, err
	}
	for i, p := range []*arp.Packet{req, rep} {
		if err := sendARP(r, p, broadcastMAC); err != nil {
			return i, err
		}
	}
	return 2, nil
}

func (arpProto) probe(r *Responder, addr netip.Addr) error {
	// An ARP Probe (RFC 5227, section 2.1.1): sender address 0.0.0.0, so no
	// host's cache learns anything from it, target hardware address zero.
	p, err := arp.NewPacket(arp.OperationRequest, r.ifi.HardwareAddr, netip.IPv4Unspecified(), zeroMAC, addr)
	if err != nil {
		return err
	}
	return sendARP(r, p, broadcastMAC)
}

// sendARP frames p in Ethernet and writes it to dst.
func sendARP(r *Responder, p *arp.Packet, dst net.HardwareAddr) error {
	pb, err := p.MarshalBinary()
	if err != nil {
		return err
	}
	f := ethernet.Frame{
		Destination: dst,
		Source:      r.ifi.HardwareAddr,
		EtherType:   ethernet.EtherTypeARP,
		Payload:     pb,
	}
	fb, err := f.MarshalBinary()
	if err != nil {
		return err
	}
	return r.send(fb, dst)
}
