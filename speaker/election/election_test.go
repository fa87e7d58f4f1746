package election

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	t0   = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	long = t0.Add(-24 * time.Hour) // Since of nodes that settled long ago
)

const hold = 30 * time.Second

// ipKeys returns n distinct keys shaped like the IPs a caller passes.
func ipKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff)
	}
	return keys
}

// nodeNames returns n node names.
func nodeNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("node-%02d", i)
	}
	return names
}

// settled returns nodes that settled long ago.
func settled(names ...string) []Node {
	nodes := make([]Node, len(names))
	for i, n := range names {
		nodes[i] = Node{Name: n, Since: long}
	}
	return nodes
}

// everywhere makes every key eligible on every node.
func everywhere(keys, nodes []string) map[string][]string {
	m := make(map[string][]string, len(keys))
	for _, k := range keys {
		m[k] = nodes
	}
	return m
}

// without returns names less drop.
func without(names []string, drop string) []string {
	return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == drop })
}

// best returns the highest-scoring of nodes for key: plain rendezvous hashing.
func best(key string, nodes ...string) string {
	var b string
	var bs uint64
	for _, n := range nodes {
		if s := Score(n, key); b == "" || s > bs || s == bs && n < b {
			b, bs = n, s
		}
	}
	return b
}

// keyWhere returns the first of ipKeys for which best(key, nodes...) is want.
func keyWhere(t *testing.T, want string, nodes ...string) string {
	t.Helper()
	for _, k := range ipKeys(1000) {
		if best(k, nodes...) == want {
			return k
		}
	}
	t.Fatalf("no key where %s beats %v", want, nodes)
	return ""
}

// loads counts the keys each node owns.
func loads(owner map[string]string) map[string]int {
	l := make(map[string]int)
	for _, n := range owner {
		l[n]++
	}
	return l
}

// moved counts the keys whose owner differs between a and b, leaving out keys
// that a gave to skip.
func moved(a, b map[string]string, skip string) int {
	n := 0
	for k, o := range a {
		if o != skip && b[k] != o {
			n++
		}
	}
	return n
}

// TestScoreGolden pins Score. Speakers of two versions must agree during a
// rolling upgrade: if this test fails, every address may move and two
// speakers may announce one address until the upgrade ends.
func TestScoreGolden(t *testing.T) {
	tests := []struct {
		node, key string
		want      uint64
	}{
		{"", "", 0xcb7bd70be42f5702},
		{"node-a", "10.0.0.1", 0x08debe5419ad7edf},
		{"node-b", "10.0.0.1", 0xbd9ece35b87664a0},
		{"node-a", "fd00::1", 0xb2f1439f33971a0e},
		{"kind-worker", "172.18.255.200", 0x040b5aad9a2af899},
	}
	for _, tt := range tests {
		if got := Score(tt.node, tt.key); got != tt.want {
			t.Errorf("Score(%q, %q) = %#x; want %#x", tt.node, tt.key, got, tt.want)
		}
	}
}

