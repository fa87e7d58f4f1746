package bfd

import (
	"testing"
	"time"
)

const (
	localDisc  = 0x1111
	remoteDisc = 0x2222
)

var (
	t0   = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fast = Timers{DesiredMinTx: 300 * time.Millisecond, RequiredMinRx: 300 * time.Millisecond, DetectMult: 3}
)

// remote returns a packet from the peer in state st with 300 ms timers.
func remote(st State) *Packet {
	p := &Packet{State: st, DetectMult: 3, MyDiscriminator: remoteDisc, YourDiscriminator: localDisc,
		DesiredMinTx: 300 * time.Millisecond, RequiredMinRx: 300 * time.Millisecond}
	if st == StateDown || st == StateAdminDown {
		p.DesiredMinTx = time.Second
	}
	return p
}

// inState returns a session driven into st by the peer's packets.
func inState(t *testing.T, st State) *Session {
	t.Helper()
	s := NewSession(localDisc, fast, t0)
	s.Advance(t0)
	switch st {
	case StateAdminDown:
		s.SetAdminDown(t0, DiagAdminDown)
	case StateInit:
		s.Receive(t0, remote(StateDown))
	case StateUp:
		s.Receive(t0, remote(StateInit))
	}
	if s.State() != st {
		t.Fatalf("setup: state %v; want %v", s.State(), st)
	}
	return s
}

// TestSessionTransitions is the state table of RFC 5880 §6.8.6 (and the
// diagram of §6.2), one row per local state and received state.
func TestSessionTransitions(t *testing.T) {
	tests := []struct {
		local, rx State
		want      State
		diag      Diag
	}{
		{StateAdminDown, StateAdminDown, StateAdminDown, DiagAdminDown},
		{StateAdminDown, StateDown, StateAdminDown, DiagAdminDown},
		{StateAdminDown, StateInit, StateAdminDown, DiagAdminDown},
		{StateAdminDown, StateUp, StateAdminDown, DiagAdminDown},
		{StateDown, StateAdminDown, StateDown, DiagNone},
		{StateDown, StateDown, StateInit, DiagNone},
		{StateDown, StateInit, StateUp, DiagNone},
		{StateDown, StateUp, StateDown, DiagNone},
		{StateInit, StateAdminDown, StateDown, DiagNeighborSignaledDown},
		{StateInit, StateDown, StateInit, DiagNone},
		{StateInit, StateInit, StateUp, DiagNone},
		{StateInit, StateUp, StateUp, DiagNone},
		{StateUp, StateAdminDown, StateDown, DiagNeighborSignaledDown},
		{StateUp, StateDown, StateDown, DiagNeighborSignaledDown},
		{StateUp, StateInit, StateUp, DiagNone},
		{StateUp, StateUp, StateUp, DiagNone},
	}
	for _, tt := range tests {
		t.Run(tt.local.String()+"+"+tt.rx.String(), func(t *testing.T) {
			s := inState(t, tt.local)
			now := t0.Add(100 * time.Millisecond)
			r := s.Receive(now, remote(tt.rx))
			if s.State() != tt.want || s.Diag() != tt.diag {
				t.Fatalf("state %v diag %v; want %v diag %v", s.State(), s.Diag(), tt.want, tt.diag)
			}
			if r.Changed != (tt.want != tt.local) || r.From != tt.local {
				t.Errorf("Changed %v From %v; want %v, %v", r.Changed, r.From, tt.want != tt.local, tt.local)
			}
			if r.Changed && !r.Send {
				t.Errorf("a state change sends no packet")
			}
			if r.Send && (r.Packet.State != tt.want || r.Packet.Diag != tt.diag || r.Packet.YourDiscriminator != remoteDisc) {
				t.Errorf("sent %+v", r.Packet)
			}
			if s.RemoteState() != tt.rx || s.RemoteDiscriminator() != remoteDisc {
				t.Errorf("remote state %v disc %#x; want %v, %#x", s.RemoteState(), s.RemoteDiscriminator(), tt.rx, remoteDisc)
			}
		})
	}
}

