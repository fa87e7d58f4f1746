// Package election decides which node announces each layer-2 address.
//
// [Elect] is a pure function of its [Input]: every speaker that is given the
// same membership computes the same owners, so speakers need no coordination
// beyond agreeing on who is alive. Owners are chosen by rendezvous
// (highest-random-weight) hashing, after Thaler and Ravishankar, "Using
// name-based mappings to increase hit rates", IEEE/ACM Transactions on
// Networking 6(1), 1998, with the bounded-loads refinement of Mirrokni, Thorup
// and Zadimoghaddam, "Consistent Hashing with Bounded Loads", SODA 2018, and a
// hold-down that keeps a returning node from taking keys back at once.
//
// A key is whatever moves as one; the caller uses a Service's lowest IP, so
// all addresses of one Service, or of one shared IP, move together. The rules:
//
//  1. Eligible and live. [Input.Keys] gives each key's eligible nodes as the
//     configuration has them (nodeSelector and the like), up or down;
//     [Input.Nodes] lists the nodes that are up. Only a listed node owns a
//     key. A name listed twice in Nodes counts once, with the later Since.
//  2. Hold-down. A node is settling until Since+HoldDown. A settling node is
//     held off a key if, among the key's listed eligible nodes, there is one
//     that is settled now and had already settled when the settling node
//     arrived (its Since+HoldDown is at or before the settling node's Since).
//     A key's available nodes are its listed eligible nodes not held off it.
//  3. Ranking. Nodes are ranked for a key by [Score], highest first; equal
//     scores, which need a 64-bit collision, go to the lower name.
//  4. Bounded loads. Given each key's candidates, a node's fair share is the
//     sum, over the keys it is a candidate for, of 1/(the key's number of
//     candidates), and its cap is ceil(1.25 × share). Keys are taken in
//     order of their hash (ties by key), and each goes to its best-ranked
//     candidate whose load is below its cap, or, if all are at their caps,
//     to its best-ranked candidate. When every node is a candidate for every
//     key, every cap is the textbook ceil(1.25 × keys / nodes).
//  5. Two passes. The plan applies rule 4 with every eligible node, up or
//     down, as a candidate, so it does not depend on liveness or time. A key
//     whose planned owner is available keeps it. The other keys (planned for
//     a node that is down or held off) go, by rule 4 again, to their
//     available nodes, counting the keys kept as load and computing shares
//     over available nodes only. A key with no available node has no owner.
//
// What the rules give (each has a test):
//
//   - The owners depend only on the set of inputs, not on slice or map order.
//   - When a node goes down (leaves Nodes but stays in Keys), its keys move
//     and no other key does. When it leaves Keys too, rule 4 may move a few
//     others, because caps change (TestFailureMovement, worst case over the
//     failed node: none of 1,000 keys on 10 nodes, 7 of 1,000 on 100 nodes,
//     2 of 100 on 10, 1 of 12 on 3). A second node going down may also move
//     keys the first failure moved, never others (3 of 100 keys on 10 nodes).
//   - A node that comes back takes nothing from nodes that kept serving until
//     its hold-down ends; then the owners are exactly those before it left.
//   - Speakers that start within HoldDown of each other do not hold each
//     other down, so a new cluster does not flap when its first node settles
//     (as it would if settling nodes yielded to every settled node).
//   - No node owns more than its cap unless eligibility forces it; with 12
//     keys that 3 nodes may all serve, every node owns 2 to 5.
//
// Per-node shares (rule 4) rather than one cap of ceil(1.25 × keys / nodes)
// keep a node that is a candidate for few keys (one held down for all but
// one, or the only node an L2Announcement selects) from counting as a whole
// node and shrinking every other node's cap.
//
// Speakers of different versions run side by side during a rolling upgrade and
// must agree, so Score and these rules are a wire format: changing either
// moves addresses and, for the length of the upgrade, lets two speakers claim
// one address. TestScoreGolden and TestElectGolden pin them.
package election

import (
	"math/bits"
	"slices"
	"strings"
	"time"
)

// A Node is a live node that may own keys.
type Node struct {
	// Name is the node's name, as used in Input.Keys.
	Name string
	// Since is when the node last came up (or became eligible). Speakers
	// agree only if they agree on Since, so it should come from a shared
	// source (such as a timestamp the node gossips about itself), not from
	// when each speaker happened to notice the node.
	Since time.Time
}

