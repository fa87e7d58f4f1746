package layer2

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"time"
)

// conflictReportInterval is the shortest time between two Conflicts reported for
// one address by one Responder. The first claim is reported at once; a speaker
// that takes over sends three rounds within 300 ms and a flood may send
// thousands a second, and neither should fill the owner's channel or its logs.
// Settling a conflict is meant to take about a second, so a repeat held back
// for up to a second delays no decision; frames are still counted.
const conflictReportInterval = time.Second

// ClaimKind says which frame showed another host claiming an address.
type ClaimKind int

const (
	// ClaimARPReply: an ARP reply whose sender address is the address.
	ClaimARPReply ClaimKind = iota + 1
	// ClaimARPAnnouncement: a gratuitous ARP (request or reply form) for the
	// address: sender and target address are both the address.
	ClaimARPAnnouncement
	// ClaimARPRequest: an ARP request sent from the address, for another one.
	ClaimARPRequest
	// ClaimNeighborAdvertisement: a Neighbor Advertisement, solicited or not,
	// whose target is the address.
	ClaimNeighborAdvertisement
	// ClaimNeighborSolicitation: a Neighbor Solicitation sent from the address.
	ClaimNeighborSolicitation
)

func (k ClaimKind) String() string {
	switch k {
	case ClaimARPReply:
		return "arpReply"
	case ClaimARPAnnouncement:
		return "arpAnnouncement"
	case ClaimARPRequest:
		return "arpRequest"
	case ClaimNeighborAdvertisement:
		return "neighborAdvertisement"
	case ClaimNeighborSolicitation:
		return "neighborSolicitation"
	}
	return "unknown"
}

// A Conflict is one observation of another host claiming, on the wire, an
// address this node announces: two hardware addresses answer for it. Which
// host must stop is not this package's decision (see package conflict).
type Conflict struct {
	// Addr is the announced address.
	Addr netip.Addr
	// Interface names the interface the claim was seen on.
	Interface string
	// HardwareAddr is the other host's: the ARP sender hardware address, or the
	// NDP link-layer address option (else the Ethernet source).
	HardwareAddr net.HardwareAddr
	// Kind is the frame that carried the claim.
	Kind ClaimKind
	// Time is when the frame was handled.
	Time time.Time
}

// claimed handles a frame in which the host with hardware address mac claims
// addr. If this Responder announces addr and mac is not this node's, the claim is
// counted and, at most once per conflictReportInterval and address, reported on
// the conflicts channel without blocking. A report the channel has no room for
// is counted as dropped and does not hold back the next one.
func (r *Responder) claimed(addr netip.Addr, mac net.HardwareAddr, kind ClaimKind) {
	if len(mac) != 6 || mac[0]&1 != 0 || bytes.Equal(mac, zeroMAC) || bytes.Equal(mac, r.ifi.HardwareAddr) {
		return // no host's address, or ours
	}
	if r.ownMAC != nil && r.ownMAC(mac) {
		return // another interface of this node
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.addrs[addr]; !ok {
		return
	}
	r.stats.claims.Add(1)
	if r.conflicts == nil {
		return
	}
	now := time.Now()
	if last, ok := r.lastReport[addr]; ok && now.Sub(last) < conflictReportInterval {
		return
	}
	c := Conflict{Addr: addr, Interface: r.ifi.Name, HardwareAddr: slices.Clone(mac), Kind: kind, Time: now}
	select {
	case r.conflicts <- c:
		r.lastReport[addr] = now
	default:
		r.stats.conflictDrops.Add(1)
	}
}
