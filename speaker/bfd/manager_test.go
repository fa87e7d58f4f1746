package bfd

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// fakeConn records what is sent and hands received datagrams to Recv.
type fakeConn struct {
	mu      sync.Mutex
	sent    []sent
	senders map[netip.Addr]*fakeSender
	dialErr error
	rx      chan datagram
	done    chan struct{}
	once    sync.Once
}

type sent struct {
	peer netip.Addr
	p    Packet
}

type fakeSender struct {
	c      *fakeConn
	peer   netip.Addr
	closed bool
}

func newFakeConn() *fakeConn {
	return &fakeConn{senders: map[netip.Addr]*fakeSender{}, rx: make(chan datagram, 16), done: make(chan struct{})}
}

func (c *fakeConn) Recv(b []byte) (int, netip.Addr, error) {
	select {
	case d := <-c.rx:
		return copy(b, d.b[:d.n]), d.from, nil
	case <-c.done:
		return 0, netip.Addr{}, net.ErrClosed
	}
}

func (c *fakeConn) Dial(local, peer netip.Addr) (Sender, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dialErr != nil {
		return nil, c.dialErr
	}
	s := &fakeSender{c: c, peer: peer}
	c.senders[peer] = s
	return s, nil
}

func (c *fakeConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

func (s *fakeSender) Send(b []byte) error {
	p, err := Unmarshal(b)
	if err != nil {
		panic("sent an invalid packet: " + err.Error())
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.sent = append(s.c.sent, sent{s.peer, p})
	return nil
}

func (s *fakeSender) Close() error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.closed = true
	return nil
}

// take returns and forgets what was sent.
func (c *fakeConn) take() []sent {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sent
	c.sent = nil
	return s
}

// fakeClock is the Manager's clock in unit tests.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) add(d time.Duration)     { c.now = c.now.Add(d) }
func (c *fakeClock) set(t time.Time)         { c.now = t }
func (c *fakeClock) since(t time.Time) int64 { return int64(c.now.Sub(t)) }

var (
	peerA = netip.MustParseAddr("192.0.2.1")
	peerB = netip.MustParseAddr("2001:db8::2")
)

func testManager(t testing.TB) (*Manager, *fakeConn, *fakeClock) {
	t.Helper()
	conn := newFakeConn()
	clk := &fakeClock{now: t0}
	m, err := newManager(Config{Conn: conn}, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	return m, conn, clk
}

func (m *Manager) session(t testing.TB, a netip.Addr) *session {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	ss := m.byAddr[key(a)]
	if ss == nil {
		t.Fatalf("no session for %s", a)
	}
	return ss
}

// from builds the peer's packet to the session of a.
func (m *Manager) from(t testing.TB, a netip.Addr, st State, yourDisc bool) []byte {
	t.Helper()
	p := remote(st)
	p.YourDiscriminator = 0
	if yourDisc {
		p.YourDiscriminator = m.session(t, a).s.LocalDiscriminator()
	}
	return p.Marshal(nil)
}

func (m *Manager) notesQueued() []note {
	m.notes.mu.Lock()
	defer m.notes.mu.Unlock()
	q := m.notes.queue
	m.notes.queue = nil
	return q
}

func TestManagerSetSendsAtOnce(t *testing.T) {
	m, conn, _ := testManager(t)
	if err := m.Set(context.Background(), []Peer{{Address: peerA}, {Address: peerB, MinTx: time.Second}}); err != nil {
		t.Fatal(err)
	}
	got := conn.take()
	if len(got) != 2 {
		t.Fatalf("sent %d packets; want one per peer", len(got))
	}
	for _, s := range got {
		if s.p.State != StateDown || s.p.YourDiscriminator != 0 || s.p.DetectMult != DefaultMultiplier || s.p.RequiredMinRx != DefaultInterval {
			t.Errorf("first packet to %s: %+v", s.peer, s.p)
		}
	}
	if next := m.advance(); next.Sub(t0) > time.Second || next.Sub(t0) < 750*time.Millisecond {
		t.Errorf("next deadline in %v; want the slow 1 s rate, jittered", next.Sub(t0))
	}
}

func TestManagerDemux(t *testing.T) {
	m, _, _ := testManager(t)
	if err := m.Set(context.Background(), []Peer{{Address: peerA}, {Address: peerB}}); err != nil {
		t.Fatal(err)
	}
	// Your Discriminator 0: matched by source address.
	m.receive(m.from(t, peerA, StateDown, false), peerA)
	if st := m.session(t, peerA).s.State(); st != StateInit {
		t.Fatalf("A after the peer's Down: %v; want Init", st)
	}
	// Your Discriminator set: matched by it, and the source must agree.
	m.receive(m.from(t, peerB, StateInit, true), peerA)
	if st := m.session(t, peerB).s.State(); st != StateDown {
		t.Fatalf("B took a packet from A's address: %v", st)
	}
	m.receive(m.from(t, peerB, StateInit, true), peerB)
	if st := m.session(t, peerB).s.State(); st != StateUp {
		t.Fatalf("B after the peer's Init: %v; want Up", st)
	}
	bad := remote(StateDown)
	bad.YourDiscriminator = 12345
	m.receive(bad.Marshal(nil), peerA)
	m.receive(m.from(t, peerA, StateDown, false), netip.MustParseAddr("192.0.2.99"))
	m.receive([]byte{1, 2, 3}, peerA)
	if d := m.Dropped(); len(d) != 2 || d[DropNoSession] != 3 || d[DropShort] != 1 {
		t.Fatalf("Dropped() = %v; want 3 without session, 1 short", d)
	}
	if in := m.session(t, peerA).in; in != 1 {
		t.Fatalf("A counted %d packets in; want 1", in)
	}
}

func TestManagerOnChange(t *testing.T) {
	m, _, clk := testManager(t)
	if err := m.Set(context.Background(), []Peer{{Address: peerA}}); err != nil {
		t.Fatal(err)
	}
	m.receive(m.from(t, peerA, StateInit, true), peerA)
	if q := m.notesQueued(); len(q) != 1 || !q[0].up || q[0].peer != peerA {
		t.Fatalf("notes after Up: %v; want up", q)
	}
	// The peer goes AdminDown: not a failure (RFC 5882 §3.2).
	clk.add(100 * time.Millisecond)
	m.receive(m.from(t, peerA, StateAdminDown, true), peerA)
	if st := m.session(t, peerA).s.State(); st != StateDown {
		t.Fatalf("after the peer's AdminDown: %v", st)
	}
	if q := m.notesQueued(); len(q) != 0 {
		t.Fatalf("notes after the peer's AdminDown: %v; want none", q)
	}
	// Back up: reported again (the client may have acted meanwhile).
	clk.add(100 * time.Millisecond)
	m.receive(m.from(t, peerA, StateInit, true), peerA)
	if q := m.notesQueued(); len(q) != 1 || !q[0].up {
		t.Fatalf("notes after Up again: %v; want up", q)
	}
	// Silence: a failure.
	clk.add(5 * time.Second)
	m.advance()
	if q := m.notesQueued(); len(q) != 1 || q[0].up {
		t.Fatalf("notes after silence: %v; want down", q)
	}
	if st := m.Status()[0]; st.State != StateDown || st.LastDiag != DiagControlDetectExpired {
		t.Fatalf("status %+v", st)
	}
	// The peer signals Down while Up: a failure too.
	clk.add(100 * time.Millisecond)
	m.receive(m.from(t, peerA, StateInit, true), peerA)
	m.notesQueued()
	clk.add(100 * time.Millisecond)
	m.receive(m.from(t, peerA, StateDown, true), peerA)
	if q := m.notesQueued(); len(q) != 1 || q[0].up {
		t.Fatalf("notes after the peer's Down: %v; want down", q)
	}
}

func TestManagerRemoveSendsAdminDown(t *testing.T) {
	m, conn, clk := testManager(t)
	ctx := context.Background()
	if err := m.Set(ctx, []Peer{{Address: peerA}, {Address: peerB}}); err != nil {
		t.Fatal(err)
	}
	m.receive(m.from(t, peerA, StateInit, true), peerA)
	sender := conn.senders[peerA]
	conn.take()
	if err := m.Set(ctx, []Peer{{Address: peerB}}); err != nil {
		t.Fatal(err)
	}
	var admin int
	count := func() {
		for _, s := range conn.take() {
			if s.peer == peerA {
				if s.p.State != StateAdminDown || s.p.Diag != DiagAdminDown {
					t.Fatalf("after removal sent %+v", s.p)
				}
				admin++
			}
		}
	}
	for range 100 {
		count()
		next := m.advance()
		if sender.closed {
			break
		}
		clk.set(next)
	}
	count()
	if admin != DefaultMultiplier || !sender.closed {
		t.Fatalf("sent %d AdminDown packets, socket closed %v; want %d and closed", admin, sender.closed, DefaultMultiplier)
	}
	if elapsed := clk.now.Sub(t0); elapsed > 900*time.Millisecond {
		t.Errorf("AdminDown took %v; want within the peer's Detection Time", elapsed)
	}
	if st := m.Status(); len(st) != 1 || st[0].Address != peerB {
		t.Fatalf("status after removal: %+v", st)
	}
	if q := m.notesQueued(); len(q) != 1 || !q[0].up {
		t.Fatalf("notes %v; want only A's up (removal reports nothing)", q)
	}
	// A peer that never answered is forgotten at once.
	if err := m.Set(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if st := m.Status(); len(st) != 0 || !conn.senders[peerB].closed {
		t.Fatalf("status after removing a silent peer: %+v", st)
	}
}

func TestManagerTimerChangeKeepsSession(t *testing.T) {
	m, conn, clk := testManager(t)
	ctx := context.Background()
	if err := m.Set(ctx, []Peer{{Address: peerA}}); err != nil {
		t.Fatal(err)
	}
	m.receive(m.from(t, peerA, StateInit, true), peerA)
	disc := m.session(t, peerA).s.LocalDiscriminator()
	clk.add(10 * time.Millisecond)
	fin := remote(StateUp)
	fin.Final, fin.YourDiscriminator = true, disc
	m.receive(fin.Marshal(nil), peerA)
	conn.take()
	if err := m.Set(ctx, []Peer{{Address: peerA, MinTx: 50 * time.Millisecond, MinRx: 50 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	got := conn.take()
	if len(got) != 1 || !got[0].p.Poll || got[0].p.DesiredMinTx != 50*time.Millisecond || got[0].p.MyDiscriminator != disc {
		t.Fatalf("after a timer change sent %+v; want a Poll with 50ms from the same session", got)
	}
	if st := m.Status()[0]; st.State != StateUp || !st.Polling {
		t.Fatalf("status %+v", st)
	}
}

func TestManagerSetRejectsBadListsWhole(t *testing.T) {
	m, _, _ := testManager(t)
	ctx := context.Background()
	if err := m.Set(ctx, []Peer{{Address: peerA}}); err != nil {
		t.Fatal(err)
	}
	for name, peers := range map[string][]Peer{
		"invalid address": {{Address: peerA}, {}},
		"duplicate":       {{Address: peerA}, {Address: peerA}},
		"family mismatch": {{Address: peerA, Local: peerB}},
		"negative":        {{Address: peerA, MinRx: -time.Second}},
	} {
		if err := m.Set(ctx, peers); err == nil {
			t.Errorf("%s: Set accepted %+v", name, peers)
		}
		if st := m.Status(); len(st) != 1 || st[0].Removing {
			t.Fatalf("%s: a rejected Set changed the sessions: %+v", name, st)
		}
	}
}

func TestManagerDialFailureLeavesOthers(t *testing.T) {
	m, conn, _ := testManager(t)
	ctx := context.Background()
	if err := m.Set(ctx, []Peer{{Address: peerA}}); err != nil {
		t.Fatal(err)
	}
	conn.dialErr = errors.New("no port")
	err := m.Set(ctx, []Peer{{Address: peerA}, {Address: peerB}})
	if err == nil {
		t.Fatal("Set hid a Dial failure")
	}
	if st := m.Status(); len(st) != 1 || st[0].Address != peerA {
		t.Fatalf("status %+v; want A only", st)
	}
}

func TestManagerLifecycle(t *testing.T) {
	conn := newFakeConn()
	m, err := New(Config{Conn: conn})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := m.Set(ctx, []Peer{{Address: peerA}}); err != nil {
		t.Fatal(err)
	}
	// Bring it up through the receive goroutine.
	var d datagram
	p := remote(StateInit)
	p.YourDiscriminator = m.Status()[0].LocalDiscriminator
	d.n = copy(d.b[:], p.Marshal(nil))
	d.from = peerA
	conn.rx <- d
	deadline := time.Now().Add(2 * time.Second)
	for m.Status()[0].State != StateUp {
		if time.Now().After(deadline) {
			t.Fatal("not Up")
		}
		time.Sleep(time.Millisecond)
	}
	// Close with a context already over: it does not wait for AdminDown.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := m.Close(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close = %v; want context.Canceled", err)
	}
	if err := m.Close(ctx); !errors.Is(err, context.Canceled) && err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if err := m.Set(ctx, nil); err == nil {
		t.Fatal("Set after Close succeeded")
	}
	var adminDown bool
	for _, s := range conn.take() {
		adminDown = adminDown || s.p.State == StateAdminDown
	}
	if !adminDown {
		t.Fatal("Close sent no AdminDown")
	}
	if !conn.senders[peerA].closed {
		t.Fatal("the session's socket is open after Close")
	}
}
