// Package flows forgets the connections to a new LoadBalancer address that
// reached a node before kube-proxy had rules for it.
//
// A speaker announces a new address within a fraction of a second of the
// controller assigning it; kube-proxy on the node writes its rules a few seconds
// later (4.2 s measured on kind). A SYN arriving in between is not translated:
// the node forwards it towards the address like any other packet (on a LAN, to
// whatever its neighbour cache says; over BGP, back to the router), and its
// conntrack entry stays in SYN_SENT, untranslated, for 120 s. Every retransmitted
// SYN of that connection, and any new connection that reuses the client's port
// in those two minutes, follows the entry instead of kube-proxy's rules: the
// client times out although the Service works.
//
// The speaker on every node therefore deletes, for a minute after it first sees
// an address (1, 2, 3, 5, 8, 13, 21, 34 and 55 s after), the conntrack entries
// of TCP flows to it that are still waiting for their first answer and were
// never translated (the reply would come from the address itself). The next
// packet of such a connection is new to conntrack and kube-proxy's rules, once
// written, translate it. Translated flows, answered flows and other addresses
// are never touched.
package flows

import (
	"net/netip"
	"slices"
	"time"
)

// Window is how long after an address first appears its untranslated flows are
// deleted. kube-proxy takes seconds; a minute covers a slow node.
const Window = time.Minute

// marks are the ages of an address at which its flows are swept: often at first
// (a client retransmits its SYN 1, 3 and 7 s after the first), then less and
// less, since each sweep reads the node's whole conntrack table (about 200 ms
// of CPU for 50,000 entries: BenchmarkSweep50k).
var marks = []time.Duration{1 * time.Second, 2 * time.Second, 3 * time.Second, 5 * time.Second, 8 * time.Second,
	13 * time.Second, 21 * time.Second, 34 * time.Second, 55 * time.Second}

// nextMark is the first time after t at which an address first seen at seen is
// due a sweep (zero: none left).
func nextMark(seen, t time.Time) time.Time {
	for _, m := range marks {
		if at := seen.Add(m); at.After(t) {
			return at
		}
	}
	return time.Time{}
}

// Due returns the addresses whose flows a sweep at now deletes (every address
// first seen less than Window ago, sorted) if one of them reached a mark since
// the previous sweep at last (zero: none), and when the next sweep is due (zero
// when none is). It is pure: the Sweeper and its tests share it.
func Due(firstSeen map[netip.Addr]time.Time, last, now time.Time) (young []netip.Addr, next time.Time) {
	var due time.Time
	for a, seen := range firstSeen {
		if now.Sub(seen) >= Window {
			continue
		}
		young = append(young, a)
		if m := nextMark(seen, last); !m.IsZero() && (due.IsZero() || m.Before(due)) {
			due = m
		}
	}
	if due.IsZero() {
		return nil, time.Time{}
	}
	if now.Before(due) {
		return nil, due
	}
	for _, a := range young {
		if m := nextMark(firstSeen[a], now); !m.IsZero() && (next.IsZero() || m.Before(next)) {
			next = m
		}
	}
	slices.SortFunc(young, netip.Addr.Compare)
	return young, next
}
