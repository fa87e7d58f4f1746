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
// an address, the conntrack entries of TCP flows to it that are still waiting
// for their first answer and were never translated (the reply would come from
// the address itself). The next packet of such a connection is new to
// conntrack and kube-proxy's rules, once written, translate it. Translated
// flows, answered flows and other addresses are never touched.
package flows

import (
	"net/netip"
	"slices"
	"time"
)

// Window is how long after an address first appears its untranslated flows are
// deleted. kube-proxy takes seconds; a minute covers a slow node.
const Window = time.Minute

// interval is the pause between two sweeps: every second while the youngest
// address is in its first ten seconds (a client retransmits its SYN after 1, 3
// and 7 s), then every five.
func interval(age time.Duration) time.Duration {
	if age < 10*time.Second {
		return time.Second
	}
	return 5 * time.Second
}

// Due returns the addresses whose flows a sweep at now deletes (those first
// seen less than Window ago, sorted) and when the sweep after it is due (zero
// when no address is young). last is when the previous sweep ran (zero: none).
// It is pure: the Sweeper and its tests share it.
func Due(firstSeen map[netip.Addr]time.Time, last, now time.Time) (young []netip.Addr, next time.Time) {
	var youngest time.Duration = -1
	for a, at := range firstSeen {
		age := now.Sub(at)
		if age >= Window {
			continue
		}
		young = append(young, a)
		if youngest < 0 || age < youngest {
			youngest = age
		}
	}
	if len(young) == 0 {
		return nil, time.Time{}
	}
	slices.SortFunc(young, netip.Addr.Compare)
	step := interval(max(youngest, 0))
	if !last.IsZero() && now.Sub(last) < step {
		// Not yet: a burst of new addresses does not sweep more often.
		return nil, last.Add(step)
	}
	return young, now.Add(step)
}
