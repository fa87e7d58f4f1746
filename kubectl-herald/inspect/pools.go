package inspect

import (
	"slices"
	"strings"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// PoolsReport is the output of kubectl herald pools.
type PoolsReport struct {
	Pools []PoolReport `json:"pools"`
}

// PoolReport is one IPPool. Counts are decimal strings, as in the IPPool's
// status: an IPv6 pool can hold 2^64 addresses or more.
type PoolReport struct {
	Name       string   `json:"name"`
	Addresses  []string `json:"addresses"`
	AutoAssign bool     `json:"autoAssign"`
	// Priority is allocation.priority; absent when unset (tried last).
	Priority *int32 `json:"priority,omitempty"`
	// IPv4 and IPv6 are the status counts; absent when the pool has no
	// address of the family, or the controller has not counted yet.
	IPv4 *FamilyCounts `json:"ipv4,omitempty"`
	IPv6 *FamilyCounts `json:"ipv6,omitempty"`
	// Ready, Overlapping and NodeAddressOverlap are the pool's conditions;
	// absent when the controller has not written them.
	Ready              *Condition `json:"ready,omitempty"`
	Overlapping        *Condition `json:"overlapping,omitempty"`
	NodeAddressOverlap *Condition `json:"nodeAddressOverlap,omitempty"`
	// AnnouncedBy lists the announcements covering the pool, as
	// "L2Announcement/name" and "BGPAnnouncement/name", sorted; empty when
	// nothing announces its addresses.
	AnnouncedBy []string `json:"announcedBy"`
}

// FamilyCounts counts one address family of a pool.
type FamilyCounts struct {
	Capacity string `json:"capacity"`
	Used     string `json:"used"`
	Free     string `json:"free"`
}

// Pools reports every IPPool, sorted by name.
func Pools(c Cluster) PoolsReport {
	out := PoolsReport{Pools: []PoolReport{}}
	for i := range c.Pools {
		p := &c.Pools[i]
		r := PoolReport{
			Name:               p.Name,
			Addresses:          p.Spec.Addresses,
			AutoAssign:         p.Spec.AutoAssign == nil || *p.Spec.AutoAssign,
			IPv4:               counts(p.Status.IPv4),
			IPv6:               counts(p.Status.IPv6),
			Ready:              conditionOf(p.Status.Conditions, heraldv1.IPPoolConditionReady),
			Overlapping:        conditionOf(p.Status.Conditions, heraldv1.IPPoolConditionOverlapping),
			NodeAddressOverlap: conditionOf(p.Status.Conditions, heraldv1.IPPoolConditionNodeAddressOverlap),
			AnnouncedBy:        []string{},
		}
		if al := p.Spec.Allocation; al != nil {
			r.Priority = al.Priority
		}
		for _, a := range covering(c, p.Name, nil) {
			r.AnnouncedBy = append(r.AnnouncedBy, a.Kind+"/"+a.Name)
		}
		slices.Sort(r.AnnouncedBy)
		out.Pools = append(out.Pools, r)
	}
	slices.SortFunc(out.Pools, func(a, b PoolReport) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func counts(s *heraldv1.IPPoolFamilyStatus) *FamilyCounts {
	if s == nil {
		return nil
	}
	return &FamilyCounts{Capacity: s.Capacity, Used: s.Used, Free: s.Free}
}
