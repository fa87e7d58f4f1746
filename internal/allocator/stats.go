package allocator

import (
	"math/big"
	"net/netip"
	"slices"
)

// FamilyStats counts one family of a pool.
type FamilyStats struct {
	Capacity *big.Int
	Used     uint64
}

// Free returns Capacity minus Used, never below zero (an address restored from a
// Service's status can sit where avoidBuggyIPs would not have put it).
func (s FamilyStats) Free() *big.Int {
	n := new(big.Int).Sub(s.Capacity, new(big.Int).SetUint64(s.Used))
	if n.Sign() < 0 {
		n.SetInt64(0)
	}
	return n
}

// PoolStats returns a pool's counts per family; a family the pool lacks is absent.
func (a *Allocator) PoolStats(name string) (map[Family]FamilyStats, bool) {
	p, ok := a.pools[name]
	if !ok {
		return nil, false
	}
	out := map[Family]FamilyStats{}
	for f, c := range p.capacity {
		out[f] = FamilyStats{Capacity: new(big.Int).Set(c), Used: p.used[f]}
	}
	return out, true
}

// Overlaps returns, sorted, the other pools that share addresses with the named one.
func (a *Allocator) Overlaps(name string) []string {
	p, ok := a.pools[name]
	if !ok || p.Addresses == nil {
		return nil
	}
	var out []string
	for _, o := range a.order {
		if o.Name != name && o.Addresses != nil && o.Addresses.Overlaps(p.Addresses) {
			out = append(out, o.Name)
		}
	}
	slices.Sort(out)
	return out
}

// Holders returns, sorted, the Services holding ip.
func (a *Allocator) Holders(ip netip.Addr) []string {
	var out []string
	for k := range a.ips[ip] {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Services returns, sorted, the keys of all Services holding addresses.
func (a *Allocator) Services() []string {
	out := make([]string, 0, len(a.svcs))
	for k := range a.svcs {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
