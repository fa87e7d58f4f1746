//go:build linux

package bfd

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// events records OnChange calls with their time.
type events struct {
	mu  sync.Mutex
	got []event
	ch  chan event
}

type event struct {
	peer netip.Addr
	up   bool
	at   time.Time
}

func newEvents() *events { return &events{ch: make(chan event, 16)} }

func (e *events) on(peer netip.Addr, up bool) {
	ev := event{peer, up, time.Now()}
	e.mu.Lock()
	e.got = append(e.got, ev)
	e.mu.Unlock()
	e.ch <- ev
}

func (e *events) wait(t *testing.T, up bool, within time.Duration) event {
	t.Helper()
	select {
	case ev := <-e.ch:
		if ev.up != up {
			t.Fatalf("OnChange(%s, %v); want up=%v", ev.peer, ev.up, up)
		}
		return ev
	case <-time.After(within):
		t.Fatalf("no OnChange(up=%v) within %v", up, within)
	}
	return event{}
}

func (e *events) waitAny(t *testing.T, within time.Duration) event {
	t.Helper()
	select {
	case ev := <-e.ch:
		return ev
	case <-time.After(within):
		t.Fatalf("no OnChange within %v", within)
	}
	return event{}
}

func (e *events) drain() {
	for {
		select {
		case <-e.ch:
		default:
			return
		}
	}
}

func (e *events) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case ev := <-e.ch:
		t.Fatalf("unexpected OnChange(%s, %v)", ev.peer, ev.up)
	case <-time.After(d):
	}
}

// pair starts two Managers on loopback, each listening on its own port and
// sending to the other's, with one session to each other.
func pair(t *testing.T, p Peer) (a, b *Manager, ea, eb *events) {
	t.Helper()
	portA, portB := 40000+os.Getpid()%10000, 0
	portB = portA + 1
	ea, eb = newEvents(), newEvents()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var err error
	a, err = New(Config{Logger: logger.With("m", "A"), OnChange: ea.on,
		UDP: UDPConfig{Port: portA, DstPort: portB, Listen: []netip.Addr{loopback}}})
	if errors.Is(err, os.ErrPermission) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop() })
	b, err = New(Config{Logger: logger.With("m", "B"), OnChange: eb.on,
		UDP: UDPConfig{Port: portB, DstPort: portA, Listen: []netip.Addr{loopback}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Stop() })
	p.Address = loopback
	ctx := context.Background()
	if err := a.Set(ctx, []Peer{p}); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(ctx, []Peer{p}); err != nil {
		t.Fatal(err)
	}
	return a, b, ea, eb
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(b[:len(b)-1]))
	return len(b), nil
}

func status(t *testing.T, m *Manager) PeerStatus {
	t.Helper()
	st := m.Status()
	if len(st) != 1 {
		t.Fatalf("Status() has %d sessions; want 1", len(st))
	}
	return st[0]
}

func TestLoopbackUpThenPeerDies(t *testing.T) {
	p := Peer{MinRx: 50 * time.Millisecond, MinTx: 50 * time.Millisecond, Multiplier: 3}
	a, b, ea, eb := pair(t, p)
	ea.wait(t, true, 3*time.Second)
	eb.wait(t, true, 3*time.Second)
	// Let the Poll Sequence that follows Up settle the fast timers.
	deadline := time.Now().Add(2 * time.Second)
	for st := status(t, a); (!settled(st, 50*time.Millisecond) || st.RemoteState != StateUp) && time.Now().Before(deadline); st = status(t, a) {
		time.Sleep(10 * time.Millisecond)
	}
	st := status(t, a)
	if st.State != StateUp || st.RemoteState != StateUp || st.TxInterval != 50*time.Millisecond || st.DetectionTime != 150*time.Millisecond {
		t.Fatalf("A: %+v; want Up/Up, tx 50ms, detection 150ms", st)
	}
	stopped := time.Now()
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	ev := ea.wait(t, false, time.Second)
	took := ev.at.Sub(stopped)
	t.Logf("A declared B down %v after B stopped (detection time %v)", took, st.DetectionTime)
	if took > st.DetectionTime+50*time.Millisecond {
		t.Errorf("detection took %v; want about %v", took, st.DetectionTime)
	}
	if st := status(t, a); st.State != StateDown || st.LastDiag != DiagControlDetectExpired {
		t.Errorf("A after B stopped: %v diag %v; want Down, %v", st.State, st.LastDiag, DiagControlDetectExpired)
	}
}

func TestLoopbackCloseSendsAdminDown(t *testing.T) {
	p := Peer{MinRx: 50 * time.Millisecond, MinTx: 50 * time.Millisecond, Multiplier: 3}
	a, b, ea, eb := pair(t, p)
	ea.wait(t, true, 3*time.Second)
	eb.wait(t, true, 3*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("Close took %v", time.Since(start))
	deadline := time.Now().Add(time.Second)
	for status(t, b).State != StateDown && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	st := status(t, b)
	if st.State != StateDown || st.RemoteState != StateAdminDown || st.LastDiag != DiagNeighborSignaledDown || st.RemoteDiag != DiagAdminDown {
		t.Fatalf("B after A's Close: %+v; want Down, remote AdminDown, diag 3, remote diag 7", st)
	}
	// Not a failure: B's client is not told, even after a Detection Time.
	eb.none(t, 500*time.Millisecond)
	if st := status(t, b); st.LastDiag != DiagNeighborSignaledDown {
		t.Errorf("B's diag became %v; want it to stay %v", st.LastDiag, DiagNeighborSignaledDown)
	}
}

func TestLoopbackTimerChangeKeepsUp(t *testing.T) {
	p := Peer{MinRx: 100 * time.Millisecond, MinTx: 100 * time.Millisecond, Multiplier: 3}
	a, b, ea, eb := pair(t, p)
	ea.wait(t, true, 3*time.Second)
	eb.wait(t, true, 3*time.Second)
	for _, iv := range []time.Duration{20 * time.Millisecond, 200 * time.Millisecond, 50 * time.Millisecond} {
		q := p
		q.Address = loopback
		q.MinRx, q.MinTx = iv, iv
		if err := a.Set(context.Background(), []Peer{q}); err != nil {
			t.Fatal(err)
		}
		if err := b.Set(context.Background(), []Peer{q}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(3 * time.Second)
		for !settled(status(t, a), iv) || !settled(status(t, b), iv) {
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		sa, sb := status(t, a), status(t, b)
		if !settled(sa, iv) || !settled(sb, iv) {
			t.Fatalf("after changing to %v: A %+v, B %+v", iv, sa, sb)
		}
		if sa.State != StateUp || sb.State != StateUp {
			t.Fatalf("session left Up changing timers to %v", iv)
		}
	}
	ea.none(t, 300*time.Millisecond)
	eb.none(t, 0)
}

func settled(st PeerStatus, iv time.Duration) bool {
	return st.TxInterval == iv && st.DetectionTime == 3*iv
}
