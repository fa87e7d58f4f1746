// Package conflict settles split brain on the wire: when two speakers find each
// other answering ARP or NDP for one address (memberlist is cut, the LAN is not),
// each computes Yield for itself and the other, and exactly one of them stops.
//
// Yield is pure (no clock, no sockets, no memberlist) and is a wire format in all
// but name: speakers of different versions meet during a rolling update and must
// agree on the loser, so its hash is pinned by golden tests.
package conflict

// Yield reports whether selfNode must stop announcing key (an address, or a
// sharing group's key) because otherNode announces it too. For two different node
// names exactly one of Yield(a, b, key) and Yield(b, a, key) is true, whichever
// node computes it; a node never yields to itself.
//
// The winner is the node with the higher rendezvous score for key, so which node
// loses varies from key to key: a cut that doubles every address of a cluster
// sends about half of them back to each side rather than all to one node. Scores
// are independent of the election's (election.Score), since the two answer
// different questions and a correlation would only favour some nodes twice.
func Yield(selfNode, otherNode, key string) bool {
	if selfNode == otherNode {
		return false
	}
	return loses(selfNode, otherNode, score(selfNode, key), score(otherNode, key))
}

// loses reports whether self, with score s, loses to other, with score o: the
// lower score loses. A 64-bit tie is rare but possible; the names differ, so
// their order settles it the same way on both sides.
func loses(self, other string, s, o uint64) bool {
	if s != o {
		return s < o
	}
	return self > other
}

// Score returns node's rendezvous score for key: higher wins. It is exported for
// logs and tests; Yield is the decision.
func Score(node, key string) uint64 { return score(node, key) }

// FNV-1a 64 (draft-eastlake-fnv) parameters.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// salt separates this hash domain from the election's, so that the node that
// loses a conflict is not correlated with the election's ranking. It is the
// 64-bit fractional part of sqrt(3); any fixed odd constant would do, but it must
// never change (see the package doc).
const salt = 0xbb67ae8584caa73b

// score hashes key, the key's length (so that key "ab" with node "c" differs
// from key "a" with node "bc") and node with FNV-1a 64, then finishes with the
// splitmix64 finaliser.
func score(node, key string) uint64 {
	h := uint64(fnvOffset) ^ salt
	h = fnv1a(h, key)
	h = fnvByte(h, byte(len(key)))
	h = fnvByte(h, byte(len(key)>>8))
	h = fnv1a(h, node)
	return mix(h)
}

// fnv1a continues FNV-1a 64 hash h over s without allocating.
func fnv1a(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = fnvByte(h, s[i])
	}
	return h
}

func fnvByte(h uint64, b byte) uint64 {
	h ^= uint64(b)
	return h * fnvPrime
}

// mix is the splitmix64 finaliser (Steele, Lea and Flood, "Fast splittable
// pseudorandom number generators", OOPSLA 2014). FNV alone avalanches poorly in
// its high bits; after mix, comparing two nodes' scores for a key is a fair coin.
func mix(z uint64) uint64 {
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	z ^= z >> 31
	return z
}
