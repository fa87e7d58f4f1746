package allocator

import (
	"math/big"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"go4.org/netipx"
)

const max64 = ^uint64(0)

func runsOf(l *freeList) []run {
	var out []run
	l.runs.Ascend(func(r run) bool { out = append(out, r); return true })
	return out
}

func v4(s string) u128 { return toU128(netip.MustParseAddr(s)) }

func TestU128(t *testing.T) {
	tests := []struct {
		name      string
		in        u128
		inc, dec  u128
		roundTrip string // the IPv6 address of in
	}{
		{"zero", u128{0, 0}, u128{0, 1}, u128{^uint64(0), max64}, "::"},
		{"low word full", u128{0, max64}, u128{1, 0}, u128{0, max64 - 1}, "::ffff:ffff:ffff:ffff"},
		{"high word carry", u128{1, 0}, u128{1, 1}, u128{0, max64}, "0:0:0:1::"},
		{"middle", u128{7, 42}, u128{7, 43}, u128{7, 41}, "0:0:0:7::2a"},
		{"top", u128{max64, max64}, u128{0, 0}, u128{max64, max64 - 1}, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.inc(); got != tt.inc {
				t.Errorf("inc: got %v; want %v", got, tt.inc)
			}
			if got := tt.in.dec(); got != tt.dec {
				t.Errorf("dec: got %v; want %v", got, tt.dec)
			}
			if got := tt.in.inc().dec(); got != tt.in {
				t.Errorf("inc then dec: got %v; want %v", got, tt.in)
			}
			if tt.in != (u128{max64, max64}) && !tt.in.less(tt.in.inc()) {
				t.Errorf("%v.less(%v) = false; want true", tt.in, tt.in.inc())
			}
			if tt.in.less(tt.in) {
				t.Errorf("%v.less(itself) = true; want false", tt.in)
			}
			a := netip.MustParseAddr(tt.roundTrip)
			if got := toU128(a); got != tt.in {
				t.Errorf("toU128(%s): got %v; want %v", a, got, tt.in)
			}
			if got := tt.in.addr(IPv6); got != a {
				t.Errorf("addr: got %s; want %s", got, a)
			}
		})
	}
	for _, s := range []string{"0.0.0.0", "10.1.2.3", "255.255.255.255"} {
		a := netip.MustParseAddr(s)
		if got := toU128(a).addr(IPv4); got != a {
			t.Errorf("IPv4 round trip of %s: got %s", a, got)
		}
	}
	if got, want := v4("255.255.255.255").inc(), (u128{0, 1 << 32}); got != want {
		t.Errorf("inc of the last IPv4 address: got %v; want %v", got, want)
	}
}

func TestFreeListTakeGive(t *testing.T) {
	r := func(from, to string) run { return run{v4(from), v4(to)} }
	type op struct {
		give   bool
		x      string
		wasOK  bool // take's result
		result []run
	}
	take := func(x string, ok bool, want ...run) op { return op{x: x, wasOK: ok, result: want} }
	give := func(x string, want ...run) op { return op{give: true, x: x, result: want} }
	ops := []op{
		take("10.0.0.10", true, r("10.0.0.0", "10.0.0.9"), r("10.0.0.11", "10.0.0.255")),
		take("10.0.0.10", false, r("10.0.0.0", "10.0.0.9"), r("10.0.0.11", "10.0.0.255")),
		take("10.0.0.0", true, r("10.0.0.1", "10.0.0.9"), r("10.0.0.11", "10.0.0.255")),
		take("10.0.0.255", true, r("10.0.0.1", "10.0.0.9"), r("10.0.0.11", "10.0.0.254")),
		take("10.0.1.0", false, r("10.0.0.1", "10.0.0.9"), r("10.0.0.11", "10.0.0.254")),
		take("10.0.0.12", true, r("10.0.0.1", "10.0.0.9"), r("10.0.0.11", "10.0.0.11"), r("10.0.0.13", "10.0.0.254")),
		take("10.0.0.11", true, r("10.0.0.1", "10.0.0.9"), r("10.0.0.13", "10.0.0.254")),
		// Giving merges with both neighbours, one, or none.
		give("10.0.0.11", r("10.0.0.1", "10.0.0.9"), r("10.0.0.11", "10.0.0.11"), r("10.0.0.13", "10.0.0.254")),
		give("10.0.0.12", r("10.0.0.1", "10.0.0.9"), r("10.0.0.11", "10.0.0.254")),
		give("10.0.0.12", r("10.0.0.1", "10.0.0.9"), r("10.0.0.11", "10.0.0.254")), // already free
		give("10.0.0.10", r("10.0.0.1", "10.0.0.254")),
		give("10.0.0.0", r("10.0.0.0", "10.0.0.254")),
		give("10.0.0.255", r("10.0.0.0", "10.0.0.255")),
		take("10.0.0.5", true, r("10.0.0.0", "10.0.0.4"), r("10.0.0.6", "10.0.0.255")),
		give("10.0.0.5", r("10.0.0.0", "10.0.0.255")),
	}
	l := newFreeList(IPv4)
	l.add(v4("10.0.0.0"), v4("10.0.0.255"))
	for i, o := range ops {
		x := v4(o.x)
		if o.give {
			l.give(x)
		} else if got := l.take(x); got != o.wasOK {
			t.Errorf("op %d: take(%s): got %v; want %v", i, o.x, got, o.wasOK)
		}
		if got := runsOf(l); !slices.Equal(got, o.result) {
			t.Fatalf("op %d (%s %s): runs: got %v; want %v", i, map[bool]string{true: "give", false: "take"}[o.give], o.x, got, o.result)
		}
		if got, want := l.isFree(x), o.give; got != want {
			t.Errorf("op %d: isFree(%s) = %v; want %v", i, o.x, got, want)
		}
	}
}

