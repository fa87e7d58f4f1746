package app

import (
	"errors"
	"testing"
)

func TestReadinessCheck(t *testing.T) {
	announcing := readiness{Synced: true, Joined: true, Applied: true}
	for _, tt := range []struct {
		name string
		r    func(r readiness) readiness
		want error
	}{
		{"announcing", func(r readiness) readiness { return r }, nil},
		{"caches not synced", func(r readiness) readiness { r.Synced = false; return r }, errNotSynced},
		{"handing over (SIGTERM)", func(r readiness) readiness { r.Stopping = true; return r }, errStopping},
		{"started, no peer heard", func(r readiness) readiness { r.Joined = false; return r }, errNotJoined},
		{"the only node of the cluster", func(r readiness) readiness { r.Joined, r.Alone = false, true; return r }, nil},
		{"joined, nothing applied yet", func(r readiness) readiness { r.Applied = false; return r }, errNotApplied},
		{"stopping wins over everything else", func(r readiness) readiness { r.Stopping, r.Applied = true, false; return r }, errStopping},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r(announcing).check(); !errors.Is(got, tt.want) {
				t.Errorf("check = %v; want %v", got, tt.want)
			}
		})
	}
}

func TestReadyStateCheck(t *testing.T) {
	s := &readyState{r: readiness{Synced: true, Joined: true}}
	if err := s.Check(nil); !errors.Is(err, errNotApplied) {
		t.Errorf("Check = %v; want %v", err, errNotApplied)
	}
	s.update(func(r *readiness) { r.Applied = true })
	if err := s.Check(nil); err != nil {
		t.Errorf("Check = %v; want nil", err)
	}
}
