package bfd

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// UDPConfig configures NewUDP.
type UDPConfig struct {
	// Port is the receive port; 0 means ControlPort (3784). Tests use others.
	Port int
	// Listen are the local addresses to receive on; empty means the
	// wildcard of each family (0.0.0.0 and ::). A family the host lacks is
	// skipped when it is the wildcard.
	Listen []netip.Addr
	// DstPort is the port packets are sent to; 0 means ControlPort. Tests
	// that run two Managers on one host give each its own Port and point
	// DstPort at the other's.
	DstPort int
}

// UDP is the real Conn: one receive socket per listen address, and one
// connected socket per session.
type UDP struct {
	cfg     UDPConfig
	ch      chan datagram
	done    chan struct{}
	wg      sync.WaitGroup
	socks   []*net.UDPConn
	closed  atomic.Bool
	dropTTL atomic.Uint64
}

var _ Conn = (*UDP)(nil)

// NewUDP opens the receive sockets. The caller owns the result and must
// Close it; its goroutines (one per socket) end then.
func NewUDP(cfg UDPConfig) (*UDP, error) {
	if cfg.Port == 0 {
		cfg.Port = ControlPort
	}
	if cfg.DstPort == 0 {
		cfg.DstPort = ControlPort
	}
	addrs := cfg.Listen
	wildcard := len(addrs) == 0
	if wildcard {
		addrs = []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
	}
	u := &UDP{cfg: cfg, ch: make(chan datagram, 64), done: make(chan struct{})}
	var errs []error
	for _, a := range addrs {
		c, err := listenGTSM(a.Unmap(), cfg.Port)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		u.socks = append(u.socks, c)
	}
	if len(u.socks) == 0 || (!wildcard && len(errs) > 0) {
		for _, c := range u.socks {
			c.Close()
		}
		return nil, fmt.Errorf("bfd: listening on port %d: %w", cfg.Port, errors.Join(errs...))
	}
	for _, c := range u.socks {
		u.wg.Add(1)
		go u.read(c)
	}
	return u, nil
}

// listenGTSM opens a receive socket that reports each datagram's TTL or hop
// limit, so read can apply GTSM.
func listenGTSM(a netip.Addr, port int) (*net.UDPConn, error) {
	network := "udp4"
	if a.Is6() {
		network = "udp6" // IPV6_V6ONLY: IPv4 has its own socket
	}
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, uint16(port))))
	if err != nil {
		return nil, fmt.Errorf("bfd: listen %s: %w", a, err)
	}
	if a.Is4() {
		err = ipv4.NewPacketConn(c).SetControlMessage(ipv4.FlagTTL, true)
	} else {
		err = ipv6.NewPacketConn(c).SetControlMessage(ipv6.FlagHopLimit, true)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("bfd: asking for the TTL on %s: %w", a, err)
	}
	return c, nil
}

// read is the goroutine of one receive socket; it ends when the socket is
// closed.
func (u *UDP) read(c *net.UDPConn) {
	defer u.wg.Done()
	var d datagram
	buf := make([]byte, maxDatagram+1) // one more: tells an oversized datagram
	oob := make([]byte, 128)
	for {
		n, oobn, flags, from, err := c.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP errors reported on the socket
		}
		if flags&unix.MSG_TRUNC != 0 || n > maxDatagram {
			continue
		}
		if ttl, ok := parseTTL(oob[:oobn]); !ok || ttl != gtsmTTL {
			u.dropTTL.Add(1)
			continue
		}
		d.n = copy(d.b[:], buf[:n])
		d.from = from.Addr().Unmap()
		select {
		case u.ch <- d:
		case <-u.done:
			return
		}
	}
}

// parseTTL finds the IP_TTL or IPV6_HOPLIMIT control message without
// allocating (ipv4.ControlMessage.Parse allocates per packet).
func parseTTL(oob []byte) (int, bool) {
	for len(oob) >= unix.SizeofCmsghdr {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return 0, false
		}
		if len(data) >= 4 && ((h.Level == unix.IPPROTO_IP && h.Type == unix.IP_TTL) ||
			(h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_HOPLIMIT)) {
			return int(nativeInt32(data)), true
		}
		oob = rest
	}
	return 0, false
}

// Recv implements Conn.
func (u *UDP) Recv(b []byte) (int, netip.Addr, error) {
	select {
	case d := <-u.ch:
		return copy(b, d.b[:d.n]), d.from, nil
	case <-u.done:
		return 0, netip.Addr{}, net.ErrClosed
	}
}

// DroppedTTL returns how many datagrams GTSM dropped.
func (u *UDP) DroppedTTL() uint64 { return u.dropTTL.Load() }

// Close closes the receive sockets and waits for their goroutines. It is safe
// to call twice.
func (u *UDP) Close() error {
	if u.closed.Swap(true) {
		return nil
	}
	close(u.done)
	var errs []error
	for _, c := range u.socks {
		errs = append(errs, c.Close())
	}
	u.wg.Wait()
	return errors.Join(errs...)
}

// Dial implements Conn: a socket connected to peer, bound to a free port of
// 49152–65535 (RFC 5881 §4), TTL / hop limit 255 and DSCP CS6 (network
// control, as routers expect for BFD).
func (u *UDP) Dial(local, peer netip.Addr) (Sender, error) {
	peer = peer.Unmap()
	network := "udp4"
	if peer.Is6() {
		network = "udp6"
	}
	if !local.IsValid() {
		local = netip.IPv4Unspecified()
		if peer.Is6() {
			local = netip.IPv6Unspecified()
		}
	}
	local = local.Unmap()
	if local.Is4() != peer.Is4() {
		return nil, fmt.Errorf("bfd: local address %s and peer %s are of different families", local, peer)
	}
	raddr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(peer, uint16(u.cfg.DstPort)))
	// Pick ports at random, as the kernel cannot be asked for one in a range
	// per socket; a busy port is simply the next try.
	const tries = 64
	span := maxSourcePort - minSourcePort + 1
	start := rand.IntN(span)
	var lastErr error
	for i := range tries {
		port := minSourcePort + (start+i*7919)%span
		c, err := net.DialUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, uint16(port))), raddr)
		if err != nil {
			lastErr = err
			if errors.Is(err, syscall.EADDRINUSE) {
				continue
			}
			return nil, fmt.Errorf("bfd: opening a socket to %s: %w", peer, err)
		}
		if err := setGTSMSend(c, peer.Is4()); err != nil {
			c.Close()
			return nil, fmt.Errorf("bfd: socket to %s: %w", peer, err)
		}
		return &udpSender{c: c}, nil
	}
	return nil, fmt.Errorf("bfd: no free source port for %s after %d tries: %w", peer, tries, lastErr)
}

func setGTSMSend(c *net.UDPConn, v4 bool) error {
	const cs6 = 0xc0
	if v4 {
		p := ipv4.NewConn(c)
		return errors.Join(p.SetTTL(gtsmTTL), p.SetTOS(cs6))
	}
	p := ipv6.NewConn(c)
	return errors.Join(p.SetHopLimit(gtsmTTL), p.SetTrafficClass(cs6))
}

type udpSender struct{ c *net.UDPConn }

func (s *udpSender) Send(b []byte) error {
	_, err := s.c.Write(b)
	return err
}

func (s *udpSender) Close() error { return s.c.Close() }
