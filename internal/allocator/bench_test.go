package allocator

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
)

// inUse is how many addresses the benchmarks hold: a large cluster's worth.
const inUse = 10_000

// fragmented returns an Allocator with one pool and inUse addresses held by Services
// svc-0 … svc-N, every other one released on the way, so that the free list has
// about inUse holes rather than a single run: the worst case for its size.
func fragmented(tb testing.TB, p Pool, fams []Family) *Allocator {
	tb.Helper()
	a := New(RetainOrphans)
	a.SetPool(p)
	for i := range 2 * inUse {
		if _, err := a.Assign(Request{Key: fmt.Sprintf("svc-%d", i), Families: fams}); err != nil {
			tb.Fatalf("Assign(svc-%d): %v", i, err)
		}
	}
	for i := 0; i < 2*inUse; i += 2 {
		a.Release(fmt.Sprintf("svc-%d", i))
		a.Shown(fmt.Sprintf("svc-%d", i), nil)
	}
	return a
}

func BenchmarkAssignRelease(b *testing.B) {
	for _, bc := range []struct {
		name string
		pool Pool
		fams []Family
	}{
		{"IPv4-/16", avoidBuggy(autoPool("p", "10.0.0.0/16")), nil},
		{"IPv6-/64", autoPool("p", "2001:db8::/64"), v6only},
	} {
		b.Run(bc.name, func(b *testing.B) {
			a := fragmented(b, bc.pool, bc.fams)
			req := Request{Key: "bench/svc", Families: bc.fams}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Assign(req); err != nil {
					b.Fatal(err)
				}
				a.Release(req.Key)
				// The controller's cycle: the release's status write lands.
				a.Shown(req.Key, nil)
			}
		})
	}
}

func BenchmarkRestore(b *testing.B) {
	const services = 5_000
	reqs := make([]Request, services)
	ips := make([][]netip.Addr, services)
	base := netip.MustParseAddr("10.0.0.1")
	v6 := netip.MustParseAddr("2001:db8::1")
	for i := range reqs {
		reqs[i] = Request{Key: fmt.Sprintf("ns/svc-%d", i), Families: dual, Policy: PreferDualStack}
		ips[i] = []netip.Addr{base, v6}
		base, v6 = base.Next(), v6.Next()
	}
	pool := autoPool("p", "10.0.0.0/16", "2001:db8::/64")
	b.ReportAllocs()
	for b.Loop() {
		a := New(RetainOrphans)
		a.SetPool(pool)
		for i, r := range reqs {
			if err := a.Restore(r, ips[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkSetPool(b *testing.B) {
	p := avoidBuggy(autoPool("p", "10.0.0.0/16"))
	a := fragmented(b, p, nil)
	b.ReportAllocs()
	for b.Loop() {
		a.SetPool(p)
	}
}

// TestMemoryIndependentOfPoolSize holds the same number of addresses, with the same
// holes, in a pool of 1,024 addresses and in one of 2^64, and checks that the free
// lists have as many runs and that the heap grows alike: memory follows what is
// assigned, not the size of the pool.
func TestMemoryIndependentOfPoolSize(t *testing.T) {
	const n = 1000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("svc-%d", i)
	}
	measure := func(p Pool, fams []Family) (heap uint64, runs int) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		a := New(RetainOrphans)
		a.SetPool(p)
		for _, k := range keys {
			if _, err := a.Assign(Request{Key: k, Families: fams}); err != nil {
				t.Fatalf("Assign(%s) in %s: %v", k, p.Name, err)
			}
		}
		for i := 0; i < n; i += 2 {
			a.Release(keys[i])
			a.Shown(keys[i], nil)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		for _, l := range a.pools[p.Name].free {
			runs += l.runs.Len()
		}
		runtime.KeepAlive(a)
		if after.HeapAlloc < before.HeapAlloc {
			return 0, runs
		}
		return after.HeapAlloc - before.HeapAlloc, runs
	}
	smallHeap, smallRuns := measure(autoPool("small", "10.0.0.0/22"), nil)
	bigHeap, bigRuns := measure(autoPool("big", "2001:db8::/64"), v6only)
	t.Logf("heap growth: /22 %d bytes, %d runs; /64 %d bytes, %d runs", smallHeap, smallRuns, bigHeap, bigRuns)
	// 500 holes, then the rest of the pool after the last assigned address.
	if want := n/2 + 1; smallRuns != want || bigRuns != want {
		t.Errorf("free-list runs: got %d (/22) and %d (/64); want %d each", smallRuns, bigRuns, want)
	}
	// Generous bounds: GC accounting is noisy, but a pool-sized structure for 2^64
	// addresses could not fit either, and one for 1,024 would not show.
	if limit := 2*smallHeap + 256<<10; bigHeap > limit {
		t.Errorf("heap growth for the /64 pool: got %d bytes; want at most %d (twice the /22's plus 256 KiB)", bigHeap, limit)
	}
	if limit := uint64(4 << 20); bigHeap > limit {
		t.Errorf("heap growth for 1,000 addresses in a /64: got %d bytes; want at most %d", bigHeap, limit)
	}
}
