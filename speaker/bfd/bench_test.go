package bfd

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// nopConn sends nowhere and receives nothing: benchmarks measure the
// Manager, not a fake.
type nopConn struct{ done chan struct{} }

func (c nopConn) Recv([]byte) (int, netip.Addr, error) {
	<-c.done
	return 0, netip.Addr{}, net.ErrClosed
}
func (nopConn) Dial(netip.Addr, netip.Addr) (Sender, error) { return nopSender{}, nil }
func (nopConn) Close() error                                { return nil }

type nopSender struct{}

func (nopSender) Send([]byte) error { return nil }
func (nopSender) Close() error      { return nil }

// upSession returns a Session Up with 300 ms timers, poll settled.
func upSession() (*Session, Packet) {
	s := NewSession(localDisc, fast, t0)
	s.Advance(t0)
	s.Receive(t0, remote(StateInit))
	p := *remote(StateUp)
	p.Final = true
	s.Receive(t0, &p)
	p.Final = false
	return s, p
}

func BenchmarkSessionReceive(b *testing.B) {
	s, p := upSession()
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Millisecond)
		s.Receive(now, &p)
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Unmarshal(frrUp); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	p, _ := Unmarshal(frrUp)
	var buf [PacketLen]byte
	b.ReportAllocs()
	for b.Loop() {
		p.Marshal(buf[:0])
	}
}

// benchManager returns a Manager (no goroutines) with n sessions Up.
func benchManager(b *testing.B, n int) (*Manager, *fakeClock, [][]byte, []netip.Addr) {
	clk := &fakeClock{now: t0}
	m, err := newManager(Config{Conn: nopConn{make(chan struct{})}}, clk.Now)
	if err != nil {
		b.Fatal(err)
	}
	peers := make([]Peer, n)
	addrs := make([]netip.Addr, n)
	for i := range peers {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		peers[i], addrs[i] = Peer{Address: a}, a
	}
	if err := m.Set(context.Background(), peers); err != nil {
		b.Fatal(err)
	}
	pkts := make([][]byte, n)
	for i, a := range addrs {
		m.receive(m.from(b, a, StateInit, true), a)
		p := remote(StateUp)
		p.YourDiscriminator = m.session(b, a).s.LocalDiscriminator()
		p.Final = true
		m.receive(p.Marshal(nil), a)
		p.Final = false
		pkts[i] = p.Marshal(nil)
	}
	return m, clk, pkts, addrs
}

// BenchmarkManagerReceive is the per-packet cost of reception: parse, match
// by discriminator, run the state machine, re-arm the detection timer.
func BenchmarkManagerReceive(b *testing.B) {
	m, clk, pkts, addrs := benchManager(b, 16)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		clk.add(time.Microsecond)
		m.receive(pkts[i%16], addrs[i%16])
		i++
	}
}

// BenchmarkManagerTransmit is the per-packet cost of transmission: the
// timer pass, the packet built and marshalled, Send (a no-op here).
func BenchmarkManagerTransmit(b *testing.B) {
	m, clk, pkts, addrs := benchManager(b, 1)
	b.ReportAllocs()
	var sent uint64
	for b.Loop() {
		clk.set(m.advance())
		// Keep the peer alive so the session stays Up.
		m.receive(pkts[0], addrs[0])
	}
	sent = m.session(b, addrs[0]).out
	b.ReportMetric(float64(sent)/float64(b.N), "sent/op")
}

// BenchmarkSessionMemory reports the heap a Manager holds per session (a
// nop socket: a real one adds a file descriptor and the kernel's buffers).
func BenchmarkSessionMemory(b *testing.B) {
	const n = 1000
	var total uint64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m, _, _, _ := benchManager(b, n)
		runtime.GC()
		runtime.ReadMemStats(&after)
		total += after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(m)
	}
	b.ReportMetric(float64(total)/float64(b.N)/n, "B/session")
}
