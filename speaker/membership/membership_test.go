package membership

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func start(t *testing.T, name string, key []byte) (*Members, string) {
	t.Helper()
	port := freePort(t)
	m, err := New(Config{Name: name, BindAddr: "127.0.0.1", BindPort: port, Key: key, Meta: Meta{MACs: []string{"02:00:00:00:00:0" + name[len(name)-1:]}}, Logger: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m, fmt.Sprintf("127.0.0.1:%d", port)
}

func names(ms []Member) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Name)
	}
	return strings.Join(s, ",")
}

func waitAlive(t *testing.T, m *Members, want string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if got := names(m.Alive()); got == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("alive = %q after %v; want %q", names(m.Alive()), within, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var key = []byte("0123456789abcdef0123456789abcdef")

func TestJoinFailLeave(t *testing.T) {
	a, addrA := start(t, "n1", key)
	b, _ := start(t, "n2", key)
	c, _ := start(t, "n3", key)
	for _, m := range []*Members{b, c} {
		if n, err := m.Join([]string{addrA}); err != nil || n != 1 {
			t.Fatalf("Join = %d, %v", n, err)
		}
	}
	for _, m := range []*Members{a, b, c} {
		waitAlive(t, m, "n1,n2,n3", 5*time.Second)
	}
	if got := a.Alive()[1].Meta.MACs; len(got) != 1 || got[0] != "02:00:00:00:00:02" {
		t.Errorf("n2's metadata as n1 sees it = %v", got)
	}

	// A graceful leave is seen at once.
	if err := c.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	_ = c.Shutdown()
	took := waitAlive(t, a, "n1,n2", 2*time.Second)
	t.Logf("leave noticed after %v", took)

	// A member that just stops answering (as after kill -9) is declared dead by
	// the probes in well under a second with the Fast timings. The bound here is
	// generous: CI machines are busy; the lab measures the real figure.
	_ = b.Shutdown()
	took = waitAlive(t, a, "n1", 3*time.Second)
	t.Logf("failure noticed after %v", took)
}

func TestWrongKeyCannotJoin(t *testing.T) {
	a, addrA := start(t, "n1", key)
	b, _ := start(t, "n2", []byte("another key, 32 bytes long......"))
	if n, err := b.Join([]string{addrA}); err == nil && n > 0 {
		t.Errorf("Join with another key reached %d members", n)
	}
	// Whatever Join said, neither side may list the other afterwards.
	time.Sleep(300 * time.Millisecond)
	for _, m := range []*Members{a, b} {
		if got := len(m.Alive()); got != 1 {
			t.Errorf("alive = %q; want only itself", names(m.Alive()))
		}
	}
	// Control: with the right key the same join works, so the refusal above
	// is the key's doing.
	c, _ := start(t, "n3", key)
	if n, err := c.Join([]string{addrA}); err != nil || n != 1 {
		t.Fatalf("Join with the right key = %d, %v", n, err)
	}
}

func TestChangedSignals(t *testing.T) {
	a, addrA := start(t, "n1", nil)
	<-a.Changed() // its own join
	b, _ := start(t, "n2", nil)
	if _, err := b.Join([]string{addrA}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Changed():
	case <-time.After(3 * time.Second):
		t.Fatal("no change signalled when a member joined")
	}
}

func waitState(t *testing.T, m *Members, node string, ok func(State) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if st, has := m.States()[node]; has && ok(st) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s's state as seen: %+v", node, m.States()[node])
}

// TestStates: a member's State reaches the others when it changes, and a member
// that joins later learns every State through the one it joins.
func TestStates(t *testing.T) {
	a, addrA := start(t, "n1", key)
	b, _ := start(t, "n2", key)
	if _, err := b.Join([]string{addrA}); err != nil {
		t.Fatal(err)
	}
	waitAlive(t, a, "n1,n2", 5*time.Second)
	b.SetState(true, map[string]int{"10.0.0.1": 2}, []string{"10.0.0.9"})
	waitState(t, a, "n2", func(s State) bool { return s.Settled && s.Claims["10.0.0.1"] == 2 && len(s.Refuses) == 1 })
	seq := b.States()["n2"].Seq
	b.SetState(true, map[string]int{"10.0.0.1": 2}, []string{"10.0.0.9"})
	if got := b.States()["n2"].Seq; got != seq {
		t.Errorf("an unchanged State was published again (seq %d → %d)", seq, got)
	}
	b.SetState(true, map[string]int{"10.0.0.1": 2, "10.0.0.2": 2}, nil)
	waitState(t, a, "n2", func(s State) bool { return len(s.Claims) == 2 && len(s.Refuses) == 0 })

	// n3 joins through n1 only, and learns n2's claims from it at once.
	c, _ := start(t, "n3", key)
	if _, err := c.Join([]string{addrA}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "n2", func(s State) bool { return len(s.Claims) == 2 })

	// When n2 fails, its State goes and its claims are remembered.
	_ = b.Shutdown()
	waitAlive(t, a, "n1,n3", 5*time.Second)
	if _, ok := a.States()["n2"]; ok {
		t.Error("a failed member's State is still listed")
	}
	if got := a.LastClaims("n2"); len(got) != 2 {
		t.Errorf("LastClaims(n2) = %v; want its two claims", got)
	}
	if n, ok := a.MemberOfMAC("02:00:00:00:00:02"); !ok || n != "n2" {
		t.Errorf("MemberOfMAC(n2's MAC) = %q, %v", n, ok)
	}
	if !a.Failed("n2") {
		t.Error("Failed(n2) = false after n2 failed")
	}

	// A member that leaves (a hand-over) has not failed: its answers during
	// the hand-over are no reason to leave its keys to it.
	c.SetState(true, map[string]int{"10.0.0.3": 2}, nil)
	waitState(t, a, "n3", func(s State) bool { return len(s.Claims) == 1 })
	if err := c.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	waitAlive(t, a, "n1", 5*time.Second)
	if a.Failed("n3") {
		t.Error("Failed(n3) = true after n3 left")
	}
	if got := a.LastClaims("n3"); len(got) != 1 {
		t.Errorf("LastClaims(n3) = %v", got)
	}
}