// Input is everything an election depends on.
type Input struct {
	// Keys maps each announcement key to the names of the nodes the
	// configuration makes eligible to announce it, whether they are up or
	// not; leaving down nodes in is what keeps a failure from moving other
	// nodes' keys. A node gone for good should leave, which moves a few
	// other keys once. Order and duplicates in the lists do not matter, and
	// keys may share one slice (resolved once, which is faster).
	Keys map[string][]string
	// Nodes lists the nodes that are up. Only they own keys.
	Nodes []Node
	// Now is the time of the election; Elect never reads the clock.
	Now time.Time
	// HoldDown is how long a node that comes up waits before it takes keys
	// from nodes that were already serving them (rule 2 of the package doc).
	// Zero or negative disables the hold-down.
	HoldDown time.Duration
}

// Result is the outcome of an election.
type Result struct {
	// Owner maps each key to the node that announces it. A key none of
	// whose eligible nodes is in Input.Nodes is absent.
	Owner map[string]string
	// Recheck is the earliest time after Input.Now at which the owners may
	// change with no change to the rest of the input, because a settling
	// node settles. It is zero if the owners stay as they are for any later
	// Now.
	Recheck time.Time
}

// A node's cap is loadNum/loadDen times its fair share. At 1.25 a node carries
// at most 25% more than its share (so 12 keys on 3 nodes leave every node at
// least 2), while a change of eligibility moves few bystanders: Mirrokni et
// al. bound the extra moves per change by O(1/ε²) for a factor of 1+ε, so a
// tighter cap would buy balance with churn.
const (
	loadNum = 5
	loadDen = 4
)

// shareOne is a whole key in the fixed-point unit of node.share. Integer
// arithmetic gives every architecture the same caps; 2³² keeps the rounding
// (under one unit per key) far below one key for any realistic key count, and
// leaves room for 2³¹ keys in 64 bits.
const shareOne = 1 << 32

// Elect decides the owner of every key in in.Keys, as the package doc
// describes. It does not modify in.
func Elect(in Input) Result {
	return elect(in, true)
}

// Score is the rendezvous weight of node for key: of a key's candidates, the
// one with the highest Score is preferred. It is deterministic across
// processes, versions and architectures.
func Score(node, key string) uint64 {
	return score(nodeHash(node), keyHash(key))
}

// node is the working state of one node named in Input.Keys or Input.Nodes.
type node struct {
	name     string
	hash     uint64    // nodeHash(name)
	live     bool      // listed in Input.Nodes
	since    time.Time // latest Since given for name
	settleAt time.Time // since + HoldDown
	settling bool      // settleAt is after Now
	pending  bool      // the owners may change at settleAt
	seen     int       // the last eligible list that named the node, or -1
	share    uint64    // fair share, in units of 1/shareOne key
	limit    int       // cap: keys the node takes before others are preferred
	load     int       // keys given so far
}

// key is the working state of one key with at least one eligible node.
// Keys with the same eligible list share their span of cand.
type key struct {
	name string
	hash uint64 // keyHash(name); keys are assigned in this order
	// The key's eligible nodes are cand[lo:hi], as node indices; the
	// available ones come first, in cand[lo:mid].
	lo, mid, hi int32
	owner       int32 // index into cand[lo:hi] of the owner, or -1
}

// ordered is a key's place in the order of assignment: by hash, then name.
type ordered struct {
	hash uint64
	key  int32 // index in keys
}

func (k *key) eligible(cand []int32) []int32  { return cand[k.lo:k.hi] }
func (k *key) available(cand []int32) []int32 { return cand[k.lo:k.mid] }

