package app

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/speaker/plan"
)

func TestParseCommunity(t *testing.T) {
	for in, want := range map[string]uint32{"64512:100": 64512<<16 | 100, "0:0": 0, "65535:65535": 0xFFFFFFFF, "no-export": 0xFFFFFF01, "no-peer": 0xFFFFFF04} {
		if got, err := ParseCommunity(in); err != nil || got != want {
			t.Errorf("ParseCommunity(%q) = %#x, %v; want %#x", in, got, err, want)
		}
	}
	for _, in := range []string{"65536:1", "1:65536", "a:b", "1", "1:2:3", "", "-1:2"} {
		if _, err := ParseCommunity(in); err == nil {
			t.Errorf("ParseCommunity(%q) succeeded", in)
		}
	}
	if got, err := ParseLargeCommunity("4294967295:1:2"); err != nil || got != (plan.LargeCommunity{4294967295, 1, 2}) {
		t.Errorf("ParseLargeCommunity = %v, %v", got, err)
	}
	for _, in := range []string{"1:2", "4294967296:1:1", "a:1:1", "1:2:3:4"} {
		if _, err := ParseLargeCommunity(in); err == nil {
			t.Errorf("ParseLargeCommunity(%q) succeeded", in)
		}
	}
}

// The status writer writes the latest entry per peer, and retries a failed write
// unless a newer entry replaced it.
func TestStatusWriter(t *testing.T) {
	var mu sync.Mutex
	written := map[string][]string{}
	fail := true
	w := newStatusWriter(logr.Discard(), func(_ context.Context, peer string, e *heraldv1.BGPPeerNodeStatus) error {
		mu.Lock()
		defer mu.Unlock()
		if peer == "flaky" && fail {
			fail = false
			return errors.New("API server gone")
		}
		state := "removed"
		if e != nil {
			state = string(e.State)
		}
		written[peer] = append(written[peer], state)
		return nil
	})
	w.queue("a", &heraldv1.BGPPeerNodeStatus{State: heraldv1.BGPSessionActive})
	w.queue("a", &heraldv1.BGPPeerNodeStatus{State: heraldv1.BGPSessionEstablished})
	w.queue("flaky", &heraldv1.BGPPeerNodeStatus{State: heraldv1.BGPSessionEstablished})
	w.queue("gone", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.run(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		done := len(written["flaky"]) == 1
		got := map[string][]string{"a": written["a"], "flaky": written["flaky"], "gone": written["gone"]}
		mu.Unlock()
		if done {
			want := map[string][]string{"a": {"Established"}, "flaky": {"Established"}, "gone": {"removed"}}
			for k := range want {
				if len(got[k]) != 1 || got[k][0] != want[k][0] {
					t.Errorf("writes for %s: %v; want %v", k, got[k], want[k])
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the failed write was not retried: %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
