package bfd

import (
	"time"
)

// Timers are a session's configured intervals.
type Timers struct {
	// DesiredMinTx is how often we would like to send (bfd.DesiredMinTxInterval).
	DesiredMinTx time.Duration
	// RequiredMinRx is the fastest we accept packets (bfd.RequiredMinRxInterval).
	RequiredMinRx time.Duration
	// DetectMult is how many of our intervals the peer waits before it
	// declares us down (bfd.DetectMult).
	DetectMult uint8
}

// slowTx is the least DesiredMinTx advertised while a session is not Up
// (RFC 5880 §6.8.3): a session that is not Up costs one packet a second.
const slowTx = time.Second

// Session is the state of one BFD session (RFC 5880 §6.8.1) and its rules.
// It is pure: every method takes the current time, none reads a clock, sleeps,
// or starts a goroutine. After each call the caller sends the packet the
// Result carries, if any, and calls Advance again at Result.Next.
//
// The zero Session is not usable; use NewSession.
type Session struct {
	cfg Timers // what the caller configured

	state       State
	remoteState State
	diag        Diag // bfd.LocalDiag, sent in our packets
	lastDiag    Diag // the diagnostic of the last transition out of Up/Init (for status)
	localDisc   uint32
	remoteDisc  uint32
	remoteDiag  Diag

	remoteMinRx  time.Duration // bfd.RemoteMinRxInterval; 1 µs until heard (§6.8.1)
	remoteMinTx  time.Duration // the peer's DesiredMinTx
	remoteMult   uint8
	remoteDemand bool

	// advTx and advRx are the intervals in our packets. While a Poll Sequence
	// runs, oldTx and oldRx are the ones before it: timing uses the safer of
	// each pair until the peer's Final (§6.8.3).
	advTx, advRx time.Duration
	oldTx, oldRx time.Duration
	polling      bool
	finalOwed    bool

	nextTx time.Time // zero: no periodic transmission
	detect time.Time // zero: detection timer not armed
	rnd    uint64    // jitter source, seeded from the discriminator
}

// Result is what a Session asks of its caller after an input.
type Result struct {
	// Send reports whether Packet must be sent now.
	Send   bool
	Packet Packet
	// Changed reports whether the local state changed; From is the state before.
	Changed bool
	From    State
	// Next is when Advance must be called at the latest (zero: never).
	Next time.Time
}

// NewSession returns a session in state Down with local discriminator disc
// (non-zero, unique on this system) that sends its first packet at now.
func NewSession(disc uint32, t Timers, now time.Time) *Session {
	s := &Session{
		cfg:         t,
		state:       StateDown,
		remoteState: StateDown,
		localDisc:   disc,
		remoteMinRx: time.Microsecond,
		advRx:       t.RequiredMinRx,
		rnd:         uint64(disc)*0x9e3779b97f4a7c15 | 1,
	}
	s.advTx = max(t.DesiredMinTx, slowTx)
	s.oldTx, s.oldRx = s.advTx, s.advRx
	s.nextTx = now
	return s
}

// State returns the local session state.
func (s *Session) State() State { return s.state }

// RemoteState returns the state the peer last reported.
func (s *Session) RemoteState() State { return s.remoteState }

// LocalDiscriminator returns bfd.LocalDiscr.
func (s *Session) LocalDiscriminator() uint32 { return s.localDisc }

// RemoteDiscriminator returns bfd.RemoteDiscr: zero until the peer is heard,
// and again after a Detection Time without its packets.
func (s *Session) RemoteDiscriminator() uint32 { return s.remoteDisc }

// Diag returns bfd.LocalDiag, the diagnostic our packets carry.
func (s *Session) Diag() Diag { return s.diag }

// LastDownDiag returns the diagnostic of the last time the session went down
// (DiagNone if it never did).
func (s *Session) LastDownDiag() Diag { return s.lastDiag }

// RemoteDiag returns the diagnostic the peer last sent.
func (s *Session) RemoteDiag() Diag { return s.remoteDiag }

// Polling reports whether a Poll Sequence of ours is under way.
func (s *Session) Polling() bool { return s.polling }

// Timers returns the configured timers.
func (s *Session) Timers() Timers { return s.cfg }

