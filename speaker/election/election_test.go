package election

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

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

// settled returns settled nodes that claim nothing.
func settled(names ...string) []Node {
	nodes := make([]Node, len(names))
	for i, n := range names {
		nodes[i] = Node{Name: n, Settled: true}
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

// loads counts the keys each node owns.
func loads(owner map[string]string) map[string]int {
	l := make(map[string]int)
	for _, n := range owner {
		l[n]++
	}
	return l
}

// claimAll returns nodes claiming what owner gives them, as speakers do once
// they announce, with weight w.
func claimAll(nodes []Node, owner map[string]string, w int) []Node {
	out := slices.Clone(nodes)
	for i := range out {
		out[i].Claims = map[string]int{}
		for k, o := range owner {
			if o == out[i].Name {
				out[i].Claims[k] = w
			}
		}
	}
	return out
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

// TestElectGolden pins a whole election with no claims, including the
// bounded-load order.
func TestElectGolden(t *testing.T) {
	nodes := []string{"node-a", "node-b", "node-c"}
	got := Elect(Input{Keys: everywhere(ipKeys(12), nodes), Nodes: settled(nodes...)})
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
	abc := []string{"a", "b", "c"}
	k := "10.0.0.1"
	// best is the key's rendezvous favourite among a, b and c.
	best := Elect(Input{Keys: map[string][]string{k: abc}, Nodes: settled(abc...)}).Owner[k]
	other := "a"
	if best == "a" {
		other = "b"
	}
	tests := []struct {
		name  string
		keys  map[string][]string
		nodes []Node
		want  map[string]string
	}{
		{"no nodes", map[string][]string{k: abc}, nil, map[string]string{}},
		{"no eligible node up", map[string][]string{k: {"x"}}, settled(abc...), map[string]string{}},
		{"empty eligible list", map[string][]string{k: nil}, settled(abc...), map[string]string{}},
		{"one eligible", map[string][]string{k: {"c"}}, settled(abc...), map[string]string{k: "c"}},
		{"unknown names in lists are ignored", map[string][]string{k: {"ghost", "b"}}, settled(abc...), map[string]string{k: "b"}},
		{"a claim beats the favourite", map[string][]string{k: abc},
			[]Node{{Name: "a", Settled: true}, {Name: "b", Settled: true}, {Name: "c", Settled: true}, {Name: other, Claims: map[string]int{k: 3}}},
			map[string]string{k: best}}, // the second entry for `other` is ignored: first wins
		{"a claim by an unsettled node holds", map[string][]string{k: abc},
			append(settled(without(abc, other)...), Node{Name: other, Claims: map[string]int{k: 1}}),
			map[string]string{k: other}},
		{"a claim by an ineligible node does not count", map[string][]string{k: without(abc, other)},
			append(settled(without(abc, other)...), Node{Name: other, Settled: true, Claims: map[string]int{k: 3}}),
			map[string]string{k: Elect(Input{Keys: map[string][]string{k: without(abc, other)}, Nodes: settled(abc...)}).Owner[k]}},
		{"the heavier claim wins", map[string][]string{k: abc},
			[]Node{{Name: best, Settled: true, Claims: map[string]int{k: 1}}, {Name: other, Settled: true, Claims: map[string]int{k: 2}}},
			map[string]string{k: other}},
		{"equal claims: the higher score wins", map[string][]string{k: abc},
			[]Node{{Name: best, Settled: true, Claims: map[string]int{k: 2}}, {Name: other, Settled: true, Claims: map[string]int{k: 2}}},
			map[string]string{k: best}},
		{"a refusing node is passed over", map[string][]string{k: abc},
			[]Node{{Name: best, Settled: true, Refuses: map[string]bool{k: true}, Claims: map[string]int{k: 3}}, {Name: other, Settled: true}},
			map[string]string{k: other}},
		{"every candidate refuses: no owner", map[string][]string{k: {best}},
			[]Node{{Name: best, Settled: true, Refuses: map[string]bool{k: true}}},
			map[string]string{}},
		{"unclaimed keys go to settled nodes", map[string][]string{k: abc},
			[]Node{{Name: best}, {Name: other, Settled: true}},
			map[string]string{k: other}},
		{"with no settled node, to any", map[string][]string{k: abc},
			[]Node{{Name: best}, {Name: other}},
			map[string]string{k: best}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Elect(Input{Keys: tt.keys, Nodes: tt.nodes})
			if diff := cmp.Diff(tt.want, got.Owner); diff != "" {
				t.Errorf("owners (-want +got):\n%s", diff)
			}
		})
	}
}

func without(names []string, drop string) []string {
	return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == drop })
}

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
		got := Elect(Input{Keys: everywhere(keys, nodes), Nodes: settled(nodes...)})
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
		l := loads(elect(Input{Keys: everywhere(keys, nodes), Nodes: settled(nodes...)}, false).Owner)
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
	const limit = 125 // ceil(1.25 * 1000 / 10)
	l := loads(Elect(Input{Keys: everywhere(keys, nodes), Nodes: settled(nodes...)}).Owner)
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
	u := loads(elect(Input{Keys: everywhere(ipKeys(100000), nodes), Nodes: settled(nodes...)}, false).Owner)
	for _, n := range nodes {
		if u[n] < 10000-570 || u[n] > 10000+570 {
			t.Errorf("unbounded: %s owns %d of 100000; want 10000±570", n, u[n])
		}
	}
}

