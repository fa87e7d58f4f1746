// Package election decides which node announces each layer-2 address.
//
// [Elect] is a pure function of its [Input]: every speaker that is given the
// same membership and the same claims computes the same owners. Ownership is
// sticky: a key stays with the node that announces it (its claim) for as long
// as that node is up and eligible, so an address moves once when its owner
// fails and not again when the owner returns, and adding or removing one key
// moves no other. Keys nobody holds are placed by rendezvous
// (highest-random-weight) hashing, after Thaler and Ravishankar, "Using
// name-based mappings to increase hit rates", IEEE/ACM Transactions on
// Networking 6(1), 1998, with the bounded-loads refinement of Mirrokni, Thorup
// and Zadimoghaddam, "Consistent Hashing with Bounded Loads", SODA 2018.
//
// A key is whatever moves as one; the caller uses a Service's lowest IP, so
// all addresses of one Service, or of one shared IP, move together. The rules:
//
//  1. Candidates. [Input.Keys] gives each key's eligible nodes as the
//     configuration has them; [Input.Nodes] lists the nodes that are up. A
//     key's candidates are its eligible nodes that are up and do not refuse
//     it ([Node.Refuses]: the node was elected but cannot announce it).
//  2. Claims. A candidate that claims a key ([Node.Claims]) keeps it. When
//     several candidates claim one key (views that differed for a moment, or
//     a partition that healed), the claim with the highest weight wins, then
//     the highest [Score], then the lower name. A claim's weight is the
//     number of live speakers the claimant saw when it took the key, lowered
//     whenever it saw fewer since: the side of a partition that saw more
//     nodes keeps what it held, so a node cut off alone, which claimed
//     everything in its own view, gives it all back when it returns.
//  3. Settling. A key no candidate claims goes to a settled candidate
//     ([Node.Settled]: up for its hold-down by its own clock, and saying so),
//     or, if none is settled, to any candidate: a node that has just come
//     back, and may be flapping, takes nothing while settled nodes can.
//  4. Ranking. Nodes are ranked for a key by [Score], highest first; equal
//     scores, which need a 64-bit collision, go to the lower name.
//  5. Bounded loads. A node's fair share is the keys it keeps by claim plus,
//     over the unclaimed keys it is a candidate for (after rule 3), 1/(the
//     key's number of candidates); its cap is ceil(1.25 × share). Unclaimed
//     keys are taken in order of their hash (ties by key), and each goes to
//     its best-ranked candidate whose load is below its cap, or, if all are
//     at their caps, to its best-ranked candidate.
//
// What the rules give (each has a test):
//
//   - The owners depend only on the set of inputs, not on slice or map order.
//   - Once owners claim their keys, a failure moves the failed node's keys
//     and nothing else; the failed node's return moves nothing; creating or
//     deleting a key moves no other key (TestNoBystanderMoves, over random
//     churn).
//   - With no claims (a new cluster), keys spread as bounded rendezvous
//     hashing spreads them: with 12 keys that 3 nodes may all serve, every
//     node owns 2 to 5.
//   - Nothing depends on clocks agreeing: the only time in the input is
//     Settled, which each node measures on its own clock.
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
)

// A Node is a live node that may own keys.
type Node struct {
	// Name is the node's name, as used in Input.Keys.
	Name string
	// Settled is whether the node has been up for its hold-down.
	Settled bool
	// Claims maps each key the node announces to its claim's weight (rule 2).
	Claims map[string]int
	// Refuses lists keys the node was given but cannot announce.
	Refuses map[string]bool
}

// Input is everything an election depends on.
type Input struct {
	// Keys maps each announcement key to the names of the nodes the
	// configuration makes eligible to announce it. Order and duplicates in the
	// lists do not matter, and keys may share one slice (resolved once, which
	// is faster).
	Keys map[string][]string
	// Nodes lists the nodes that are up. Only they own keys. A name listed
	// twice counts once, with the first entry's state.
	Nodes []Node
}

// Result is the outcome of an election.
type Result struct {
	// Owner maps each key to the node that announces it. A key none of
	// whose eligible nodes is a candidate is absent.
	Owner map[string]string
}

// A node's cap is loadNum/loadDen times its fair share. At 1.25 a node carries
// at most 25% more than its share (so 12 keys on 3 nodes leave every node at
// least 2).
const (
	loadNum = 5
	loadDen = 4
)

// shareOne is a whole key in the fixed-point unit of node.share. Integer
// arithmetic gives every architecture the same caps; 2³² keeps the rounding
// (under one unit per key) far below one key for any realistic key count, and
// leaves room for 2³¹ keys in 64 bits.
const shareOne = 1 << 32

// Score is the rendezvous weight of node for key: of a key's candidates, the
// one with the highest Score is preferred. It is deterministic across
// processes, versions and architectures.
func Score(node, key string) uint64 {
	return score(nodeHash(node), keyHash(key))
}

// node is the working state of one live node.
type node struct {
	name  string
	hash  uint64
	in    *Node
	seen  int    // the last eligible list that named the node, or -1
	share uint64 // fair share, in units of 1/shareOne key
	limit int    // cap: keys the node takes before others are preferred
	load  int    // keys given so far
}

