package bfd

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// testPort picks a port for a test listener, away from pair's.
func testPort(off int) int { return 30000 + (os.Getpid()+off)%10000 }

func TestUDPGTSM(t *testing.T) {
	for _, a := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")} {
		t.Run(a.String(), func(t *testing.T) {
			port := testPort(int(a.As16()[15]) * 7)
			u, err := NewUDP(UDPConfig{Port: port, DstPort: port, Listen: []netip.Addr{a}})
			if err != nil {
				t.Skipf("no %s here: %v", a, err)
			}
			defer u.Close()
			// A plain socket at TTL 64 is dropped; the Dial'd sender (TTL 255) is not.
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, uint16(port))))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if a.Is4() {
				err = ipv4.NewConn(c).SetTTL(64)
			} else {
				err = ipv6.NewConn(c).SetHopLimit(64)
			}
			if err != nil {
				t.Fatal(err)
			}
			low := bytes.Clone(frrUp)
			low[4] = 0xee
			if _, err := c.Write(low); err != nil {
				t.Fatal(err)
			}
			s, err := u.Dial(netip.Addr{}, a)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			src := s.(*udpSender).c.LocalAddr().(*net.UDPAddr).AddrPort()
			if src.Port() < minSourcePort {
				t.Errorf("source port %d; want ≥ %d (RFC 5881 §4)", src.Port(), minSourcePort)
			}
			if err := s.Send(frrUp); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, maxDatagram)
			done := make(chan struct{})
			go func() {
				defer close(done)
				n, from, err := u.Recv(buf)
				if err != nil || !bytes.Equal(buf[:n], frrUp) || from != a {
					t.Errorf("Recv = % x from %v, %v; want the TTL 255 packet from %v", buf[:n], from, err, a)
				}
			}()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				t.Fatal("nothing received")
			}
			if got := u.DroppedTTL(); got != 1 {
				t.Errorf("DroppedTTL = %d; want 1", got)
			}
			u.Close()
			if _, _, err := u.Recv(buf); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Recv after Close = %v; want net.ErrClosed", err)
			}
		})
	}
}

func TestParseTTL(t *testing.T) {
	cmsg := func(level, typ int32, v int32) []byte {
		b := make([]byte, unix.CmsgSpace(4))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = level, typ
		h.SetLen(unix.CmsgLen(4))
		*(*int32)(unsafe.Pointer(&b[unix.CmsgLen(0)])) = v
		return b
	}
	tests := []struct {
		name string
		oob  []byte
		ttl  int
		ok   bool
	}{
		{"none", nil, 0, false},
		{"ipv4", cmsg(unix.IPPROTO_IP, unix.IP_TTL, 255), 255, true},
		{"ipv6", cmsg(unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, 254), 254, true},
		{"after another", append(cmsg(unix.IPPROTO_IP, unix.IP_TOS, 1), cmsg(unix.IPPROTO_IP, unix.IP_TTL, 1)...), 1, true},
		{"truncated", cmsg(unix.IPPROTO_IP, unix.IP_TTL, 255)[:10], 0, false},
	}
	for _, tt := range tests {
		ttl, ok := parseTTL(tt.oob)
		if ttl != tt.ttl || ok != tt.ok {
			t.Errorf("%s: parseTTL = %d, %v; want %d, %v", tt.name, ttl, ok, tt.ttl, tt.ok)
		}
	}
	if n := testing.AllocsPerRun(100, func() { parseTTL(tests[3].oob) }); n != 0 {
		t.Errorf("parseTTL allocates %v times", n)
	}
}

// BenchmarkUDP is one packet through the real sockets on loopback: Send on a
// session's socket, the GTSM check, Recv.
func BenchmarkUDP(b *testing.B) {
	lo := netip.MustParseAddr("127.0.0.1")
	port := testPort(99)
	u, err := NewUDP(UDPConfig{Port: port, DstPort: port, Listen: []netip.Addr{lo}})
	if err != nil {
		b.Skip(err)
	}
	defer u.Close()
	s, err := u.Dial(netip.Addr{}, lo)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	buf := make([]byte, maxDatagram)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Send(frrUp); err != nil {
			b.Fatal(err)
		}
		if _, _, err := u.Recv(buf); err != nil {
			b.Fatal(err)
		}
	}
}
