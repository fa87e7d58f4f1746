package bfd

import (
	"net/netip"
)

// Ports of RFC 5881 §4.
const (
	// ControlPort is where single-hop control packets are received.
	ControlPort = 3784
	// The range a session's source port is taken from.
	minSourcePort = 49152
	maxSourcePort = 65535
	// gtsmTTL is the only TTL / hop limit single-hop BFD sends and accepts
	// (RFC 5881 §5, the Generalized TTL Security Mechanism).
	gtsmTTL = 255
)

// maxDatagram is the receive buffer. A control packet without
// authentication has 24 bytes, one with it at most 24+28; longer datagrams
// are not BFD and are dropped whole.
const maxDatagram = 64

// Conn is the Manager's one seam to the network: NewUDP is the real one,
// tests use a fake.
type Conn interface {
	// Recv blocks until a datagram arrives on the control port, copies it to
	// b and returns its length and source. Datagrams whose TTL or hop limit
	// is not 255 never reach the caller. After Close it returns
	// net.ErrClosed. Recv is called from one goroutine.
	Recv(b []byte) (n int, from netip.Addr, err error)
	// Dial opens the sending side of one session to peer, from local (which
	// may be the zero Addr: the kernel picks the source address), with a
	// source port of its own in 49152–65535 and TTL / hop limit 255.
	Dial(local, peer netip.Addr) (Sender, error)
	// Close stops Recv. Senders are closed by their owners.
	Close() error
}

// Sender sends one session's packets.
type Sender interface {
	// Send sends one datagram; it must not keep b.
	Send(b []byte) error
	Close() error
}

// datagram is one received datagram, passed by value so reception does not
// allocate.
type datagram struct {
	b    [maxDatagram]byte
	n    int
	from netip.Addr
}
