package membership

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/memberkey"
)

var newKey = []byte("fedcba9876543210fedcba9876543210")

// TestKeyRotation rolls a new key into three members through their keyrings, as
// speakers do (memberkey.Next), while watching that none ever sees another go.
func TestKeyRotation(t *testing.T) {
	a, addrA := start(t, "n1", key)
	b, _ := start(t, "n2", key)
	c, _ := start(t, "n3", key)
	all := []*Members{a, b, c}
	for _, m := range []*Members{b, c} {
		if _, err := m.Join([]string{addrA}); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range all {
		waitAlive(t, m, "n1,n2,n3", 5*time.Second)
	}
	var lost atomic.Int32
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			for _, m := range all {
				if names(m.Alive()) != "n1,n2,n3" {
					lost.Add(1)
				}
			}
		}
	}()

	want := Fingerprint(newKey)
	start := time.Now()
	steps := 0
	for {
		done := true
		for _, m := range all {
			others := map[string][]string{}
			for _, mem := range m.Alive() {
				if mem.Name != m.name {
					others[mem.Name] = mem.Meta.Keys
				}
			}
			st := memberkey.Next(want, m.KeyFingerprints(), others, false)
			var err error
			switch st.Action {
			case memberkey.Add:
				err = m.AddKey(newKey)
			case memberkey.Use:
				err = m.UseKey(st.Key)
			case memberkey.Remove:
				err = m.RemoveKey(st.Key)
			}
			if err != nil {
				t.Fatalf("%s: %v: %v", m.name, st.Action, err)
			}
			if st.Action != memberkey.Done {
				done = false
			}
			if st.Action != memberkey.Done && st.Action != memberkey.Wait {
				steps++
			}
		}
		if done {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("rotation not done after 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Gossip keeps flowing for a while on the new key alone.
	time.Sleep(time.Second)
	close(stop)
	<-watched
	t.Logf("rotation took %v, %d steps", time.Since(start)-time.Second, steps)
	if steps != 9 {
		t.Errorf("%d steps; want 3 per member", steps)
	}
	if n := lost.Load(); n > 0 {
		t.Errorf("a member lost sight of another %d times during the rotation", n)
	}
	for _, m := range all {
		if got := m.KeyFingerprints(); !slices.Equal(got, []string{want}) {
			t.Errorf("%s ends with keys %v; want only %v", m.name, got, want)
		}
		for _, mem := range m.Alive() {
			if !slices.Equal(mem.Meta.Keys, []string{want}) {
				t.Errorf("%s sees %s publish keys %v; want %v", m.name, mem.Name, mem.Meta.Keys, []string{want})
			}
		}
	}
}

// TestStartDuringRotation: a member that starts while the others hold the new
// key beside the old one (step 1) joins only if it holds the old key too, as the
// others still encrypt with it: why the Secret keeps the previous key.
func TestStartDuringRotation(t *testing.T) {
	a, addrA := start(t, "n1", key)
	if err := a.AddKey(newKey); err != nil {
		t.Fatal(err)
	}
	b, _ := start(t, "n2", newKey)
	if n, err := b.Join([]string{addrA}); err == nil || n != 0 {
		t.Fatalf("a member with the new key alone joined one encrypting with the old (%d, %v)", n, err)
	}
	c, err := New(Config{Name: "n3", BindAddr: "127.0.0.1", BindPort: freePort(t), Key: newKey, OldKeys: [][]byte{key}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Shutdown() })
	if got := c.KeyFingerprints(); !slices.Equal(got, []string{Fingerprint(newKey), Fingerprint(key)}) {
		t.Errorf("keys = %v; want the new key first, then the old", got)
	}
	if _, err := c.Join([]string{addrA}); err != nil {
		t.Fatalf("a member holding both keys could not join: %v", err)
	}
	// (n1 may list n2 for a while: it read n2's join before its answer failed.)
	deadline := time.Now().Add(2 * time.Second)
	for !slices.ContainsFunc(a.Alive(), func(m Member) bool { return m.Name == "n3" }) {
		if time.Now().After(deadline) {
			t.Fatalf("n1 does not see n3: %s", names(a.Alive()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFingerprint(t *testing.T) {
	if Fingerprint(key) == Fingerprint(newKey) || len(Fingerprint(key)) != 16 {
		t.Errorf("Fingerprint: %q, %q", Fingerprint(key), Fingerprint(newKey))
	}
}
