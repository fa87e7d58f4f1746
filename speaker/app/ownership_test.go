package app

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestClaimsUpdate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newClaims()
	if got := c.update([]string{"a", "b"}, 3, t0); !cmp.Equal(got, map[string]int{"a": 3, "b": 3}) {
		t.Errorf("first claims = %v", got)
	}
	// The view shrinks (a partition): weights follow it down.
	if got := c.update([]string{"a", "b", "c"}, 1, t0.Add(time.Second)); !cmp.Equal(got, map[string]int{"a": 1, "b": 1, "c": 1}) {
		t.Errorf("claims seeing one node = %v", got)
	}
	// It grows again: held claims keep their lowered weight, so the side
	// that saw more wins a tie; a new claim takes the view.
	if got := c.update([]string{"a", "d"}, 3, t0.Add(2*time.Second)); !cmp.Equal(got, map[string]int{"a": 1, "d": 3}) {
		t.Errorf("claims after the heal = %v", got)
	}
	if !c.at["a"].Equal(t0) || !c.at["d"].Equal(t0.Add(2*time.Second)) || len(c.at) != 2 {
		t.Errorf("claim times = %v", c.at)
	}
	c.drop()
	if got := c.update(nil, 3, t0); len(got) != 0 || len(c.at) != 0 {
		t.Errorf("after drop: %v %v", got, c.at)
	}
}

func TestYieldDecision(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	before, after := t0.Add(-time.Minute), t0.Add(time.Minute)
	// Both sides of each case must decide opposite ways: exactly one yields.
	for _, tt := range []struct {
		name string
		// what n1 knows, then what n2 knows
		n1OtherHeld bool
		n1Claimed   time.Time
		n1OtherLeft time.Time
		n2OtherHeld bool
		n2Claimed   time.Time
		n2OtherLeft time.Time
		n1Yields    bool
	}{
		// n1 held the key; gossip between them is cut at t0; n2 took it.
		{"the holder before the cut keeps it", false, before, t0, true, after, t0, false},
		{"the taker during the cut yields", true, after, t0, false, before, t0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			y1 := yieldDecision("n1", "n2", "10.0.0.1", tt.n1OtherHeld, tt.n1Claimed, tt.n1OtherLeft)
			y2 := yieldDecision("n2", "n1", "10.0.0.1", tt.n2OtherHeld, tt.n2Claimed, tt.n2OtherLeft)
			if y1 != tt.n1Yields || y1 == y2 {
				t.Errorf("n1 yields %v, n2 yields %v; want n1 %v and exactly one", y1, y2, tt.n1Yields)
			}
		})
	}
	// Neither held it before (both took it during the cut): the hash decides,
	// and exactly one yields, for any key.
	for _, key := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "fd00::1"} {
		y1 := yieldDecision("n1", "n2", key, false, after, t0)
		y2 := yieldDecision("n2", "n1", key, false, after, t0)
		if y1 == y2 {
			t.Errorf("key %s: both yield = %v", key, y1)
		}
	}
}