// elect is Elect with rule 4 optional, so tests can compare it with plain
// rendezvous hashing.
func elect(in Input, bounded bool) Result {
	hold := max(in.HoldDown, 0)

	index := make(map[string]int32, len(in.Nodes))
	nodes := make([]node, 0, len(in.Nodes))
	for _, n := range in.Nodes {
		if i, ok := index[n.Name]; ok {
			if n.Since.After(nodes[i].since) {
				nodes[i].since = n.Since
			}
			continue
		}
		index[n.Name] = int32(len(nodes))
		nodes = append(nodes, node{name: n.Name, live: true, since: n.Since, seen: -1})
	}
	for i := range nodes {
		n := &nodes[i]
		n.hash = nodeHash(n.name)
		n.settleAt = n.since.Add(hold)
		n.settling = hold > 0 && n.settleAt.After(in.Now)
	}

	// Resolve each distinct eligible list once: callers typically pass one
	// slice for all keys of an L2Announcement, and a slice's candidates do
	// not depend on the key.
	type list struct {
		first *string
		len   int
	}
	lists := make(map[list]int32)
	var spans []key // lo, mid, hi of each distinct list; the other fields unused
	var names [][]string
	keys := make([]key, 0, len(in.Keys))
	total := 0
	for name, eligible := range in.Keys {
		if len(eligible) == 0 {
			continue // no eligible node: the key is absent from Owner
		}
		l := list{&eligible[0], len(eligible)}
		j, ok := lists[l]
		if !ok {
			j = int32(len(names))
			lists[l] = j
			names = append(names, eligible)
			total += len(eligible)
		}
		keys = append(keys, key{name: name, hash: keyHash(name), owner: j}) // owner holds the list until spans are known
	}
	cand := make([]int32, 0, total)
	moving := false // some key has an eligible node that is not available
	for seen, eligible := range names {
		lo := len(cand)
		for _, e := range eligible {
			i, ok := index[e]
			if !ok {
				i = int32(len(nodes))
				index[e] = i
				nodes = append(nodes, node{name: e, hash: nodeHash(e), seen: -1})
			}
			if nodes[i].seen != seen {
				nodes[i].seen = seen
				cand = append(cand, i)
			}
		}
		avail := available(nodes, cand[lo:])
		moving = moving || avail < len(cand)-lo
		spans = append(spans, key{lo: int32(lo), mid: int32(lo + avail), hi: int32(len(cand))})
	}
	for k := range keys {
		sp := &spans[keys[k].owner]
		keys[k].lo, keys[k].mid, keys[k].hi, keys[k].owner = sp.lo, sp.mid, sp.hi, -1
	}
	// The order in which keys are assigned. Sorting pointer-free pairs, not
	// keys, spares the sort its write barriers: it was most of Elect's time.
	order := make([]ordered, len(keys))
	for k := range keys {
		order[k] = ordered{keys[k].hash, int32(k)}
	}
	slices.SortFunc(order, func(a, b ordered) int {
		if a.hash != b.hash {
			if a.hash < b.hash {
				return -1
			}
			return 1
		}
		return strings.Compare(keys[a.key].name, keys[b.key].name)
	})

	// The plan: every eligible node is a candidate.
	setLimits(nodes, keys, cand, (*key).eligible, bounded)
	for _, o := range order {
		key := &keys[o.key]
		c := key.eligible(cand)
		key.owner = pick(nodes, c, key.hash)
		nodes[c[key.owner]].load++
	}

	// Keys planned for a node that is down or held off move to available
	// nodes; the others stay.
	if moving {
		setLimits(nodes, keys, cand, (*key).available, bounded)
		for k := range keys {
			if key := &keys[k]; key.owner < key.mid-key.lo {
				nodes[key.available(cand)[key.owner]].load++
			}
		}
		for _, o := range order {
			key := &keys[o.key]
			if key.owner < key.mid-key.lo {
				continue
			}
			key.owner = -1
			if c := key.available(cand); len(c) > 0 {
				key.owner = pick(nodes, c, key.hash)
				nodes[c[key.owner]].load++
			}
		}
	}

	res := Result{Owner: make(map[string]string, len(keys))}
	for k := range keys {
		if key := &keys[k]; key.owner >= 0 {
			res.Owner[key.name] = nodes[key.eligible(cand)[key.owner]].name
		}
	}
	for i := range nodes {
		if n := &nodes[i]; n.pending && (res.Recheck.IsZero() || n.settleAt.Before(res.Recheck)) {
			res.Recheck = n.settleAt
		}
	}
	return res
}

