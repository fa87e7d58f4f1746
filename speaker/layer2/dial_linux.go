//go:build linux

package layer2

import (
	"errors"
	"fmt"
	"net"

	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv6"
)

// EtherTypes the packet sockets bind to.
const (
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
)

// ndpFilter passes only Ethernet frames holding ICMPv6 Neighbor Solicitations
// and Advertisements directly after the fixed IPv6 header, so the IPv6 packet
// socket does not copy every IPv6 packet of a busy node to user space.
var ndpFilter = []bpf.Instruction{
	bpf.LoadAbsolute{Off: 12, Size: 2}, // EtherType
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: etherTypeIPv6, SkipTrue: 6},
	bpf.LoadAbsolute{Off: 14 + 6, Size: 1}, // IPv6 next header
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoICMPv6, SkipTrue: 4},
	bpf.LoadAbsolute{Off: 14 + ipv6HeaderLen, Size: 1}, // ICMPv6 type
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpNeighborSolicitation, SkipTrue: 1},
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: icmpNeighborAdvertisement, SkipTrue: 1},
	bpf.RetConstant{Val: 1 << 16}, // accept the whole frame
	bpf.RetConstant{Val: 0},       // drop
}

// *ndp.Conn holds the solicited-node group memberships of DialNDP Responders.
var _ GroupJoiner = (*ndp.Conn)(nil)

// DialARP opens an ARP packet socket on ifi and returns a Responder over it.
// It needs CAP_NET_RAW; the interface needs no IPv4 address.
func DialARP(ifi *net.Interface) (*Responder, error) {
	conn, err := packet.Listen(ifi, packet.Raw, etherTypeARP, nil)
	if err != nil {
		return nil, fmt.Errorf("open ARP socket on %s: %w", ifi.Name, err)
	}
	r, err := NewARP(ifi, conn)
	if err != nil {
		return nil, errors.Join(err, conn.Close())
	}
	return r, nil
}

// DialNDP opens an IPv6 packet socket, filtered to Neighbor Solicitations and
// Advertisements, on ifi and returns a Responder over it, with an ICMPv6 socket
// that holds the solicited-node group memberships (and reads nothing). It needs
// CAP_NET_RAW and IPv6 enabled on the interface.
func DialNDP(ifi *net.Interface) (*Responder, error) {
	filter, err := bpf.Assemble(ndpFilter)
	if err != nil {
		return nil, fmt.Errorf("assemble NDP socket filter: %w", err)
	}
	conn, err := packet.Listen(ifi, packet.Raw, etherTypeIPv6, &packet.Config{Filter: filter})
	if err != nil {
		return nil, fmt.Errorf("open IPv6 packet socket on %s: %w", ifi.Name, err)
	}
	groups, _, err := ndp.Listen(ifi, ndp.Unspecified)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open ICMPv6 socket on %s: %w", ifi.Name, err), conn.Close())
	}
	// The packet socket reads the messages; block every type here so this
	// socket's receive buffer never fills.
	var block ipv6.ICMPFilter
	block.SetAll(true)
	if err := groups.SetICMPFilter(&block); err != nil {
		return nil, errors.Join(fmt.Errorf("set ICMPv6 filter on %s: %w", ifi.Name, err), groups.Close(), conn.Close())
	}
	r, err := NewNDP(ifi, conn, groups)
	if err != nil {
		return nil, errors.Join(err, groups.Close(), conn.Close())
	}
	return r, nil
}
