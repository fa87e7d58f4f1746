package allocator

import (
	"fmt"
	"net/netip"
	"slices"
)

// An address a Service gives up is quarantined until the caller says, with Shown,
// that the Service's status no longer shows it: until then the API server still
// shows it on that Service (its status write in flight, or failing), and giving it
// to another Service would show one address on two (issue 9). The status is the
// ledger, so a quarantined address is not free: it is cut out of every pool's free
// list and counted as used, exactly as a held one.
//
// The quarantine is kept per Service key, because several Services may show one
// address at once: the sharers of an address leaving it one by one, or, after a
// restart, two statuses that claimed one address before it.

// quarantine records that key's status may still show ip, which key no
// longer holds. The caller has taken ip out of the free lists (it was held).
func (a *Allocator) quarantine(key string, ip netip.Addr) {
	if slices.Contains(a.quarantined[ip], key) {
		return
	}
	a.quarantined[ip] = append(a.quarantined[ip], key)
	a.quarantinedBy[key] = append(a.quarantinedBy[key], ip)
}

// unquarantine forgets that key's status may show ip. It reports whether ip became
// free, which it does when nobody holds it and no other status shows it.
func (a *Allocator) unquarantine(key string, ip netip.Addr) bool {
	ks := a.quarantined[ip]
	i := slices.Index(ks, key)
	if i < 0 {
		return false
	}
	if ks = slices.Delete(ks, i, i+1); len(ks) > 0 {
		a.quarantined[ip] = ks
	}
	if ips := a.quarantinedBy[key]; len(ips) > 0 {
		if ips = slices.DeleteFunc(ips, func(x netip.Addr) bool { return x == ip }); len(ips) > 0 {
			a.quarantinedBy[key] = ips
		} else {
			delete(a.quarantinedBy, key)
		}
	}
	if len(ks) > 0 {
		return false
	}
	delete(a.quarantined, ip)
	if len(a.ips[ip]) > 0 {
		return false
	}
	a.give(ip)
	a.releases++
	return true
}

// Shown tells the allocator that the API server shows exactly ips in the status of
// the Service with the given key: a status write of the Service succeeded, or the
// Service is gone (ips empty). Every address the Service gave up and its status no
// longer shows leaves quarantine; Shown returns, sorted, those that became free, so
// the caller can retry the Services waiting for one.
func (a *Allocator) Shown(key string, ips []netip.Addr) []netip.Addr {
	var freed []netip.Addr
	q := a.quarantinedBy[key]
	kept := q[:0] // in place: unquarantine no longer finds key's index entry
	delete(a.quarantinedBy, key)
	for _, ip := range q {
		if slices.Contains(ips, ip) {
			kept = append(kept, ip)
			continue
		}
		if a.unquarantine(key, ip) {
			freed = append(freed, ip)
		}
	}
	if len(kept) > 0 {
		a.quarantinedBy[key] = kept
	}
	slices.SortFunc(freed, netip.Addr.Compare)
	return freed
}

// Quarantine records that the status of the Service with the given key shows ips,
// which it does not hold (it is no longer handled, or another Service holds them):
// no other Service is given them until Shown says that status no longer shows them.
// The controller calls it when it rebuilds from Service statuses, for the statuses
// it could not Restore, so a restart keeps the protection.
func (a *Allocator) Quarantine(key string, ips []netip.Addr) {
	held := a.svcs[key].heldIPs()
	for _, ip := range ips {
		if slices.Contains(held, ip) {
			continue
		}
		if len(a.ips[ip]) == 0 && len(a.quarantined[ip]) == 0 {
			a.take(ip)
		}
		a.quarantine(key, ip)
	}
}

// QuarantinedBy returns, sorted, the addresses the Service with the given key gave
// up and whose release its status may not show yet.
func (a *Allocator) QuarantinedBy(key string) []netip.Addr {
	out := slices.Clone(a.quarantinedBy[key])
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// QuarantinedCount returns how many addresses nobody holds and nobody may be given
// because a status may still show them.
func (a *Allocator) QuarantinedCount() int {
	n := 0
	for ip := range a.quarantined {
		if len(a.ips[ip]) == 0 {
			n++
		}
	}
	return n
}

// quarantinedFor returns why a Service may not take ip, which nobody holds, while
// other Services' statuses may show it, or nil when it may.
func (a *Allocator) quarantinedFor(ip netip.Addr, key string) *Error {
	if len(a.ips[ip]) > 0 {
		return nil // held: sharing rules decide
	}
	others := slices.DeleteFunc(slices.Clone(a.quarantined[ip]), func(k string) bool { return k == key })
	if len(others) == 0 {
		return nil
	}
	slices.Sort(others)
	return &Error{ReasonRequestedIPInUse, fmt.Sprintf("%s was released by Service %s, whose status still shows it; it can be given again once that status is updated", ip, others[0])}
}

// quarantineBlocks reports whether a quarantined address nobody holds, of a
// family wanted, lies in one of the pools given: what a refusal for a full pool
// should mention.
func (a *Allocator) quarantineBlocks(cands []*pool, want []Family) bool {
	for ip := range a.quarantined {
		if len(a.ips[ip]) > 0 || !slices.Contains(want, FamilyOf(ip)) {
			continue
		}
		if slices.ContainsFunc(cands, func(p *pool) bool { return p.Addresses != nil && p.Addresses.Contains(ip) }) {
			return true
		}
	}
	return false
}
