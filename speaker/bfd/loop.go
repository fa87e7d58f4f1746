package bfd

import (
	"errors"
	"net"
	"net/netip"
	"time"
)

// applyLocked carries out what the Session asked for.
func (m *Manager) applyLocked(now time.Time, ss *session, r Result) {
	ss.next = r.Next
	if r.Changed {
		ss.since = now
		m.log.Info("bfd session state", "peer", ss.peer.Address, "from", r.From, "to", ss.s.State(),
			"diag", ss.s.Diag(), "remoteState", ss.s.RemoteState(), "remoteDiag", ss.s.RemoteDiag())
		m.reportLocked(ss, r.From)
	}
	if r.Send {
		b := r.Packet.Marshal(ss.buf[:0])
		if err := ss.tx.Send(b); err != nil {
			// The next periodic packet retries; a lasting failure shows up
			// as the peer's detection, which is the truth about the path.
			m.log.Debug("bfd: send failed", "peer", ss.peer.Address, "err", err)
		} else {
			ss.out++
		}
		if ss.adminLeft > 0 {
			ss.adminLeft--
			if ss.adminLeft == 0 {
				m.forgetLocked(ss)
			}
		}
	}
}

// reportLocked decides what OnChange hears (see Config.OnChange).
func (m *Manager) reportLocked(ss *session, from State) {
	if ss.adminLeft > 0 {
		return
	}
	st := ss.s.State()
	switch {
	case st == StateUp:
		if !ss.up {
			m.notes.push(ss.peer.Address, true)
		}
		ss.up = true
	case from == StateUp && ss.s.RemoteState() == StateAdminDown:
		// RFC 5882 §3.2: the peer took BFD down on purpose; the path is not
		// known to have failed. Clients keep their sessions.
		ss.up = false
	case from == StateUp:
		ss.up = false
		m.notes.push(ss.peer.Address, false)
	}
}

// receive handles one datagram from Conn.
func (m *Manager) receive(b []byte, from netip.Addr) {
	p, err := Unmarshal(b)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		r, _ := err.(DropReason) // Unmarshal returns nothing else
		m.dropLocked(r, from)
		return
	}
	var ss *session
	if p.YourDiscriminator != 0 {
		ss = m.byDisc[p.YourDiscriminator]
		if ss != nil && key(ss.peer.Address) != key(from) {
			ss = nil // RFC 5881 §4: a session is bound to its peer's address
		}
	} else {
		ss = m.byAddr[key(from)]
	}
	if ss == nil {
		m.dropLocked(DropNoSession, from)
		return
	}
	ss.in++
	now := m.now()
	m.applyLocked(now, ss, ss.s.Receive(now, &p))
	if !ss.next.IsZero() && (m.armed.IsZero() || ss.next.Before(m.armed)) {
		m.kickLocked()
	}
}

func (m *Manager) dropLocked(r DropReason, from netip.Addr) {
	if r < dropReasonEnd {
		m.rxDrops[r]++
	}
	m.log.Debug("bfd: packet dropped", "from", from, "reason", r)
}

// advance fires every session timer due at now and returns the next deadline.
func (m *Manager) advance() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var next time.Time
	for _, ss := range m.byDisc {
		if !ss.next.IsZero() && !now.Before(ss.next) {
			m.applyLocked(now, ss, ss.s.Advance(now))
		}
	}
	for _, ss := range m.byDisc { // applyLocked may have forgotten some
		if !ss.next.IsZero() && (next.IsZero() || ss.next.Before(next)) {
			next = ss.next
		}
	}
	m.armed = next
	return next
}

func (m *Manager) kickLocked() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// recvLoop is the goroutine that reads the Conn; it ends when the Conn is
// closed.
func (m *Manager) recvLoop() {
	defer m.wg.Done()
	var buf [maxDatagram]byte
	for {
		n, from, err := m.conn.Recv(buf[:])
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-m.stop:
				return
			default:
			}
			m.log.Warn("bfd: receive failed", "err", err)
			continue
		}
		m.receive(buf[:n], from)
	}
}

// timerLoop is the goroutine that fires the sessions' timers; it ends at stop.
func (m *Manager) timerLoop() {
	defer m.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		next := m.advance()
		if next.IsZero() {
			t.Reset(time.Hour)
		} else {
			t.Reset(max(time.Until(next), 0))
		}
		select {
		case <-m.stop:
			return
		case <-m.kick:
		case <-t.C:
		}
	}
}

// Dropped returns how many received datagrams were dropped, by reason; the
// GTSM drops (DropTTL) come from the Conn when it counts them, as UDP does.
func (m *Manager) Dropped() map[DropReason]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[DropReason]uint64{}
	for r, n := range m.rxDrops {
		if n > 0 {
			out[DropReason(r)] = n
		}
	}
	if c, ok := m.conn.(interface{ DroppedTTL() uint64 }); ok {
		if n := c.DroppedTTL(); n > 0 {
			out[DropTTL] = n
		}
	}
	return out
}
