package app

import (
	"errors"
	"testing"
	"time"

	"github.com/heraldlb/herald/speaker/membership"
)

func TestReadinessCheck(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	const hd = 10 * time.Second
	announcing := readiness{Synced: true, Joined: true, Applied: true, Since: t0, Peers: []time.Time{t0.Add(-time.Hour)}, HoldDown: hd}
	for _, tt := range []struct {
		name string
		r    func(r readiness) readiness
		now  time.Time
		want error
	}{
		{"announcing after its hold-down", func(r readiness) readiness { return r }, t0.Add(hd), nil},
		{"caches not synced", func(r readiness) readiness { r.Synced = false; return r }, t0.Add(hd), errNotSynced},
		{"handing over (SIGTERM)", func(r readiness) readiness { r.Stopping = true; return r }, t0.Add(hd), errStopping},
		{"started, no peer heard", func(r readiness) readiness { r.Joined, r.Peers = false, nil; return r }, t0.Add(time.Hour), errNotJoined},
		{"the only node of the cluster", func(r readiness) readiness { r.Joined, r.Alone, r.Peers = false, true, nil; return r }, t0.Add(time.Second), nil},
		{"joined, nothing applied yet", func(r readiness) readiness { r.Applied = false; return r }, t0.Add(hd), errNotApplied},
		{"held down by a settled peer", func(r readiness) readiness { return r }, t0.Add(hd - time.Millisecond), errHeldDown},
		{"held down by a peer settled just as it arrived", func(r readiness) readiness { r.Peers = []time.Time{t0.Add(-hd)}; return r }, t0.Add(time.Second), errHeldDown},
		{"new cluster: peers arrived with it", func(r readiness) readiness {
			r.Peers = []time.Time{t0.Add(-time.Second), t0.Add(time.Second)}
			return r
		}, t0.Add(time.Second), nil},
		{"stopping wins over everything else", func(r readiness) readiness { r.Stopping, r.Applied = true, false; return r }, t0.Add(hd), errStopping},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r(announcing).check(tt.now); !errors.Is(got, tt.want) {
				t.Errorf("check = %v; want %v", got, tt.want)
			}
		})
	}
}

func TestReadyStateMembers(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	s := &readyState{r: readiness{Synced: true, Joined: true, Applied: true, HoldDown: 10 * time.Second}, now: func() time.Time { return t0.Add(time.Second) }}
	s.setMembers("n2", []membership.Member{{Name: "n1", Since: t0.Add(-time.Minute)}, {Name: "n2", Since: t0}})
	if err := s.Check(nil); !errors.Is(err, errHeldDown) {
		t.Errorf("Check = %v; want %v", err, errHeldDown)
	}
	s.now = func() time.Time { return t0.Add(10 * time.Second) }
	if err := s.Check(nil); err != nil {
		t.Errorf("Check after the hold-down = %v; want nil", err)
	}
}
