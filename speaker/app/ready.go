package app

import (
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/heraldlb/herald/speaker/membership"
)

// readiness is what /readyz decides from: the speaker is ready when it announces
// what the cluster expects of it, so that a DaemonSet rollout (maxUnavailable 1)
// restarts the next node only once this one can take addresses over.
type readiness struct {
	// Synced: the caches have synced.
	Synced bool
	// Joined: this speaker has heard another one since it started (or since
	// its link came back).
	Joined bool
	// Alone: the cluster has no other Ready node, so there is no one to hear.
	Alone bool
	// Applied: an announcement set was applied after the start gate (see
	// speaker.sync) let this speaker announce.
	Applied bool
	// Since is this member's Since; Peers are the other live members' Sinces.
	// Together with HoldDown they say whether the others hold it down.
	Since    time.Time
	Peers    []time.Time
	HoldDown time.Duration
	// Stopping: the speaker is handing over (SIGTERM).
	Stopping bool
}

// Reasons /readyz gives, in the order they are checked.
var (
	errNotSynced  = errors.New("caches not synced")
	errStopping   = errors.New("handing over: stopping")
	errNotJoined  = errors.New("no other speaker heard yet")
	errNotApplied = errors.New("first announcement set not applied yet")
	errHeldDown   = errors.New("held down after joining")
)

// check returns nil when the speaker is ready at now, else why not.
//
// A held-down speaker is one the election keeps off addresses because a peer
// settled before it arrived (election rule 2): it would take nothing over if
// the next node stopped now. A speaker whose peers all arrived with it (a new
// cluster) is not held down, as in the election.
func (r readiness) check(now time.Time) error {
	switch {
	case !r.Synced:
		return errNotSynced
	case r.Stopping:
		return errStopping
	case !r.Joined && !r.Alone:
		return errNotJoined
	case !r.Applied:
		return errNotApplied
	}
	settled := r.Since.Add(r.HoldDown)
	if !now.Before(settled) {
		return nil
	}
	for _, p := range r.Peers {
		if !p.Add(r.HoldDown).After(r.Since) {
			return errHeldDown
		}
	}
	return nil
}

// readyState holds the speaker loop's readiness for the probe handler.
type readyState struct {
	// mu guards r.
	mu  sync.Mutex
	r   readiness
	now func() time.Time
}

func (s *readyState) update(f func(*readiness)) {
	s.mu.Lock()
	f(&s.r)
	s.mu.Unlock()
}

// setMembers records this member's and its live peers' Sinces.
func (s *readyState) setMembers(self string, alive []membership.Member) {
	s.update(func(r *readiness) {
		// A new slice: Check reads copies of r outside the lock.
		r.Peers = make([]time.Time, 0, len(alive))
		for _, m := range alive {
			if m.Name == self {
				r.Since = m.Since
			} else {
				r.Peers = append(r.Peers, m.Since)
			}
		}
	})
}

// Check is the /readyz checker.
func (s *readyState) Check(*http.Request) error {
	s.mu.Lock()
	r := s.r
	s.mu.Unlock()
	now := time.Now
	if s.now != nil {
		now = s.now
	}
	return r.check(now())
}