func TestSessionSlowUntilUp(t *testing.T) {
	s := NewSession(localDisc, fast, t0)
	r := s.Advance(t0)
	if !r.Send || r.Packet.State != StateDown || r.Packet.DesiredMinTx != time.Second || r.Packet.RequiredMinRx != 300*time.Millisecond ||
		r.Packet.YourDiscriminator != 0 || r.Packet.MyDiscriminator != localDisc || r.Packet.DetectMult != 3 || r.Packet.Poll {
		t.Fatalf("first packet %+v", r.Packet)
	}
	// Before the peer is heard it asks for 1 µs: the slow rate rules (§6.8.3).
	if d := r.Next.Sub(t0); d < 750*time.Millisecond || d > time.Second {
		t.Fatalf("next packet in %v; want 750ms–1s", d)
	}
	r = s.Receive(t0.Add(10*time.Millisecond), remote(StateDown))
	if s.TxInterval() != time.Second || r.Packet.DesiredMinTx != time.Second {
		t.Fatalf("in Init: tx interval %v, advertised %v; want 1s", s.TxInterval(), r.Packet.DesiredMinTx)
	}
	// 3 × max(our 300 ms rx, its 1 s tx while not Up).
	if s.DetectionTime() != 3*time.Second {
		t.Fatalf("detection time %v; want 3s", s.DetectionTime())
	}
	r = s.Receive(t0.Add(20*time.Millisecond), remote(StateUp))
	if s.State() != StateUp || !r.Send || !r.Packet.Poll || r.Packet.DesiredMinTx != 300*time.Millisecond {
		t.Fatalf("on Up: state %v, sent %v %+v; want Up and a Poll with 300ms", s.State(), r.Send, r.Packet)
	}
	// A decrease of DesiredMinTx applies at once.
	if s.TxInterval() != 300*time.Millisecond {
		t.Fatalf("tx interval %v during the poll; want 300ms", s.TxInterval())
	}
}

func TestSessionPollFinal(t *testing.T) {
	s := inState(t, StateUp)
	if !s.Polling() {
		t.Fatal("no Poll Sequence after Up")
	}
	// Periodic packets carry P until the Final.
	r := s.Advance(t0.Add(500 * time.Millisecond))
	if !r.Send || !r.Packet.Poll || r.Packet.Final {
		t.Fatalf("periodic packet during poll %+v", r.Packet)
	}
	fin := remote(StateUp)
	fin.Final = true
	s.Receive(t0.Add(510*time.Millisecond), fin)
	if s.Polling() {
		t.Fatal("still polling after Final")
	}
	r = s.Advance(t0.Add(800 * time.Millisecond))
	if r.Packet.Poll {
		t.Fatalf("P after the poll ended: %+v", r.Packet)
	}
	// The peer polls: a Final goes out at once, with P clear.
	poll := remote(StateUp)
	poll.Poll = true
	poll.RequiredMinRx = 100 * time.Millisecond
	poll.DesiredMinTx = 100 * time.Millisecond
	r = s.Receive(t0.Add(900*time.Millisecond), poll)
	if !r.Send || !r.Packet.Final || r.Packet.Poll {
		t.Fatalf("answer to a Poll %+v; want F", r.Packet)
	}
	if s.TxInterval() != 300*time.Millisecond || s.DetectionTime() != 900*time.Millisecond {
		t.Fatalf("tx %v detection %v; want 300ms, 900ms (our timers are the larger)", s.TxInterval(), s.DetectionTime())
	}
	// Our own poll in progress, the peer polls: F without P, then P again.
	s.SetTimers(t0.Add(1000*time.Millisecond), Timers{DesiredMinTx: 200 * time.Millisecond, RequiredMinRx: 200 * time.Millisecond, DetectMult: 3})
	r = s.Receive(t0.Add(1010*time.Millisecond), poll)
	if !r.Packet.Final || r.Packet.Poll {
		t.Fatalf("F during our poll: %+v", r.Packet)
	}
	r = s.Advance(r.Next)
	if !r.Packet.Poll || r.Packet.Final {
		t.Fatalf("after F, periodic packet %+v; want P", r.Packet)
	}
}