// TestFreeListAcross64Bits takes and gives addresses on both sides of the boundary
// between the low and high 64-bit words.
func TestFreeListAcross64Bits(t *testing.T) {
	lo, hi := u128{0, max64 - 1}, u128{1, 1} // ::ffff:ffff:ffff:fffe .. 0:0:0:1::1
	l := newFreeList(IPv6)
	l.add(lo, hi)
	last, first := u128{0, max64}, u128{1, 0}
	if !l.take(last) || !l.take(first) {
		t.Fatal("take at the boundary failed")
	}
	if got, want := runsOf(l), []run{{lo, lo}, {hi, hi}}; !slices.Equal(got, want) {
		t.Fatalf("runs: got %v; want %v", got, want)
	}
	l.give(first)
	if got, want := runsOf(l), []run{{lo, lo}, {first, hi}}; !slices.Equal(got, want) {
		t.Fatalf("runs after give(%v): got %v; want %v", first, got, want)
	}
	l.give(last)
	if got, want := runsOf(l), []run{{lo, hi}}; !slices.Equal(got, want) {
		t.Fatalf("runs after give(%v): got %v; want %v", last, got, want)
	}
	l.take(lo)
	if x, ok := l.first(nil); !ok || x != last {
		t.Errorf("first: got %v, %v; want %v", x, ok, last)
	}
	if got, want := rangeSize(netipx.IPRangeFrom(lo.addr(IPv6), hi.addr(IPv6))).String(), "4"; got != want {
		t.Errorf("rangeSize across the boundary: got %s; want %s", got, want)
	}
}

func TestFreeListFirst(t *testing.T) {
	l := newFreeList(IPv4)
	l.add(v4("10.0.0.255"), v4("10.0.1.0"))
	l.add(v4("10.0.1.255"), v4("10.0.2.3"))
	if x, ok := l.first(nil); !ok || x != v4("10.0.0.255") {
		t.Errorf("first(nil): got %v, %v; want 10.0.0.255", x.addr(IPv4), ok)
	}
	if x, ok := l.first(buggy); !ok || x != v4("10.0.2.1") {
		t.Errorf("first(buggy): got %v, %v; want 10.0.2.1", x.addr(IPv4), ok)
	}
	l.take(v4("10.0.2.1"))
	l.take(v4("10.0.2.2"))
	l.take(v4("10.0.2.3"))
	if x, ok := l.first(buggy); ok {
		t.Errorf("first(buggy) with only buggy addresses free: got %v; want none", x.addr(IPv4))
	}
	if _, ok := newFreeList(IPv6).first(nil); ok {
		t.Error("first on an empty list: got ok; want none")
	}
}

func TestBuggyCount(t *testing.T) {
	brute := func(from, to uint32) uint64 {
		var n uint64
		for x := uint64(from); x <= uint64(to); x++ {
			if b := x & 0xff; b == 0 || b == 0xff {
				n++
			}
		}
		return n
	}
	check := func(from, to uint32) {
		t.Helper()
		r := netipx.IPRangeFrom(u128{lo: uint64(from)}.addr(IPv4), u128{lo: uint64(to)}.addr(IPv4))
		if got, want := buggyCount(r), brute(from, to); got != want {
			t.Fatalf("buggyCount(%s): got %d; want %d", r, got, want)
		}
		size := rangeSize(r)
		if want := new(big.Int).SetUint64(uint64(to) - uint64(from) + 1); size.Cmp(want) != 0 {
			t.Fatalf("rangeSize(%s): got %s; want %s", r, size, want)
		}
	}
	for _, e := range [][2]uint32{
		{0, 0}, {0, 255}, {255, 256}, {1, 254}, {254, 257}, {0, 1024},
		{1<<32 - 1, 1<<32 - 1}, {1<<32 - 300, 1<<32 - 1}, {1<<32 - 256, 1<<32 - 2},
	} {
		check(e[0], e[1])
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		from := rng.Uint32()
		n := rng.Uint32N(2000)
		if uint64(from)+uint64(n) > 1<<32-1 {
			from = 1<<32 - 1 - n
		}
		check(from, from+n)
	}
}
