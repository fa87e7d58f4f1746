// Package poolcover is the rule, shared by the controller and the speakers, that
// says which IPPools an L2Announcement or BGPAnnouncement covers, and to which
// pools a Service's address belongs when that rule is applied to it. It is pure:
// no Kubernetes client, no clock.
package poolcover

import (
	"net/netip"
	"slices"

	"go4.org/netipx"
)

// Covers reports whether an announcement naming the pools names, or selecting
// pools with sel, covers the pool called pool with labels. One naming pools
// covers those; else one with a selector covers the pools it selects; one with
// neither covers every pool. A nil sel is "no selector".
func Covers(names []string, sel func(map[string]string) bool, pool string, labels map[string]string) bool {
	switch {
	case len(names) > 0:
		return slices.Contains(names, pool)
	case sel != nil:
		return sel(labels)
	}
	return true
}

// Pool is an IPPool as coverage needs it.
type Pool struct {
	Name   string
	Labels map[string]string
	// Addresses are the pool's addresses. When Unreadable, they are the last
	// valid ones this process saw, or nil if it saw none.
	Addresses *netipx.IPSet
	// Unreadable reports whether spec.addresses cannot be parsed now. The pool
	// still takes part in coverage (by name, by labels, by its last valid
	// addresses) so that a typo in an edit does not silence its Services.
	Unreadable bool
}

// Source says how an address was tied to its pools.
type Source int

const (
	// SourceNone: no pool holds the address and the Service names none; no
	// announcement covers it.
	SourceNone Source = iota
	// SourceSpec: a readable pool's spec.addresses holds it.
	SourceSpec
	// SourceLastValid: only the last valid addresses of pools whose spec is
	// now unreadable hold it.
	SourceLastValid
	// SourceAllocatedFrom: no known pool addresses hold it; it is tied to the
	// pool the Service's herald.io/allocated-from-pool annotation names (an
	// address retained outside every pool, or one of a pool unreadable since
	// this process started).
	SourceAllocatedFrom
)

func (s Source) String() string {
	switch s {
	case SourceNone:
		return "None"
	case SourceSpec:
		return "Spec"
	case SourceLastValid:
		return "LastValid"
	case SourceAllocatedFrom:
		return "AllocatedFrom"
	}
	return "Unknown"
}

// Owner is what an address belongs to for coverage.
type Owner struct {
	Source Source
	// Pools are the pools the address belongs to, in the order given to
	// Attribute. Several when pools overlap.
	Pools []Pool
	// PoolGone reports whether the pool named by the Service's annotation no
	// longer exists; Pools then holds a Pool with only its name, which an
	// announcement naming it still covers but no selector does (there are no
	// labels to select).
	PoolGone bool
}

// Attribute ties ip, an address of a Service whose allocated-from-pool
// annotation is allocatedFrom (empty when absent), to its pools: every readable
// pool holding it; else every unreadable pool whose last valid addresses hold it;
// else the pool the annotation names, existing or not. The annotation comes last
// so that an address inside a pool is covered by that pool's announcements, as
// before the annotation existed.
func Attribute(ip netip.Addr, allocatedFrom string, pools []Pool) Owner {
	var spec, last []Pool
	for _, p := range pools {
		if p.Addresses == nil || !p.Addresses.Contains(ip) {
			continue
		}
		if p.Unreadable {
			last = append(last, p)
		} else {
			spec = append(spec, p)
		}
	}
	switch {
	case len(spec) > 0:
		return Owner{Source: SourceSpec, Pools: spec}
	case len(last) > 0:
		return Owner{Source: SourceLastValid, Pools: last}
	case allocatedFrom == "":
		return Owner{}
	}
	for _, p := range pools {
		if p.Name == allocatedFrom {
			return Owner{Source: SourceAllocatedFrom, Pools: []Pool{p}}
		}
	}
	return Owner{Source: SourceAllocatedFrom, Pools: []Pool{{Name: allocatedFrom}}, PoolGone: true}
}

// CoveredBy reports whether an announcement naming names or selecting sel (as in
// Covers) covers one of o's pools.
func (o Owner) CoveredBy(names []string, sel func(map[string]string) bool) bool {
	for _, p := range o.Pools {
		if o.PoolGone && len(names) == 0 && sel != nil {
			continue // a deleted pool has no labels left to select
		}
		if Covers(names, sel, p.Name, p.Labels) {
			return true
		}
	}
	return false
}

// OutsidePools reports whether the address is known to lie outside every pool:
// tied to its pool by the annotation only, that pool being gone or readable
// without it. (With the pool unreadable and no last valid addresses known, it
// may well be inside; nobody can tell.)
func (o Owner) OutsidePools() bool {
	return o.Source == SourceAllocatedFrom && (o.PoolGone || !o.Pools[0].Unreadable)
}

// UnreadablePools returns the names of o's pools whose spec cannot be parsed.
func (o Owner) UnreadablePools() []string {
	var out []string
	for _, p := range o.Pools {
		if p.Unreadable {
			out = append(out, p.Name)
		}
	}
	return out
}
