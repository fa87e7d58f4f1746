package allocator

import (
	"encoding/binary"
	"math/big"
	"net/netip"

	"github.com/google/btree"
	"go4.org/netipx"
)

// u128 is an address as a 128-bit number, so IPv4 and IPv6 share one arithmetic.
// IPv4 addresses live in the low 32 bits.
type u128 struct{ hi, lo uint64 }

func toU128(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

func (u u128) addr(f Family) netip.Addr {
	if f == IPv4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(u.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], u.hi)
	binary.BigEndian.PutUint64(b[8:], u.lo)
	return netip.AddrFrom16(b)
}

func (u u128) less(v u128) bool { return u.hi < v.hi || (u.hi == v.hi && u.lo < v.lo) }

func (u u128) inc() u128 {
	if u.lo == ^uint64(0) {
		return u128{hi: u.hi + 1}
	}
	return u128{hi: u.hi, lo: u.lo + 1}
}

func (u u128) dec() u128 {
	if u.lo == 0 {
		return u128{hi: u.hi - 1, lo: ^uint64(0)}
	}
	return u128{hi: u.hi, lo: u.lo - 1}
}

// run is an inclusive span of free addresses.
type run struct{ from, to u128 }

func runLess(a, b run) bool { return a.from.less(b.from) }

// freeList holds the free addresses of one family of one pool as disjoint runs in a
// B-tree. Its size grows with the number of holes that allocations punch in the
// pool, never with the size of the pool: a fresh /64 is a single run.
type freeList struct {
	family Family
	runs   *btree.BTreeG[run]
}

// btreeDegree trades node size against depth; 16 keeps a 10,000-run tree three
// levels deep with nodes that fit a few cache lines.
const btreeDegree = 16

func newFreeList(f Family) *freeList {
	return &freeList{family: f, runs: btree.NewG(btreeDegree, runLess)}
}

// add marks the inclusive span [from, to] free; it must not overlap free runs.
func (l *freeList) add(from, to u128) { l.runs.ReplaceOrInsert(run{from, to}) }

// containing returns the run that holds x.
func (l *freeList) containing(x u128) (run, bool) {
	var found run
	var ok bool
	l.runs.DescendLessOrEqual(run{from: x}, func(r run) bool {
		found, ok = r, !r.to.less(x)
		return false
	})
	return found, ok
}

// isFree reports whether x is free.
func (l *freeList) isFree(x u128) bool {
	_, ok := l.containing(x)
	return ok
}

// take marks x used. It reports whether x was free.
func (l *freeList) take(x u128) bool {
	r, ok := l.containing(x)
	if !ok {
		return false
	}
	l.runs.Delete(r)
	if r.from.less(x) {
		l.runs.ReplaceOrInsert(run{r.from, x.dec()})
	}
	if x.less(r.to) {
		l.runs.ReplaceOrInsert(run{x.inc(), r.to})
	}
	return true
}

// give marks x free again, merging it with neighbouring runs.
func (l *freeList) give(x u128) {
	if l.isFree(x) {
		return
	}
	nr := run{x, x}
	var prev, next run
	var hasPrev, hasNext bool
	l.runs.DescendLessOrEqual(run{from: x}, func(r run) bool { prev, hasPrev = r, true; return false })
	l.runs.AscendGreaterOrEqual(run{from: x}, func(r run) bool { next, hasNext = r, true; return false })
	if hasPrev && prev.to.inc() == x {
		l.runs.Delete(prev)
		nr.from = prev.from
	}
	if hasNext && x.inc() == next.from {
		l.runs.Delete(next)
		nr.to = next.to
	}
	l.runs.ReplaceOrInsert(nr)
}

// first returns the lowest free address, skipping those that skip reports.
func (l *freeList) first(skip func(u128) bool) (u128, bool) {
	var found u128
	var ok bool
	l.runs.Ascend(func(r run) bool {
		for x := r.from; ; x = x.inc() {
			if skip == nil || !skip(x) {
				found, ok = x, true
				return false
			}
			if x == r.to {
				return true
			}
		}
	})
	return found, ok
}

// buggy reports whether an IPv4 address ends in .0 or .255, which avoidBuggyIPs
// keeps out of allocation. At most two such addresses sit next to each other, so
// first never skips more than two addresses within a run.
func buggy(x u128) bool { b := x.lo & 0xff; return b == 0 || b == 0xff }

// rangeSize returns the number of addresses in r as a big.Int: ::/0 holds 2^128,
// which no fixed-size integer does.
func rangeSize(r netipx.IPRange) *big.Int {
	from, to := toU128(r.From()), toU128(r.To())
	n := new(big.Int).Sub(bigOf(to), bigOf(from))
	return n.Add(n, big.NewInt(1))
}

func bigOf(u u128) *big.Int {
	n := new(big.Int).SetUint64(u.hi)
	n.Lsh(n, 64)
	return n.Or(n, new(big.Int).SetUint64(u.lo))
}

// buggyCount returns how many addresses of an IPv4 range end in .0 or .255.
func buggyCount(r netipx.IPRange) uint64 {
	a, b := toU128(r.From()).lo, toU128(r.To()).lo
	// multiples of 256 in [a, b], then addresses x with x+1 a multiple of 256.
	count := func(lo, hi uint64) uint64 {
		first := (lo + 255) / 256
		last := hi / 256
		if last < first {
			return 0
		}
		return last - first + 1
	}
	return count(a, b) + count(a+1, b+1)
}