// cluster simulates speakers that claim what they are elected for, as the
// speaker does once it announces: the election's output is fed back as
// claims, weighted by the number of live nodes.
type cluster struct {
	keys  map[string][]string
	up    map[string]bool
	since map[string]int // step at which each node came up, for settling
	step  int
	owner map[string]string
	// claims is what each node announces; a node that goes down loses them.
	claims map[string]map[string]int
}

func newCluster(keys map[string][]string, nodes []string) *cluster {
	c := &cluster{keys: keys, up: map[string]bool{}, since: map[string]int{}, claims: map[string]map[string]int{}}
	for _, n := range nodes {
		c.up[n] = true
		c.since[n] = -100
	}
	c.settle()
	return c
}

// settle elects and lets every owner claim its keys; it returns the keys
// whose owner changed.
func (c *cluster) settle() map[string]bool {
	c.step++
	var nodes []Node
	live := 0
	for _, up := range c.up {
		if up {
			live++
		}
	}
	for _, n := range slices.Sorted(maps.Keys(c.up)) {
		if c.up[n] {
			nodes = append(nodes, Node{Name: n, Settled: c.step-c.since[n] > 3, Claims: c.claims[n]})
		}
	}
	res := Elect(Input{Keys: c.keys, Nodes: nodes})
	changed := map[string]bool{}
	for k := range c.keys {
		if res.Owner[k] != c.owner[k] {
			changed[k] = true
		}
	}
	for k, o := range c.owner {
		if _, ok := c.keys[k]; !ok {
			delete(c.owner, k)
			delete(c.claims[o], k)
		}
	}
	c.owner = res.Owner
	for n := range c.up {
		if !c.up[n] {
			continue
		}
		next := map[string]int{}
		for k, o := range res.Owner {
			if o == n {
				w, ok := c.claims[n][k]
				if !ok {
					w = live
				}
				next[k] = min(w, live)
			}
		}
		c.claims[n] = next
	}
	return changed
}

func (c *cluster) down(n string) {
	c.up[n] = false
	delete(c.claims, n)
}

func (c *cluster) back(n string) {
	c.up[n] = true
	c.since[n] = c.step
}

// TestFailureAndReturn: over kill/return cycles, a failure moves exactly the
// failed node's keys, once, and its return moves nothing.
func TestFailureAndReturn(t *testing.T) {
	for _, nn := range []int{2, 3, 10} {
		names := nodeNames(nn)
		c := newCluster(everywhere(ipKeys(300), names), names)
		moves := 0
		for cycle := range 2 * nn {
			victim := names[cycle%nn]
			before := maps.Clone(c.owner)
			c.down(victim)
			changed := c.settle()
			for k := range changed {
				if before[k] != victim {
					t.Fatalf("%d nodes, cycle %d: %s failed and key %s moved from %s", nn, cycle, victim, k, before[k])
				}
			}
			for k, o := range before {
				if o == victim && !changed[k] {
					t.Fatalf("%d nodes, cycle %d: key %s stayed on failed %s", nn, cycle, k, victim)
				}
			}
			moves += len(changed)
			c.back(victim)
			for range 5 { // the node returns and settles
				if changed := c.settle(); len(changed) > 0 {
					t.Fatalf("%d nodes, cycle %d: %s returned and %d keys moved", nn, cycle, victim, len(changed))
				}
			}
		}
		t.Logf("%d nodes: %d owner changes over %d failures, 0 on returns", nn, moves, 2*nn)
	}
}

// TestPartitionHeal: a node cut off alone claims everything in its own view;
// when it returns, the side that saw more keeps every key.
func TestPartitionHeal(t *testing.T) {
	names := nodeNames(3)
	keys := everywhere(ipKeys(60), names)
	c := newCluster(keys, names)
	before := maps.Clone(c.owner)
	// node-00 alone: the others see it down; it sees them down.
	alone := Elect(Input{Keys: keys, Nodes: []Node{{Name: names[0], Settled: true, Claims: c.claims[names[0]]}}})
	c.down(names[0])
	c.settle()
	after := maps.Clone(c.owner)
	isolated := map[string]int{}
	for k := range alone.Owner {
		w := 1 // claims made or kept while seeing one node weigh 1
		isolated[k] = w
	}
	var nodes []Node
	for _, n := range names[1:] {
		nodes = append(nodes, Node{Name: n, Settled: true, Claims: c.claims[n]})
	}
	nodes = append(nodes, Node{Name: names[0], Settled: true, Claims: isolated})
	healed := Elect(Input{Keys: keys, Nodes: nodes})
	if diff := cmp.Diff(after, healed.Owner); diff != "" {
		t.Errorf("after the heal the owners moved (-during the cut +healed):\n%s", diff)
	}
	moved := 0
	for k := range before {
		if before[k] != after[k] {
			moved++
		}
	}
	t.Logf("cut: %d of %d keys moved once; heal: 0", moved, len(before))
}