// TxInterval returns the negotiated transmit interval before jitter (§6.8.7):
// the larger of our DesiredMinTx and the peer's RequiredMinRx; zero when the
// peer asked for no packets.
func (s *Session) TxInterval() time.Duration {
	if s.remoteMinRx == 0 {
		return 0
	}
	tx := s.advTx
	if s.polling {
		// A larger DesiredMinTx takes effect only when the poll ends.
		tx = min(s.advTx, s.oldTx)
	}
	return max(tx, s.remoteMinRx)
}

// DetectionTime returns the asynchronous-mode Detection Time (§6.8.4): the
// peer's Detect Mult times the larger of our RequiredMinRx and its
// DesiredMinTx; zero before the peer is heard.
func (s *Session) DetectionTime() time.Duration {
	rx := s.advRx
	if s.polling {
		// A smaller RequiredMinRx takes effect only when the poll ends.
		rx = max(s.advRx, s.oldRx)
	}
	return time.Duration(s.remoteMult) * max(rx, s.remoteMinTx)
}

// Receive handles a packet that passed Unmarshal and was matched to this
// session (RFC 5880 §6.8.6, from "set bfd.RemoteDiscr" on).
func (s *Session) Receive(now time.Time, p *Packet) Result {
	from := s.state
	oldInterval := s.TxInterval()
	s.remoteDisc = p.MyDiscriminator
	s.remoteState = p.State
	s.remoteDiag = p.Diag
	s.remoteDemand = p.Demand
	s.remoteMinRx = p.RequiredMinRx
	s.remoteMinTx = p.DesiredMinTx
	s.remoteMult = p.DetectMult
	if p.Final && s.polling {
		s.endPoll()
	}
	s.detect = now.Add(s.DetectionTime())
	if s.state == StateAdminDown {
		// Discarded after the bookkeeping above, as §6.8.6 orders it.
		return s.result(now, from, false)
	}
	if p.State == StateAdminDown {
		if s.state != StateDown {
			s.goDown(DiagNeighborSignaledDown)
		}
	} else {
		switch s.state {
		case StateDown:
			switch p.State {
			case StateDown:
				s.setState(StateInit)
			case StateInit:
				s.goUp()
			}
		case StateInit:
			if p.State == StateInit || p.State == StateUp {
				s.goUp()
			}
		case StateUp:
			if p.State == StateDown {
				s.goDown(DiagNeighborSignaledDown)
			}
		}
	}
	send := s.state != from
	if p.Poll {
		// §6.8.7: answer at once, regardless of the transmit timer.
		s.finalOwed = true
		send = true
	}
	// A peer that now accepts packets faster need not wait out a slow timer:
	// this is what lets a Poll Sequence take effect at once.
	if iv := s.TxInterval(); iv > 0 && (oldInterval == 0 || iv < oldInterval) {
		if next := now.Add(iv); s.nextTx.IsZero() || next.Before(s.nextTx) {
			s.nextTx = next
		}
	}
	if s.TxInterval() == 0 {
		s.nextTx = time.Time{}
	}
	return s.result(now, from, send)
}

// Advance fires the timers that are due at now: the Detection Time (§6.8.4)
// and periodic transmission (§6.8.7).
func (s *Session) Advance(now time.Time) Result {
	from := s.state
	send := false
	if !s.detect.IsZero() && !now.Before(s.detect) {
		s.detect = time.Time{}
		s.remoteDisc = 0 // §6.8.1: forget the peer after a Detection Time of silence
		s.remoteState = StateDown
		s.remoteMinRx = time.Microsecond
		s.remoteMinTx = 0
		s.remoteMult = 0
		if s.state == StateInit || s.state == StateUp {
			s.goDown(DiagControlDetectExpired)
			send = true
		}
	}
	if !s.nextTx.IsZero() && !now.Before(s.nextTx) {
		send = true
	}
	return s.result(now, from, send)
}

// SetTimers changes the configured timers. While Up, a change of either
// interval starts a Poll Sequence (§6.5, §6.8.3) and the session stays Up;
// otherwise the new values apply at once.
func (s *Session) SetTimers(now time.Time, t Timers) Result {
	s.cfg = t
	if s.state != StateUp {
		s.advTx, s.advRx = max(t.DesiredMinTx, slowTx), t.RequiredMinRx
		s.oldTx, s.oldRx = s.advTx, s.advRx
		return s.result(now, s.state, false)
	}
	return s.result(now, s.state, s.startPoll())
}

