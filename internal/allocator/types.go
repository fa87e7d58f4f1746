// Package allocator decides which addresses LoadBalancer Services get from IP pools.
//
// It is pure: no Kubernetes client, no sockets, no clock. The controller turns
// IPPools and Services into Pools and Requests, and the Service status it writes
// back is the ledger from which an Allocator is rebuilt with Restore after a restart.
// Because the status is the ledger, an address a Service gives up is handed to no
// other Service until the controller says, with Shown, that the giver's status no
// longer shows it (see quarantine.go).
//
// Memory grows with the number of assigned addresses and with the holes they leave
// in pools, never with the size of a pool, so an IPv6 /64 pool costs what a /30 does.
package allocator

import (
	"fmt"
	"net/netip"

	"go4.org/netipx"
)

// Family is an IP address family.
type Family int

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// FamilyOf returns the family of a.
func FamilyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// FamilyPolicy mirrors a Service's spec.ipFamilyPolicy.
type FamilyPolicy int

const (
	// SingleStack gives one address, of the Service's first family.
	SingleStack FamilyPolicy = iota
	// PreferDualStack gives one address per family of the Service when it can, and
	// settles for fewer (but at least one) when no pool has both.
	PreferDualStack
	// RequireDualStack gives one address per family or none at all.
	RequireDualStack
)

// Port is a Service port as far as sharing an address is concerned.
type Port struct {
	Protocol string // TCP, UDP or SCTP
	Port     int32
}

func (p Port) String() string { return fmt.Sprintf("%s/%d", p.Protocol, p.Port) }

// Selector reports whether a set of labels matches. A nil Selector matches all.
type Selector func(labels map[string]string) bool

// Pool is an IPPool as the allocator sees it.
type Pool struct {
	Name          string
	Addresses     *netipx.IPSet
	AutoAssign    bool
	AvoidBuggyIPs bool
	// Priority orders pools for automatic assignment, lower first; pools with
	// HasPriority false come after all pools with one. Ties go by Name.
	Priority    int32
	HasPriority bool
	// Namespaces, NamespaceSelector and ServiceSelector limit which Services may use
	// the pool; each that is set must match.
	Namespaces        []string
	NamespaceSelector Selector
	ServiceSelector   Selector
}

// Request is what a Service asks for.
type Request struct {
	// Key identifies the Service ("namespace/name").
	Key             string
	Namespace       string
	Labels          map[string]string
	NamespaceLabels map[string]string
	// Families is spec.ipFamilies, in order; empty means IPv4.
	Families []Family
	Policy   FamilyPolicy
	// IPs are the addresses the Service requests (herald.io/ips or
	// spec.loadBalancerIP), at most one per family.
	IPs []netip.Addr
	// Pool is the pool the Service names (herald.io/pool), if any.
	Pool string
	// SharingKey lets Services with the same key share an address.
	SharingKey string
	Ports      []Port
	// LocalTraffic is externalTrafficPolicy: Local. Services sharing an address
	// must agree on it, since it decides which nodes may announce the address.
	LocalTraffic bool
	// Selector is spec.selector. Local Services sharing an address must have
	// equal selectors (see ReasonSharingLocalSelector); it is not read otherwise.
	Selector map[string]string
}

// Assignment is the addresses a Service holds.
type Assignment struct {
	// IPs holds at most one address per family, IPv4 first.
	IPs []netip.Addr
	// Pool is the pool the addresses were given from: the first pool, in pool
	// order, that holds them all; empty when no pool holds them any more.
	Pool string
}

// OrphanPolicy says what happens to an assigned address that an IPPool edit or
// deletion leaves outside every pool.
type OrphanPolicy int

const (
	// RetainOrphans keeps the address on its Service (no traffic is cut) until the
	// Service is deleted or stops being a LoadBalancer; it is never handed to
	// another Service, because it is in no pool.
	RetainOrphans OrphanPolicy = iota
	// ReassignOrphans gives the Service a new address from a pool it may use, and
	// keeps the old one only while no new one can be had.
	ReassignOrphans
)