// key is the working state of one key.
type key struct {
	name  string
	hash  uint64
	cand  []int32 // candidates (rule 1), then narrowed to settled ones (rule 3)
	owner int32   // node index, or -1
}

// Elect decides the owner of every key in in.Keys, as the package doc
// describes. It does not modify in.
func Elect(in Input) Result {
	return elect(in, true)
}

// elect is Elect with rule 5 optional, so tests can compare it with plain
// rendezvous hashing.
func elect(in Input, bounded bool) Result {
	index := make(map[string]int32, len(in.Nodes))
	nodes := make([]node, 0, len(in.Nodes))
	for i := range in.Nodes {
		n := &in.Nodes[i]
		if _, ok := index[n.Name]; ok {
			continue
		}
		index[n.Name] = int32(len(nodes))
		nodes = append(nodes, node{name: n.Name, hash: nodeHash(n.Name), in: n, seen: -1})
	}

	// Resolve each distinct eligible list to live nodes once: callers
	// typically pass one slice for all keys of an L2Announcement.
	type list struct {
		first *string
		len   int
	}
	lists := make(map[list][]int32)
	keys := make([]key, 0, len(in.Keys))
	for name, eligible := range in.Keys {
		if len(eligible) == 0 {
			continue
		}
		l := list{&eligible[0], len(eligible)}
		live, ok := lists[l]
		if !ok {
			seen := len(lists)
			for _, e := range eligible {
				if i, ok := index[e]; ok && nodes[i].seen != seen {
					nodes[i].seen = seen
					live = append(live, i)
				}
			}
			lists[l] = live
		}
		k := key{name: name, hash: keyHash(name), cand: live, owner: -1}
		// Rule 1: refusals are rare, so the shared list is copied only then.
		for j, i := range live {
			if nodes[i].in.Refuses[name] {
				c := slices.Clone(live[:j])
				for _, i := range live[j+1:] {
					if !nodes[i].in.Refuses[name] {
						c = append(c, i)
					}
				}
				k.cand = c
				break
			}
		}
		if len(k.cand) > 0 {
			keys = append(keys, k)
		}
	}

	// Rule 2: claims. Claimants are found from the claims (about one per
	// key), not by asking every candidate of every key: with 100 nodes that
	// was most of Elect's time.
	claimant := make(map[string]int32)
	var more map[string][]int32 // second and later claimants, rare
	for i := range nodes {
		for k := range nodes[i].in.Claims {
			if _, ok := claimant[k]; !ok {
				claimant[k] = int32(i)
				continue
			}
			if more == nil {
				more = make(map[string][]int32)
			}
			more[k] = append(more[k], int32(i))
		}
	}
	res := Result{Owner: make(map[string]string, len(keys))}
	var open []int32 // keys left for rules 3 to 5
	for ki := range keys {
		k := &keys[ki]
		best, bestW := int32(-1), -1
		var bestS uint64
		first, claimed := claimant[k.name]
		if !claimed {
			first = -1
		}
		for j := -1; j < len(more[k.name]); j++ {
			i := first
			if j >= 0 {
				i = more[k.name][j]
			}
			if i < 0 || !slices.Contains(k.cand, i) {
				continue
			}
			n := &nodes[i]
			w := n.in.Claims[k.name]
			s := score(n.hash, k.hash)
			if best < 0 || w > bestW || w == bestW && (s > bestS || s == bestS && n.name < nodes[best].name) {
				best, bestW, bestS = i, w, s
			}
		}
		if best >= 0 {
			k.owner = best
			continue
		}
		// Rule 3: settled candidates first.
		settled := 0
		for _, i := range k.cand {
			if nodes[i].in.Settled {
				settled++
			}
		}
		if settled > 0 && settled < len(k.cand) {
			c := make([]int32, 0, settled)
			for _, i := range k.cand {
				if nodes[i].in.Settled {
					c = append(c, i)
				}
			}
			k.cand = c
		}
		open = append(open, int32(ki))
	}

	// Rules 4 and 5 for the open keys, in order of their hash. Sorting
	// pointer-free pairs, not keys, spares the sort its write barriers.
	type ordered struct {
		hash uint64
		key  int32
	}
	order := make([]ordered, len(open))
	for j, ki := range open {
		order[j] = ordered{keys[ki].hash, ki}
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
	setLimits(nodes, keys, open, bounded)
	for _, o := range order {
		k := &keys[o.key]
		k.owner = k.cand[pick(nodes, k.cand, k.hash)]
		nodes[k.owner].load++
	}
	for ki := range keys {
		if k := &keys[ki]; k.owner >= 0 {
			res.Owner[k.name] = nodes[k.owner].name
		}
	}
	return res
}

// setLimits sets every node's cap from its fair share (rule 5): the keys it
// keeps by claim, plus its part of every open key it is a candidate for. Loads
// start at the claimed keys.
func setLimits(nodes []node, keys []key, open []int32, bounded bool) {
	for i := range nodes {
		nodes[i].share, nodes[i].load = 0, 0
	}
	for ki := range keys {
		if k := &keys[ki]; k.owner >= 0 {
			nodes[k.owner].share += shareOne
			nodes[k.owner].load++
		}
	}
	for _, ki := range open {
		c := keys[ki].cand
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
// are at their caps (rules 4 and 5).
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