// TestElectGolden pins a whole election, including the bounded-load order.
func TestElectGolden(t *testing.T) {
	nodes := []string{"node-a", "node-b", "node-c"}
	got := Elect(Input{Keys: everywhere(ipKeys(12), nodes), Nodes: settled(nodes...), Now: t0, HoldDown: hold})
	// node-a is at its cap of 5: plain rendezvous hashing gives it more.
	want := Result{Owner: map[string]string{
		"10.0.0.0": "node-a", "10.0.0.1": "node-b", "10.0.0.2": "node-b", "10.0.0.3": "node-a",
		"10.0.0.4": "node-a", "10.0.0.5": "node-c", "10.0.0.6": "node-c", "10.0.0.7": "node-c",
		"10.0.0.8": "node-b", "10.0.0.9": "node-a", "10.0.0.10": "node-a", "10.0.0.11": "node-c",
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Elect (-want +got):\n%s", diff)
	}
}

func TestFNV(t *testing.T) {
	// Test vectors from draft-eastlake-fnv.
	tests := []struct {
		in   string
		want uint64
	}{
		{"", 0xcbf29ce484222325},
		{"a", 0xaf63dc4c8601ec8c},
		{"foobar", 0x85944171f73967e8},
	}
	for _, tt := range tests {
		if got := fnv1a(tt.in); got != tt.want {
			t.Errorf("fnv1a(%q) = %#x; want %#x", tt.in, got, tt.want)
		}
	}
}

func TestElect(t *testing.T) {
	// Keys where the second-listed node outscores the first.
	kBA := keyWhere(t, "b", "a", "b")
	kAB := keyWhere(t, "a", "a", "b")
	kXA := keyWhere(t, "x", "a", "x")
	kXY := keyWhere(t, "x", "x", "y")

	tests := []struct {
		name string
		in   Input
		want Result
	}{
		{
			name: "no keys",
			in:   Input{Nodes: settled("a"), Now: t0, HoldDown: hold},
			want: Result{Owner: map[string]string{}},
		},
		{
			name: "no eligible node",
			in:   Input{Keys: map[string][]string{"k": nil}, Nodes: settled("a"), Now: t0},
			want: Result{Owner: map[string]string{}},
		},
		{
			name: "no nodes",
			in:   Input{Keys: map[string][]string{"k": {"a"}}, Now: t0},
			want: Result{Owner: map[string]string{}},
		},
		{
			name: "only unknown nodes eligible",
			in:   Input{Keys: map[string][]string{"k": {"ghost"}}, Nodes: settled("a"), Now: t0},
			want: Result{Owner: map[string]string{}},
		},
		{
			name: "down node never owns",
			in:   Input{Keys: map[string][]string{kBA: {"a", "b"}}, Nodes: settled("a"), Now: t0},
			want: Result{Owner: map[string]string{kBA: "a"}},
		},
		{
			name: "highest score wins",
			in:   Input{Keys: map[string][]string{kBA: {"a", "b"}, kAB: {"a", "b"}}, Nodes: settled("a", "b"), Now: t0},
			want: Result{Owner: map[string]string{kBA: "b", kAB: "a"}},
		},
		{
			name: "eligibility restricts",
			in:   Input{Keys: map[string][]string{kBA: {"a"}}, Nodes: settled("a", "b"), Now: t0},
			want: Result{Owner: map[string]string{kBA: "a"}},
		},
		{
			name: "duplicate eligible names",
			in:   Input{Keys: map[string][]string{kBA: {"b", "a", "b", "a"}}, Nodes: settled("a", "b"), Now: t0},
			want: Result{Owner: map[string]string{kBA: "b"}},
		},
		{
			name: "returning node held down",
			in: Input{
				Keys:  map[string][]string{kXA: {"a", "x"}},
				Nodes: []Node{{"a", long}, {"x", t0.Add(-time.Second)}},
				Now:   t0, HoldDown: hold,
			},
			want: Result{Owner: map[string]string{kXA: "a"}, Recheck: t0.Add(hold - time.Second)},
		},
		{
			name: "returning node settled exactly now",
			in: Input{
				Keys:  map[string][]string{kXA: {"a", "x"}},
				Nodes: []Node{{"a", long}, {"x", t0.Add(-hold)}},
				Now:   t0, HoldDown: hold,
			},
			want: Result{Owner: map[string]string{kXA: "x"}},
		},
		{
			name: "no hold-down",
			in: Input{
				Keys:  map[string][]string{kXA: {"a", "x"}},
				Nodes: []Node{{"a", long}, {"x", t0}},
				Now:   t0,
			},
			want: Result{Owner: map[string]string{kXA: "x"}},
		},
		{
			name: "negative hold-down",
			in: Input{
				Keys:  map[string][]string{kXA: {"a", "x"}},
				Nodes: []Node{{"a", long}, {"x", t0}},
				Now:   t0, HoldDown: -hold,
			},
			want: Result{Owner: map[string]string{kXA: "x"}},
		},
		{
			name: "only settling nodes eligible: best of them",
			in: Input{
				Keys:  map[string][]string{kXY: {"x", "y"}, kXA: {"a", "x"}},
				Nodes: []Node{{"a", long}, {"x", t0}, {"y", t0.Add(-time.Second)}},
				Now:   t0, HoldDown: hold,
			},
			// x is held off kXA (a served it), so Recheck is when x settles.
			want: Result{Owner: map[string]string{kXY: "x", kXA: "a"}, Recheck: t0.Add(hold)},
		},
		{
			name: "arrivals within the hold-down do not hold each other",
			in: Input{
				Keys:  map[string][]string{kXY: {"x", "y"}},
				Nodes: []Node{{"x", t0}, {"y", t0.Add(-hold + time.Second)}},
				Now:   t0, HoldDown: hold,
			},
			want: Result{Owner: map[string]string{kXY: "x"}},
		},
		{
			name: "arrival after the other settled is held",
			in: Input{
				Keys:  map[string][]string{kXY: {"x", "y"}},
				Nodes: []Node{{"x", t0}, {"y", t0.Add(-hold)}},
				Now:   t0, HoldDown: hold,
			},
			want: Result{Owner: map[string]string{kXY: "y"}, Recheck: t0.Add(hold)},
		},
		{
			name: "duplicate node takes the later Since",
			in: Input{
				Keys:  map[string][]string{kXA: {"a", "x"}},
				Nodes: []Node{{"x", long}, {"a", long}, {"x", t0}},
				Now:   t0, HoldDown: hold,
			},
			want: Result{Owner: map[string]string{kXA: "a"}, Recheck: t0.Add(hold)},
		},
		{
			name: "Since in the future",
			in: Input{
				// a settles at t0+1s; x (a clock ahead of ours) claims to
				// arrive at t0+2s, so it is held from t0+1s on.
				Keys:  map[string][]string{kXA: {"a", "x"}},
				Nodes: []Node{{"a", t0.Add(-hold + time.Second)}, {"x", t0.Add(2 * time.Second)}},
				Now:   t0, HoldDown: hold,
			},
			want: Result{Owner: map[string]string{kXA: "x"}, Recheck: t0.Add(time.Second)},
		},
		{
			name: "Since in the future, later",
			in: Input{
				Keys:  map[string][]string{kXA: {"a", "x"}},
				Nodes: []Node{{"a", t0.Add(-hold + time.Second)}, {"x", t0.Add(2 * time.Second)}},
				Now:   t0.Add(time.Second), HoldDown: hold,
			},
			want: Result{Owner: map[string]string{kXA: "a"}, Recheck: t0.Add(hold + 2*time.Second)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Elect(tt.in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Elect (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBalanceTwelveOnThree pins the balance guarantee: with 12 keys all three
// nodes may serve, cap is ceil(1.25*12/3) = 5, so no node owns more than 5
// and hence none fewer than 12-2*5 = 2, whatever the keys are.
func TestBalanceTwelveOnThree(t *testing.T) {
	nodes := []string{"node-a", "node-b", "node-c"}
	r := rand.New(rand.NewPCG(1, 2))
	worst := 12
	for trial := range 2000 {
		keys := make([]string, 12)
		for i := range keys {
			keys[i] = fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), r.IntN(256))
		}
		slices.Sort(keys)
		if len(slices.Compact(slices.Clone(keys))) != 12 {
			continue
		}
		got := Elect(Input{Keys: everywhere(keys, nodes), Nodes: settled(nodes...), Now: t0})
		l := loads(got.Owner)
		for _, n := range nodes {
			if l[n] < 2 || l[n] > 5 {
				t.Fatalf("trial %d, keys %q: %s owns %d; want 2 to 5 (loads %v)", trial, keys, n, l[n], l)
			}
			worst = min(worst, l[n])
		}
	}
	t.Logf("fewest keys on a node over 2000 trials: %d", worst)

	// Plain rendezvous hashing has no such floor.
	unbounded := 12
	for trial := range 2000 {
		keys := make([]string, 12)
		for i := range keys {
			keys[i] = fmt.Sprintf("k%d-%d", trial, i)
		}
		l := loads(elect(Input{Keys: everywhere(keys, nodes), Nodes: settled(nodes...), Now: t0}, false).Owner)
		for _, n := range nodes {
			unbounded = min(unbounded, l[n])
		}
	}
	if unbounded >= 2 {
		t.Errorf("unbounded rendezvous never left a node below 2 keys; the test no longer shows what the cap buys")
	}
}

// TestBalanceLarge checks the cap at scale and that plain rendezvous hashing
// spreads evenly (a check on the hash: a biased Score shows up here).
func TestBalanceLarge(t *testing.T) {
	keys, nodes := ipKeys(1000), nodeNames(10)
	in := Input{Keys: everywhere(keys, nodes), Nodes: settled(nodes...), Now: t0}
	const limit = 125 // ceil(1.25 * 1000 / 10)
	l := loads(Elect(in).Owner)
	lo, hi := 1000, 0
	for _, n := range nodes {
		lo, hi = min(lo, l[n]), max(hi, l[n])
	}
	if hi > limit {
		t.Errorf("bounded: a node owns %d; want at most %d (loads %v)", hi, limit, l)
	}
	t.Logf("bounded, 1000 keys on 10 nodes: loads %d to %d", lo, hi)

	// 100,000 keys on 10 nodes: each load is binomial with mean 10,000 and
	// standard deviation 95; 6 deviations is 570.
	keys = ipKeys(100000)
	u := loads(elect(Input{Keys: everywhere(keys, nodes), Nodes: settled(nodes...), Now: t0}, false).Owner)
	for _, n := range nodes {
		if u[n] < 10000-570 || u[n] > 10000+570 {
			t.Errorf("unbounded: %s owns %d of 100000; want 10000±570", n, u[n])
		}
	}
}

// TestFailureMovement checks that a node going down moves its keys and no
// others, and measures how many others move when the node also leaves the
// eligible sets, where rule 4's caps change.
func TestFailureMovement(t *testing.T) {
	tests := []struct {
		keys, nodes int
		// Most keys of surviving nodes that may move when a node leaves
		// Keys as well: the observed worst over every choice of failed node
		// (in the comment) plus room for a change of key names, not of
		// algorithm. Without rule 4 the bound is zero.
		viaKeys int
	}{
		{1000, 10, 10},  // observed 0: no node reaches its cap of 125
		{1000, 100, 20}, // observed 7 (0.7%)
		{100, 10, 5},    // observed 2
		{12, 3, 2},      // observed 1
	}
	for _, tt := range tests {
		keys, nodes := ipKeys(tt.keys), nodeNames(tt.nodes)
		in := Input{Keys: everywhere(keys, nodes), Nodes: settled(nodes...), Now: t0}
		for _, bounded := range []bool{true, false} {
			name := fmt.Sprintf("%d keys on %d nodes, bounded=%v", tt.keys, tt.nodes, bounded)
			before := elect(in, bounded).Owner
			worst := 0
			for _, failed := range nodes {
				// Down: left out of Nodes, still eligible in Keys.
				down := in
				down.Nodes = settled(without(nodes, failed)...)
				after := elect(down, bounded).Owner
				for k, o := range before {
					if o == failed && after[k] == failed {
						t.Errorf("%s: %s is down but still owns %s", name, failed, k)
					}
				}
				if n := moved(before, after, failed); n != 0 {
					t.Errorf("%s: %s went down and %d keys of other nodes moved; want 0", name, failed, n)
				}

				// Gone: left out of Keys too.
				gone := down
				gone.Keys = everywhere(keys, without(nodes, failed))
				n := moved(before, elect(gone, bounded).Owner, failed)
				worst = max(worst, n)
				if bound := tt.viaKeys * btoi(bounded); n > bound {
					t.Errorf("%s: %s left Keys and %d keys of other nodes moved; want at most %d", name, failed, n, bound)
				}
			}
			t.Logf("%s: when a node left Keys, at most %d keys of other nodes moved", name, worst)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestSecondFailure checks that a second node going down moves, besides its
// own keys, only keys that the first failure had moved, and measures how
// many of those move again.
func TestSecondFailure(t *testing.T) {
	keys, nodes := ipKeys(100), nodeNames(10)
	in := Input{Keys: everywhere(keys, nodes), Nodes: settled(nodes...), Now: t0}
	plan := Elect(in).Owner
	worst := 0
	for _, a := range nodes {
		in.Nodes = settled(without(nodes, a)...)
		oneDown := Elect(in).Owner
		for _, b := range without(nodes, a) {
			in.Nodes = settled(without(without(nodes, a), b)...)
			twoDown := Elect(in).Owner
			again := 0
			for k, o := range oneDown {
				if o == b || twoDown[k] == o {
					continue
				}
				if plan[k] != a {
					t.Errorf("%s and %s down: %s moved from %s to %s though neither was planned for it", a, b, k, o, twoDown[k])
				}
				again++
			}
			worst = max(worst, again)
		}
	}
	// Observed: 3 of 100.
	t.Logf("100 keys on 10 nodes: a second failure moved at most %d keys that the first had moved", worst)
}

// TestHoldDown checks that a node that fails and returns takes nothing back
// until its hold-down ends, and then exactly what it had.
func TestHoldDown(t *testing.T) {
	keys, nodes := ipKeys(200), nodeNames(5)
	const x = "node-04"
	// One key only x may serve: it must be served during the hold-down too.
	keys = append(keys, "only-x")
	eligible := everywhere(keys, nodes)
	eligible["only-x"] = []string{x}

	steady := Elect(Input{Keys: eligible, Nodes: settled(nodes...), Now: t0, HoldDown: hold})
	if got := loads(steady.Owner)[x]; got < 2 {
		t.Fatalf("%s owns %d keys before failing; the test needs some", x, got)
	}
	failed := Elect(Input{Keys: eligible, Nodes: settled(without(nodes, x)...), Now: t0, HoldDown: hold})
	if _, ok := failed.Owner["only-x"]; ok {
		t.Errorf("only-x has an owner while %s is down", x)
	}
	delete(failed.Owner, "only-x")

	back := t0.Add(time.Minute) // x returns
	returned := append(settled(without(nodes, x)...), Node{Name: x, Since: back})
	for _, tt := range []struct {
		name string
		now  time.Time
		want Result
	}{
		{"at return", back, Result{Owner: with(failed.Owner, "only-x", x), Recheck: back.Add(hold)}},
		{"just before settling", back.Add(hold - 1), Result{Owner: with(failed.Owner, "only-x", x), Recheck: back.Add(hold)}},
		{"settled", back.Add(hold), Result{Owner: steady.Owner}},
		{"long after", back.Add(time.Hour), Result{Owner: steady.Owner}},
	} {
		got := Elect(Input{Keys: eligible, Nodes: returned, Now: tt.now, HoldDown: hold})
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
}

// with returns a copy of m with m[k] = v.
func with(m map[string]string, k, v string) map[string]string {
	m = maps.Clone(m)
	m[k] = v
	return m
}

// TestColdStart pins why rule 2 compares arrivals: speakers that start
// seconds apart get the steady-state owners at once and keep them, instead
// of the first to settle taking every key.
func TestColdStart(t *testing.T) {
	keys, names := ipKeys(300), nodeNames(3)
	eligible := everywhere(keys, names)
	steady := Elect(Input{Keys: eligible, Nodes: settled(names...), Now: t0, HoldDown: hold}).Owner
	nodes := []Node{{names[0], t0}, {names[1], t0.Add(2 * time.Second)}, {names[2], t0.Add(4 * time.Second)}}
	for _, now := range []time.Duration{4 * time.Second, hold, hold + 3*time.Second, time.Hour} {
		got := Elect(Input{Keys: eligible, Nodes: nodes, Now: t0.Add(now), HoldDown: hold})
		if diff := cmp.Diff(Result{Owner: steady}, got); diff != "" {
			t.Errorf("t0+%v (-want +got):\n%s", now, diff)
		}
	}
}

// randomInput returns an input with unknown names, duplicates, empty sets,
// settling nodes and Since values in the future.
func randomInput(r *rand.Rand) Input {
	names := nodeNames(1 + r.IntN(8))
	in := Input{Keys: make(map[string][]string), Now: t0, HoldDown: time.Duration(r.IntN(3)) * 10 * time.Second}
	for _, n := range names {
		if r.IntN(8) == 0 {
			continue // down
		}
		since := long
		if r.IntN(2) == 0 {
			since = t0.Add(time.Duration(r.IntN(60)-40) * time.Second)
		}
		in.Nodes = append(in.Nodes, Node{Name: n, Since: since})
		if r.IntN(10) == 0 {
			in.Nodes = append(in.Nodes, Node{Name: n, Since: t0.Add(-time.Duration(r.IntN(40)) * time.Second)})
		}
	}
	for _, k := range ipKeys(r.IntN(60)) {
		var e []string
		for _, n := range append(names, "ghost") {
			if r.IntN(3) > 0 {
				e = append(e, n)
			}
		}
		if r.IntN(5) == 0 && len(e) > 0 {
			e = append(e, e[0])
		}
		in.Keys[k] = e
	}
	return in
}

// shuffled returns in with every slice copied and shuffled.
func shuffled(r *rand.Rand, in Input) Input {
	out := in
	out.Nodes = slices.Clone(in.Nodes)
	r.Shuffle(len(out.Nodes), func(i, j int) { out.Nodes[i], out.Nodes[j] = out.Nodes[j], out.Nodes[i] })
	out.Keys = make(map[string][]string, len(in.Keys))
	for k, e := range in.Keys {
		e = slices.Clone(e)
		r.Shuffle(len(e), func(i, j int) { e[i], e[j] = e[j], e[i] })
		out.Keys[k] = e
	}
	return out
}

func TestOrderIndependence(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 500 {
		in := randomInput(r)
		want := Elect(in)
		for range 3 {
			if diff := cmp.Diff(want, Elect(shuffled(r, in))); diff != "" {
				t.Fatalf("trial %d: shuffled input elects differently (-original +shuffled):\n%s", trial, diff)
			}
		}
	}
}

// TestSharedLists checks that keys sharing one eligible slice, or prefixes
// of one array, elect as if each had its own copy.
func TestSharedLists(t *testing.T) {
	names := nodeNames(6)
	nodes := settled(names...)
	nodes[2].Since = t0 // held off where others serve
	in := Input{Keys: make(map[string][]string), Nodes: nodes[1:], Now: t0, HoldDown: hold}
	for i, k := range ipKeys(300) {
		in.Keys[k] = names[:2+i%5] // five prefixes of one array
	}
	copied := in
	copied.Keys = make(map[string][]string)
	for k, e := range in.Keys {
		copied.Keys[k] = slices.Clone(e)
	}
	if diff := cmp.Diff(Elect(copied), Elect(in)); diff != "" {
		t.Errorf("shared lists elect differently (-copied +shared):\n%s", diff)
	}
	if l := loads(Elect(in).Owner); len(l) != 4 {
		t.Errorf("loads %v; want 4 owners (node-00 is down, node-02 held down)", l)
	}
}

// TestInvariants checks, over random inputs, that owners are eligible and
// listed, that no listed-and-eligible key lacks an owner, and that Recheck is
// complete: the owners do not change before it, and never if it is zero.
func TestInvariants(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := range 1000 {
		checkInvariants(t, fmt.Sprint("trial ", trial), randomInput(r))
	}
}

func checkInvariants(t *testing.T, name string, in Input) {
	t.Helper()
	got := Elect(in)
	listed, settling := make(map[string]bool), make(map[string]bool)
	for _, n := range in.Nodes {
		listed[n.Name] = true
		settling[n.Name] = settling[n.Name] || in.HoldDown > 0 && n.Since.Add(in.HoldDown).After(in.Now)
	}
	// The plan (rule 5) is the election with every eligible node up.
	everyone := make(map[string]bool)
	for _, e := range in.Keys {
		for _, n := range e {
			everyone[n] = true
		}
	}
	plan := Elect(Input{Keys: in.Keys, Nodes: settled(slices.Collect(maps.Keys(everyone))...)})
	for k, e := range in.Keys {
		o, ok := got.Owner[k]
		canServe := slices.ContainsFunc(e, func(n string) bool { return listed[n] })
		if ok != canServe {
			t.Fatalf("%s: key %s has owner %v; want an owner %v", name, k, ok, canServe)
		}
		if ok && (!listed[o] || !slices.Contains(e, o)) {
			t.Fatalf("%s: key %s owned by %s, not listed and eligible (%v)", name, k, o, e)
		}
		// A key whose planned owner is up and settled keeps it (rule 5).
		if p, ok := plan.Owner[k]; ok && listed[p] && !settling[p] && o != p {
			t.Fatalf("%s: key %s owned by %s; want its planned owner %s, which is up and settled", name, k, o, p)
		}
	}
	if len(got.Owner) > len(in.Keys) {
		t.Fatalf("%s: %d owners for %d keys", name, len(got.Owner), len(in.Keys))
	}
	if !got.Recheck.IsZero() && !got.Recheck.After(in.Now) {
		t.Fatalf("%s: Recheck %v not after Now %v", name, got.Recheck, in.Now)
	}
	// The owners can only change when some node settles; try just before and
	// at every such time up to Recheck.
	for _, n := range in.Nodes {
		for _, at := range []time.Time{n.Since.Add(in.HoldDown).Add(-1), n.Since.Add(in.HoldDown)} {
			if !at.After(in.Now) || !got.Recheck.IsZero() && !at.Before(got.Recheck) {
				continue
			}
			later := in
			later.Now = at
			if diff := cmp.Diff(got.Owner, Elect(later).Owner); diff != "" {
				t.Fatalf("%s: owners change at %v, before Recheck %v (-Now +then):\n%s", name, at, got.Recheck, diff)
			}
		}
	}
}

func FuzzElect(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Add(uint64(0), uint64(0))
	f.Add(uint64(42), uint64(7))
	f.Fuzz(func(t *testing.T, s1, s2 uint64) {
		r := rand.New(rand.NewPCG(s1, s2))
		in := randomInput(r)
		checkInvariants(t, "fuzz", in)
		if diff := cmp.Diff(Elect(in), Elect(shuffled(r, in))); diff != "" {
			t.Fatalf("shuffled input elects differently:\n%s", diff)
		}
	})
}