// available reorders the eligible nodes of one key so that its available nodes
// (rules 1 and 2) come first, and returns how many there are.
func available(nodes []node, cand []int32) int {
	n, settling := 0, false
	for j, i := range cand {
		if nodes[i].live {
			cand[n], cand[j] = cand[j], cand[n]
			n++
			settling = settling || nodes[i].settling
		}
	}
	if !settling {
		return n
	}
	return holdDown(nodes, cand[:n])
}

// holdDown applies rule 2 to the live eligible nodes of one key, at least one
// of which is settling. It reorders cand so that the nodes not held off come
// first, and returns how many there are, which is never zero: the node that
// came up first is never held off. It marks as pending every node whose
// settling will change the key's available nodes.
func holdDown(nodes []node, cand []int32) int {
	first := &nodes[cand[0]] // the node that came up first, hence settles first
	for _, i := range cand[1:] {
		if nodes[i].since.Before(first.since) {
			first = &nodes[i]
		}
	}
	n := 0
	for j, i := range cand {
		c := &nodes[i]
		switch {
		case !c.settling || c.since.Before(first.settleAt):
			// Settled, or came up while no eligible node had settled.
		case first.settling:
			// c came up after first settles, yet first has not: only a Since
			// in the future (a speaker's clock ahead of ours) gets here. c
			// is held off from first.settleAt on, so the owners change then.
			first.pending = true
		default:
			c.pending = true // held off until c.settleAt
			continue
		}
		cand[n], cand[j] = cand[j], cand[n]
		n++
	}
	return n
}

// setLimits sets every node's cap from its fair share of the candidates that
// of gives for each key (rule 4), and zeroes its load.
func setLimits(nodes []node, keys []key, cand []int32, of func(*key, []int32) []int32, bounded bool) {
	for i := range nodes {
		nodes[i].share, nodes[i].load = 0, 0
	}
	for k := range keys {
		c := of(&keys[k], cand)
		if len(c) == 0 {
			continue
		}
		part := shareOne / uint64(len(c))
		for _, i := range c {
			nodes[i].share += part
		}
	}
	for i := range nodes {
		n := &nodes[i]
		n.limit = int(^uint(0) >> 1)
		if bounded {
			// ceil(share * loadNum / (loadDen * shareOne)), in 128 bits.
			hi, lo := bits.Mul64(n.share, loadNum)
			lo, carry := bits.Add64(lo, loadDen*shareOne-1, 0)
			q, _ := bits.Div64(hi+carry, lo, loadDen*shareOne)
			n.limit = int(q)
		}
	}
}

// pick returns the index in cand, which is not empty, of the best-ranked node
// below its cap for the key with hash h, or of the best-ranked node if all
// are at their caps (rules 3 and 4).
func pick(nodes []node, cand []int32, h uint64) int32 {
	best, free := int32(-1), int32(-1)
	var bestScore, freeScore uint64
	for j, i := range cand {
		n := &nodes[i]
		s := score(n.hash, h)
		if best < 0 || s > bestScore || s == bestScore && n.name < nodes[cand[best]].name {
			best, bestScore = int32(j), s
		}
		if n.load < n.limit && (free < 0 || s > freeScore || s == freeScore && n.name < nodes[cand[free]].name) {
			free, freeScore = int32(j), s
		}
	}
	if free >= 0 {
		return free
	}
	return best
}

// FNV-1a 64 (draft-eastlake-fnv) parameters.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// keySalt separates the key and node hash domains, so Score is not symmetric
// and a key spelled like a node name is not special. It is the 64-bit golden
// ratio, the increment of splitmix64.
const keySalt = 0x9e3779b97f4a7c15

func nodeHash(s string) uint64 { return mix(fnv1a(s)) }

func keyHash(s string) uint64 { return mix(fnv1a(s) + keySalt) }

func score(node, key uint64) uint64 { return mix(node ^ key) }

// fnv1a is FNV-1a 64 of s, written out so that hashing a string allocates
// nothing.
func fnv1a(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// mix is the splitmix64 finaliser (Steele, Lea and Flood, "Fast splittable
// pseudorandom number generators", OOPSLA 2014). FNV alone avalanches poorly
// in its high bits; after mix every input bit affects every output bit, so
// comparing scores of two nodes for a key is a fair coin.
func mix(z uint64) uint64 {
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	z ^= z >> 31
	return z
}