// TestNoBystanderMoves: over random churn of keys and of one key's
// eligibility at a time, no key moves but the one changed.
func TestNoBystanderMoves(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, nn := range []int{3, 10} {
		names := nodeNames(nn)
		keys := everywhere(ipKeys(100), names)
		c := newCluster(keys, names)
		next := 100
		changes := 0
		for range 500 {
			var touched string
			switch r.IntN(3) {
			case 0: // a Service is created
				touched = fmt.Sprintf("10.9.%d.%d", next>>8&0xff, next&0xff)
				next++
				keys[touched] = names
			case 1: // a Service is deleted
				all := slices.Sorted(maps.Keys(keys))
				touched = all[r.IntN(len(all))]
				delete(keys, touched)
			case 2: // a Local Service's endpoints move
				all := slices.Sorted(maps.Keys(keys))
				touched = all[r.IntN(len(all))]
				var e []string
				for _, n := range names {
					if r.IntN(2) == 0 {
						e = append(e, n)
					}
				}
				keys[touched] = e
			}
			changes++
			for k := range c.settle() {
				if k != touched {
					t.Fatalf("%d nodes: a change to %s moved %s", nn, touched, k)
				}
			}
		}
		t.Logf("%d nodes: %d changes, 0 bystander moves", nn, changes)
	}
}

// randomInput returns an input with unknown names, duplicates, empty sets,
// claims, refusals and settling nodes.
func randomInput(r *rand.Rand) Input {
	names := nodeNames(1 + r.IntN(8))
	keys := ipKeys(r.IntN(60))
	in := Input{Keys: make(map[string][]string)}
	for _, n := range names {
		if r.IntN(8) == 0 {
			continue // down
		}
		node := Node{Name: n, Settled: r.IntN(3) > 0, Claims: map[string]int{}, Refuses: map[string]bool{}}
		for _, k := range keys {
			switch r.IntN(12) {
			case 0:
				node.Claims[k] = 1 + r.IntN(3)
			case 1:
				node.Refuses[k] = true
			}
		}
		in.Nodes = append(in.Nodes, node)
	}
	for _, k := range keys {
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
	nodes[2].Refuses = map[string]bool{"10.0.0.7": true}
	in := Input{Keys: make(map[string][]string), Nodes: nodes[1:]}
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
	if l := loads(Elect(in).Owner); len(l) != 5 {
		t.Errorf("loads %v; want 5 owners (node-00 is down)", l)
	}
}

// TestInvariants checks, over random inputs, that owners are candidates, that
// every key with a candidate has an owner, that a claimed key stays with a
// claimant, and that an unclaimed one goes to a settled node when one can.
func TestInvariants(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := range 1000 {
		checkInvariants(t, fmt.Sprint("trial ", trial), randomInput(r))
	}
}

func checkInvariants(t *testing.T, name string, in Input) {
	t.Helper()
	got := Elect(in)
	first := map[string]Node{}
	for _, n := range in.Nodes {
		if _, ok := first[n.Name]; !ok {
			first[n.Name] = n
		}
	}
	for k, e := range in.Keys {
		var cand []Node
		for _, n := range slices.Compact(slices.Sorted(slices.Values(e))) {
			if node, ok := first[n]; ok && !node.Refuses[k] {
				cand = append(cand, node)
			}
		}
		o, ok := got.Owner[k]
		if ok != (len(cand) > 0) {
			t.Fatalf("%s: key %s has owner %v; want an owner %v", name, k, ok, len(cand) > 0)
		}
		if !ok {
			continue
		}
		i := slices.IndexFunc(cand, func(n Node) bool { return n.Name == o })
		if i < 0 {
			t.Fatalf("%s: key %s owned by %s, not a candidate", name, k, o)
		}
		claimed := slices.ContainsFunc(cand, func(n Node) bool { _, ok := n.Claims[k]; return ok })
		if _, own := cand[i].Claims[k]; claimed && !own {
			t.Fatalf("%s: key %s is claimed but went to %s, which does not claim it", name, k, o)
		}
		if !claimed && !cand[i].Settled && slices.ContainsFunc(cand, func(n Node) bool { return n.Settled }) {
			t.Fatalf("%s: unclaimed key %s went to unsettled %s while a settled candidate exists", name, k, o)
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