func TestSessionNegotiation(t *testing.T) {
	s := inState(t, StateUp)
	p := remote(StateUp)
	p.Final = true
	p.RequiredMinRx = 500 * time.Millisecond
	p.DesiredMinTx = 100 * time.Millisecond
	p.DetectMult = 5
	s.Receive(t0.Add(time.Second), p)
	if got, want := s.TxInterval(), 500*time.Millisecond; got != want {
		t.Errorf("tx interval %v; want %v (the peer's RequiredMinRx)", got, want)
	}
	if got, want := s.DetectionTime(), 1500*time.Millisecond; got != want {
		t.Errorf("detection time %v; want %v (5 × our RequiredMinRx)", got, want)
	}
	// The peer asks for no packets at all: none are sent (§6.8.7).
	p.RequiredMinRx = 0
	r := s.Receive(t0.Add(1100*time.Millisecond), p)
	if !r.Next.Equal(t0.Add(1100*time.Millisecond).Add(s.DetectionTime())) || s.TxInterval() != 0 {
		t.Errorf("with RequiredMinRx 0: next %v tx %v; want only the detection timer", r.Next, s.TxInterval())
	}
}

func TestSessionTimerChangeWhileUp(t *testing.T) {
	s := inState(t, StateUp)
	fin := remote(StateUp)
	fin.Final = true
	s.Receive(t0.Add(100*time.Millisecond), fin)
	slow := Timers{DesiredMinTx: 600 * time.Millisecond, RequiredMinRx: 100 * time.Millisecond, DetectMult: 3}
	r := s.SetTimers(t0.Add(200*time.Millisecond), slow)
	if !r.Send || !r.Packet.Poll || r.Packet.DesiredMinTx != 600*time.Millisecond || r.Packet.RequiredMinRx != 100*time.Millisecond {
		t.Fatalf("timer change sent %v %+v; want a Poll with the new values", r.Send, r.Packet)
	}
	if s.State() != StateUp {
		t.Fatal("timer change left Up")
	}
	// Until the Final: the larger tx interval and the smaller rx wait.
	if s.TxInterval() != 300*time.Millisecond || s.DetectionTime() != 900*time.Millisecond {
		t.Fatalf("during poll: tx %v detection %v; want 300ms, 900ms", s.TxInterval(), s.DetectionTime())
	}
	s.Receive(t0.Add(210*time.Millisecond), fin)
	if s.TxInterval() != 600*time.Millisecond || s.DetectionTime() != 900*time.Millisecond {
		t.Fatalf("after Final: tx %v detection %v; want 600ms, 900ms (3 × its 300ms tx)", s.TxInterval(), s.DetectionTime())
	}
	fin.DesiredMinTx = 50 * time.Millisecond
	s.Receive(t0.Add(220*time.Millisecond), fin)
	if s.DetectionTime() != 300*time.Millisecond {
		t.Fatalf("detection %v; want 300ms (3 × our new 100ms rx)", s.DetectionTime())
	}
}

