package conflict

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"testing/quick"
)

func TestYield(t *testing.T) {
	tests := []struct {
		self, other, key string
		want             bool
	}{
		{"node1", "node1", "10.77.0.100", false}, // never yields to itself
		{"", "", "", false},
		// Golden: these pin the hash. Speakers of different versions must agree,
		// so a change here is a wire-format change.
		{"node1", "node2", "10.77.0.100", false},
		{"node2", "node1", "10.77.0.100", true},
		{"node1", "node2", "10.77.0.104", true}, // the loser varies by key
		{"node2", "node1", "10.77.0.104", false},
		{"node1", "node2", "fd77::100", false},
		{"node1", "node3", "10.77.0.100", true},
		{"node3", "node2", "10.77.0.100", false},
	}
	for _, tt := range tests {
		if got := Yield(tt.self, tt.other, tt.key); got != tt.want {
			t.Errorf("Yield(%q, %q, %q) = %v; want %v", tt.self, tt.other, tt.key, got, tt.want)
		}
	}
}

// TestScoreGolden pins the score function itself.
func TestScoreGolden(t *testing.T) {
	tests := []struct {
		node, key string
		want      uint64
	}{
		{"node1", "10.77.0.100", 0x907700637c597e74},
		{"node2", "10.77.0.100", 0x60044234891ac895},
		{"", "", 0xa0ce5d7008011cd3},
	}
	for _, tt := range tests {
		if got := Score(tt.node, tt.key); got != tt.want {
			t.Errorf("Score(%q, %q) = %#x; want %#x", tt.node, tt.key, got, tt.want)
		}
	}
}

// TestYieldAntisymmetric: for any two different names exactly one yields.
func TestYieldAntisymmetric(t *testing.T) {
	f := func(a, b, key string) bool {
		if a == b {
			return !Yield(a, b, key)
		}
		return Yield(a, b, key) != Yield(b, a, key)
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 20000}); err != nil {
		t.Error(err)
	}
}

// TestLosesOnTie: equal scores (no colliding names are known) are settled by
// name, still antisymmetrically.
func TestLosesOnTie(t *testing.T) {
	if !loses("b", "a", 7, 7) || loses("a", "b", 7, 7) {
		t.Error("on equal scores the greater name must lose, and only it")
	}
	if !loses("a", "b", 6, 7) || loses("b", "a", 7, 6) {
		t.Error("the lower score must lose")
	}
}

// TestYieldSpreads: across many keys, each of two nodes loses about half, and
// in a larger cluster no node loses much more than its share.
func TestYieldSpreads(t *testing.T) {
	const keys = 10000
	nodes := []string{"node1", "node2", "node3", "node4", "node5"}
	losses := make(map[string]int)
	for i := range keys {
		key := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		for _, a := range nodes {
			for _, b := range nodes {
				if a != b && Yield(a, b, key) {
					losses[a]++
				}
			}
		}
	}
	// Each node meets 4 others per key: 4 × keys conflicts, half lost on average.
	want := 4 * keys / 2
	for _, n := range nodes {
		if got := losses[n]; got < want*95/100 || got > want*105/100 {
			t.Errorf("%s lost %d of %d conflicts; want about %d", n, got, 4*keys, want)
		}
	}
}

// TestYieldRandomNames runs the antisymmetry property over names shaped like
// Kubernetes node names and keys shaped like addresses.
func TestYieldRandomNames(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	name := func() string { return fmt.Sprintf("worker-%d.example.internal", r.IntN(50)) }
	for range 100000 {
		a, b := name(), name()
		key := fmt.Sprintf("fd77::%x", r.IntN(1<<16))
		ab, ba := Yield(a, b, key), Yield(b, a, key)
		if a == b && (ab || ba) {
			t.Fatalf("%s yields to itself for %s", a, key)
		}
		if a != b && ab == ba {
			t.Fatalf("Yield(%s, %s, %s) = %v and Yield(%s, %s, %s) = %v; want exactly one true", a, b, key, ab, b, a, key, ba)
		}
	}
}

func BenchmarkYield(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Yield("worker-17.example.internal", "worker-4.example.internal", "10.77.0.100")
	}
}
