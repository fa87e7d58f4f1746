package membership

import (
	"encoding/json"
	"maps"
	"slices"
	"sync"
	"time"
)

// State is what a member says about its announcements; elections read it.
type State struct {
	// Epoch and Seq order a member's States: Epoch is when the member
	// started (by its own clock, so only that member's States are compared
	// with it) and Seq counts its changes since.
	Epoch int64  `json:"epoch"`
	Seq   uint64 `json:"seq"`
	// Settled: the member has been with the others for its hold-down, by its
	// own clock.
	Settled bool `json:"settled,omitempty"`
	// Claims maps each key the member announces to the claim's weight (see
	// package election).
	Claims map[string]int `json:"claims,omitempty"`
	// Refuses lists keys the member was elected for and cannot announce.
	Refuses []string `json:"refuses,omitempty"`
	// Leaving: the member is handing over and about to leave memberlist
	// (its last State).
	Leaving bool `json:"leaving,omitempty"`
}

func (s State) newer(than State) bool {
	return s.Epoch > than.Epoch || s.Epoch == than.Epoch && s.Seq > than.Seq
}

// record is a State on the wire.
type record struct {
	Node  string `json:"node"`
	State State  `json:"state"`
}

// SetState publishes this member's State (Epoch and Seq are set here) and
// sends it to every other live member. It does nothing when nothing changed.
func (m *Members) SetState(settled bool, claims map[string]int, refuses []string) {
	m.mu.Lock()
	cur := m.states[m.name]
	// Seq 0 has never been sent: a member that claims nothing still says so,
	// as the others wait for every member's State before taking anything.
	if cur.Seq > 0 && cur.Settled == settled && maps.Equal(cur.Claims, claims) && slices.Equal(cur.Refuses, refuses) {
		m.mu.Unlock()
		return
	}
	m.states[m.name] = State{Epoch: cur.Epoch, Seq: cur.Seq + 1, Settled: settled, Claims: maps.Clone(claims), Refuses: append([]string(nil), refuses...)}
	m.mu.Unlock()
	select {
	case m.send <- struct{}{}:
	default:
	}
}

// States returns the State of every live member that has published one, this
// member's included.
func (m *Members) States() map[string]State {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]State, len(m.alive))
	for n := range m.alive {
		if st, ok := m.states[n]; ok {
			out[n] = st
		}
	}
	if st, ok := m.states[m.name]; ok {
		out[m.name] = st
	}
	return out
}

// LastClaims returns the claims a member held when this one last saw it leave or
// fail, or nil.
func (m *Members) LastClaims(node string) map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastClaims[node]
}

// LeftAt returns when this member last saw node leave or fail, or zero.
func (m *Members) LeftAt(node string) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.leftAt[node]
}

// Failed reports whether node is not alive and was last seen failing rather
// than leaving: it may still be alive on the LAN with only gossip cut off.
func (m *Members) Failed(node string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, alive := m.alive[node]
	return !alive && m.failed[node]
}

// MemberOfMAC returns the member (live or seen before) whose metadata lists mac.
func (m *Members) MemberOfMAC(mac string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, mem := range m.alive {
		for _, x := range mem.Meta.MACs {
			if x == mac {
				return mem.Name, true
			}
		}
	}
	if name, ok := m.macOwner[mac]; ok {
		return name, true
	}
	return "", false
}

// merge takes others' States that are newer than what this member holds. It
// never takes one about itself: its own State is its own. It reports whether
// anything changed.
func (m *Members) merge(recs []record) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for _, r := range recs {
		if r.Node == m.name {
			continue
		}
		if cur, ok := m.states[r.Node]; ok && !r.State.newer(cur) {
			continue
		}
		m.states[r.Node] = r.State
		if _, live := m.alive[r.Node]; live {
			changed = true
		}
	}
	return changed
}

// sender sends this member's State to every other live member whenever it
// changes, until Shutdown. Sends are coalesced: a burst of changes sends the
// latest State once. A member that misses one gets it at the next push-pull.
func (m *Members) sender() {
	for {
		select {
		case <-m.done:
			return
		case <-m.send:
		}
		m.mu.Lock()
		b, err := json.Marshal(record{Node: m.name, State: m.states[m.name]})
		m.mu.Unlock()
		if err != nil {
			m.log.Error(err, "Encoding this member's state")
			continue
		}
		m.sendAll(b)
		// At most one round of sends per gossip interval's worth of changes.
		time.Sleep(20 * time.Millisecond)
	}
}

// sendAll sends b to every other live member at once, over TCP, and returns
// when every send has ended (each is bounded by memberlist's TCP timeout).
func (m *Members) sendAll(b []byte) {
	// Not under mu: memberlist calls the event delegate, which takes mu, with
	// its own lock held.
	var wg sync.WaitGroup
	for _, n := range m.list.Members() {
		if n.Name == m.name {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.list.SendReliable(n, b); err != nil {
				m.log.V(1).Info("Sending state", "member", n.Name, "error", err.Error())
			}
		}()
	}
	wg.Wait()
}