func TestSessionDetectionTimeout(t *testing.T) {
	s := inState(t, StateUp)
	last := t0.Add(500 * time.Millisecond)
	fin := remote(StateUp)
	fin.Final = true
	r := s.Receive(last, fin)
	deadline := last.Add(900 * time.Millisecond)
	for !r.Next.Equal(deadline) {
		if r.Next.After(deadline) || r.Next.IsZero() {
			t.Fatalf("next %v after the detection deadline %v", r.Next, deadline)
		}
		r = s.Advance(r.Next)
		if s.State() != StateUp {
			t.Fatalf("down at %v, before the deadline", r.Next)
		}
	}
	r = s.Advance(deadline)
	if s.State() != StateDown || s.Diag() != DiagControlDetectExpired || s.LastDownDiag() != DiagControlDetectExpired {
		t.Fatalf("after detection time: %v diag %v", s.State(), s.Diag())
	}
	if !r.Changed || !r.Send || r.Packet.YourDiscriminator != 0 || r.Packet.State != StateDown || r.Packet.DesiredMinTx != time.Second {
		t.Fatalf("packet after timeout %+v; want Down, your disc 0, 1s", r.Packet)
	}
	if s.RemoteDiscriminator() != 0 {
		t.Fatal("remote discriminator kept after a Detection Time of silence (§6.8.1)")
	}
	// Silence in Down changes nothing and arms nothing but transmission.
	r = s.Advance(deadline.Add(10 * time.Second))
	if s.State() != StateDown || r.Changed {
		t.Fatalf("in Down: %v changed %v", s.State(), r.Changed)
	}
}

func TestSessionInitTimesOut(t *testing.T) {
	s := inState(t, StateInit)
	s.Advance(t0.Add(3 * time.Second)) // 3 × the peer's 1 s
	if s.State() != StateDown || s.Diag() != DiagControlDetectExpired {
		t.Fatalf("Init after silence: %v %v; want Down, %v", s.State(), s.Diag(), DiagControlDetectExpired)
	}
}

func TestSessionAdminDown(t *testing.T) {
	s := inState(t, StateUp)
	r := s.SetAdminDown(t0.Add(time.Second), DiagAdminDown)
	if !r.Send || r.Packet.State != StateAdminDown || r.Packet.Diag != DiagAdminDown || r.Packet.Poll {
		t.Fatalf("AdminDown packet %+v", r.Packet)
	}
	// It keeps the pace it had, so the peer hears it within its Detection Time.
	if d := r.Next.Sub(t0.Add(time.Second)); d > 300*time.Millisecond {
		t.Fatalf("next AdminDown packet in %v; want ≤ 300ms", d)
	}
	poll := remote(StateUp)
	poll.Poll = true
	r = s.Receive(t0.Add(1100*time.Millisecond), poll)
	if s.State() != StateAdminDown || r.Send {
		t.Fatalf("AdminDown session answered or moved: %v send %v", s.State(), r.Send)
	}
	r = s.Enable(t0.Add(2 * time.Second))
	if s.State() != StateDown || !r.Send || r.Packet.Diag != DiagNone || r.Packet.DesiredMinTx != time.Second {
		t.Fatalf("after Enable: %v %+v", s.State(), r.Packet)
	}
	s.Receive(t0.Add(2100*time.Millisecond), remote(StateInit))
	if s.State() != StateUp {
		t.Fatalf("after Enable the session does not come up: %v", s.State())
	}
}

func TestSessionJitter(t *testing.T) {
	for _, mult := range []uint8{1, 3} {
		tm := fast
		tm.DetectMult = mult
		s := NewSession(localDisc, tm, t0)
		s.Advance(t0)
		s.Receive(t0, remote(StateInit))
		fin := remote(StateUp)
		fin.Final = true
		s.Receive(t0, fin)
		hi := 300 * time.Millisecond
		if mult == 1 {
			hi = 270 * time.Millisecond
		}
		lo, minSeen, maxSeen := 225*time.Millisecond, time.Hour, time.Duration(0)
		now := t0
		for range 2000 {
			r := s.Advance(now)
			if r.Send {
				d := s.nextTx.Sub(now)
				minSeen, maxSeen = min(minSeen, d), max(maxSeen, d)
			}
			s.Receive(now, fin) // keep the detection timer away
			now = s.nextTx
		}
		if minSeen < lo || maxSeen > hi {
			t.Errorf("mult %d: intervals %v–%v; want within %v–%v", mult, minSeen, maxSeen, lo, hi)
		}
		if maxSeen-minSeen < (hi-lo)*8/10 {
			t.Errorf("mult %d: intervals %v–%v do not spread over %v–%v", mult, minSeen, maxSeen, lo, hi)
		}
	}
}
