package app

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/heraldlb/herald/speaker/layer2"
	"github.com/heraldlb/herald/speaker/membership"
)

// memberView is what the speaker loop uses of its memberlist cluster
// (*membership.Members): who is alive, what each member last said, and this
// node's own State. Only the speaker loop and its join goroutine call it; Join
// may run concurrently with the others, as *membership.Members allows.
type memberView interface {
	// Alive lists the live members, this node included.
	Alive() []membership.Member
	// States maps each member whose State is known to it.
	States() map[string]membership.State
	// SetState publishes this node's State.
	SetState(settled bool, claims map[string]int, refuses []string)
	// KnownMACs lists every member's published MACs.
	KnownMACs() []string
	// MemberOfMAC names the member that published mac (lower case).
	MemberOfMAC(mac string) (string, bool)
	// Failed reports whether node is not alive and failed (rather than
	// left) when last seen.
	Failed(node string) bool
	// LastClaims is node's claims when it was last seen.
	LastClaims(node string) map[string]int
	// LeftAt is when node last left or failed, or zero.
	LeftAt(node string) time.Time
	// Changed signals a change of members or States.
	Changed() <-chan struct{}
	// Join contacts peers (host:port).
	Join(peers []string) (int, error)
	// Leave tells the others this node leaves, within timeout.
	Leave(timeout time.Duration) error
	// Shutdown stops memberlist.
	Shutdown() error
}

var _ memberView = (*membership.Members)(nil)

// l2Sink is what the speaker loop uses of layer 2 (*l2Announcer). Only the
// speaker loop calls it, but for answerer, which probeTakeovers calls from
// several goroutines at once.
type l2Sink interface {
	// Set answers for exactly desired and returns where each address is
	// answered, or why not. speakerMACs are herald speakers' MACs (lower
	// case): their answers to a probe are no conflict.
	Set(ctx context.Context, desired []want, speakerMACs map[string]bool) map[netip.Addr]appliedAddr
	// cannotAnnounce says why ips cannot be announced on the allowed
	// interfaces, or "".
	cannotAnnounce(ips []netip.Addr, interfaces []string) string
	// answerer probes addr and returns the MAC of another host answering,
	// or ""; ok=false when it could not probe.
	answerer(ctx context.Context, addr netip.Addr, interfaces []string, own []net.HardwareAddr, wait time.Duration) (mac string, ok bool)
	// withdraw stops answering for addr at once.
	withdraw(addr netip.Addr)
	// reannounce sends one gratuitous ARP / unsolicited NA round for addr.
	reannounce(addr netip.Addr)
	// ipvsWithoutStrictARP says whether this node's kernel answers ARP for
	// every Service address (kube-proxy IPVS without strictARP), and why.
	ipvsWithoutStrictARP() (bool, string)
	// Changed signals netlink changes.
	Changed() <-chan struct{}
	// Close stops answering for every address.
	Close() error
}

var _ l2Sink = (*l2Announcer)(nil)

// announcer is what l2Announcer uses of *layer2.Announcer.
type announcer interface {
	Set(desired map[netip.Addr]string) error
	Probe(ctx context.Context, addr netip.Addr, iface string, opts layer2.ProbeOptions) (net.HardwareAddr, error)
	Announced() map[netip.Addr]string
	Reannounce(addr netip.Addr) error
	Stats() layer2.Stats
	Close() error
}

var _ announcer = (*layer2.Announcer)(nil)
