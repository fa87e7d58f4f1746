package app

import (
	"errors"
	"net/http"
	"sync"
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
	// Stopping: the speaker is handing over (SIGTERM).
	Stopping bool
}

// Reasons /readyz gives, in the order they are checked.
var (
	errNotSynced  = errors.New("caches not synced")
	errStopping   = errors.New("handing over: stopping")
	errNotJoined  = errors.New("no other speaker heard yet")
	errNotApplied = errors.New("first announcement set not applied yet")
)

// check returns nil when the speaker is ready, else why not. A speaker that has
// just joined is ready although it is not settled yet: if the next node of a
// rollout stops, its keys go to settled nodes first and to this one only if
// there are none, so it is never in the way.
func (r readiness) check() error {
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
	return nil
}

// readyState holds the speaker loop's readiness for the probe handler.
type readyState struct {
	// mu guards r.
	mu sync.Mutex
	r  readiness
}

func (s *readyState) update(f func(*readiness)) {
	s.mu.Lock()
	f(&s.r)
	s.mu.Unlock()
}

// Check is the /readyz checker.
func (s *readyState) Check(*http.Request) error {
	s.mu.Lock()
	r := s.r
	s.mu.Unlock()
	return r.check()
}