// SetAdminDown puts the session in AdminDown with diagnostic diag (§6.8.16):
// the peer is told, and packets from it are ignored until Enable. The caller
// should keep sending for about a Detection Time so the peer hears it. The
// session keeps the pace it had rather than slowing to 1 s (§6.8.3), so those
// packets fit in the peer's Detection Time.
func (s *Session) SetAdminDown(now time.Time, diag Diag) Result {
	from := s.state
	if s.state != StateAdminDown {
		if s.polling {
			s.advTx, s.advRx = min(s.advTx, s.oldTx), max(s.advRx, s.oldRx)
			s.polling = false
		}
		s.oldTx, s.oldRx = s.advTx, s.advRx
		s.setState(StateAdminDown)
		s.diag, s.lastDiag = diag, diag
	}
	return s.result(now, from, s.state != from)
}

// Enable takes the session out of AdminDown into Down.
func (s *Session) Enable(now time.Time) Result {
	from := s.state
	if s.state == StateAdminDown {
		s.setState(StateDown)
		s.diag = DiagNone
		s.advTx, s.advRx = max(s.cfg.DesiredMinTx, slowTx), s.cfg.RequiredMinRx
		s.oldTx, s.oldRx = s.advTx, s.advRx
		if s.nextTx.IsZero() {
			s.nextTx = now
		}
	}
	return s.result(now, from, s.state != from)
}

func (s *Session) setState(st State) { s.state = st }

func (s *Session) goUp() {
	s.setState(StateUp)
	s.diag = DiagNone
	s.startPoll()
}

func (s *Session) goDown(d Diag) {
	s.setState(StateDown)
	s.diag, s.lastDiag = d, d
	s.polling = false
	s.advTx, s.advRx = max(s.cfg.DesiredMinTx, slowTx), s.cfg.RequiredMinRx
	s.oldTx, s.oldRx = s.advTx, s.advRx
}

// startPoll advertises the configured intervals, with a Poll Sequence if
// they differ from what the peer has seen; it reports whether a packet should
// go out now. A change during a poll waits for it to end (only one poll runs at
// a time), see endPoll.
func (s *Session) startPoll() bool {
	if s.polling || (s.advTx == s.cfg.DesiredMinTx && s.advRx == s.cfg.RequiredMinRx) {
		return false
	}
	s.oldTx, s.oldRx = s.advTx, s.advRx
	s.advTx, s.advRx = s.cfg.DesiredMinTx, s.cfg.RequiredMinRx
	s.polling = true
	return true
}

func (s *Session) endPoll() {
	s.polling = false
	s.oldTx, s.oldRx = s.advTx, s.advRx
	if s.state == StateUp {
		s.startPoll() // a change that arrived during the poll
	}
}

// result builds the Result and, when a packet goes out, the packet, and
// schedules the next periodic one.
func (s *Session) result(now time.Time, from State, send bool) Result {
	r := Result{Changed: s.state != from, From: from}
	if send && s.TxInterval() == 0 && !s.finalOwed && !r.Changed {
		send = false // the peer asked for no periodic packets (§6.8.7)
	}
	if send {
		r.Send = true
		r.Packet = Packet{
			Diag:              s.diag,
			State:             s.state,
			Poll:              s.polling && !s.finalOwed,
			Final:             s.finalOwed,
			DetectMult:        s.cfg.DetectMult,
			MyDiscriminator:   s.localDisc,
			YourDiscriminator: s.remoteDisc,
			DesiredMinTx:      s.advTx,
			RequiredMinRx:     s.advRx,
		}
		s.finalOwed = false
		if iv := s.TxInterval(); iv > 0 {
			s.nextTx = now.Add(s.jitter(iv))
		} else {
			s.nextTx = time.Time{}
		}
	}
	r.Next = s.nextTx
	if !s.detect.IsZero() && (r.Next.IsZero() || s.detect.Before(r.Next)) {
		r.Next = s.detect
	}
	return r
}

// jitter reduces iv by 0–25% (§6.8.7), or by 10–25% when our Detect Mult is
// 1, so one late packet cannot fail the session.
func (s *Session) jitter(iv time.Duration) time.Duration {
	// xorshift64: deterministic per session, no allocation, no lock.
	s.rnd ^= s.rnd << 13
	s.rnd ^= s.rnd >> 7
	s.rnd ^= s.rnd << 17
	lo, span := uint64(75), uint64(26) // 75..100 %
	if s.cfg.DetectMult == 1 {
		span = 16 // 75..90 %
	}
	pct := lo + s.rnd%span
	return time.Duration(uint64(iv) * pct / 100)
}
