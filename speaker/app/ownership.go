package app

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/heraldlb/herald/speaker/conflict"
	"github.com/heraldlb/herald/speaker/layer2"
	"github.com/heraldlb/herald/speaker/plan"
)

// claims is what this speaker tells the others it announces (see package
// election, rule 2), and the local facts behind it. Only the speaker loop
// touches it.
type claims struct {
	// weight of each claimed key: the live speakers this one saw when it
	// took the key, lowered whenever it saw fewer since.
	weight map[string]int
	// at is when each key was claimed, by this node's clock.
	at map[string]time.Time
}

func newClaims() *claims { return &claims{weight: map[string]int{}, at: map[string]time.Time{}} }

// update makes the claims exactly the keys this node announces now, with view
// live speakers in sight, and returns them for publishing.
func (c *claims) update(announced []string, view int, now time.Time) map[string]int {
	next := make(map[string]int, len(announced))
	for _, k := range announced {
		w, ok := c.weight[k]
		if !ok {
			w = view
			c.at[k] = now
		}
		next[k] = min(w, view)
	}
	for k := range c.at {
		if _, ok := next[k]; !ok {
			delete(c.at, k)
		}
	}
	c.weight = next
	return maps.Clone(next)
}

// drop forgets every claim: this node was cut off and what it took alone is
// void.
func (c *claims) drop() {
	clear(c.weight)
	clear(c.at)
}

// yieldDecision says whether this node stops announcing key, which it announces,
// when node other, which memberlist does not show alive (a cut between the
// speakers, not on the LAN), answers for it on the wire too. Both sides decide
// alike without talking: the node that held the key before memberlist lost
// sight of the other keeps it, so a gossip-only cut moves nothing; when
// neither or both did, a hash of the names and key decides.
//
// otherHeld is whether other claimed key when it was last seen; claimedAt is
// when this node claimed key and otherLeft when it last saw other leave or
// fail (zero if never).
func yieldDecision(self, other, key string, otherHeld bool, claimedAt, otherLeft time.Time) bool {
	selfHeld := !otherLeft.IsZero() && claimedAt.Before(otherLeft)
	switch {
	case otherHeld && !selfHeld:
		return true
	case selfHeld && !otherHeld:
		return false
	}
	return conflict.Yield(self, other, key)
}

// yielded is a key this node stopped announcing because another speaker it
// cannot reach through memberlist answers for it.
type yielded struct {
	to  string
	mac string
	// check is when to look again whether the other still answers.
	check time.Time
}

// yieldCheck is how often a yielded key is probed: if the node it yielded to
// stops answering (it died during the cut), this one takes the key back
// within about this time plus a probe.
const yieldCheck = time.Second

// ownHardwareAddrs returns this node's MACs, for probes to ignore.
func (s *speaker) ownHardwareAddrs() []net.HardwareAddr {
	var own []net.HardwareAddr
	for _, mac := range s.hostMACs() {
		if hw, err := net.ParseMAC(mac); err == nil {
			own = append(own, hw)
		}
	}
	return own
}

// onConflict handles another host claiming, on the wire, an address this node
// announces. It reports whether the announcements must be recomputed.
//
// A foreign host is the start-up probe's business. Another herald speaker that
// memberlist shows alive is a hand-over in progress, which claims settle. One
// that memberlist does not show is split brain: the speakers cannot gossip but
// share the LAN, and each elected itself. Then one of them yields, within about
// a second, whatever memberlist says (yieldDecision).
func (s *speaker) onConflict(ctx context.Context, c layer2.Conflict) bool {
	mac := strings.ToLower(c.HardwareAddr.String())
	other, known := s.members.MemberOfMAC(mac)
	if !known || other == s.cfg.NodeName {
		return false
	}
	for _, m := range s.members.Alive() {
		if m.Name == other {
			return false
		}
	}
	key, ok := s.keyOf[c.Addr]
	if !ok {
		return false
	}
	if _, done := s.yielded[key]; done {
		return false
	}
	claimedAt, mine := s.claims.at[key]
	if !mine {
		return false
	}
	_, otherHeld := s.members.LastClaims(other)[key]
	now := s.now()
	yield := yieldDecision(s.cfg.NodeName, other, key, otherHeld, claimedAt, s.members.LeftAt(other))
	outcome := "kept"
	if yield {
		outcome = "yielded"
		s.yielded[key] = yielded{to: other, mac: mac, check: now.Add(yieldCheck)}
	}
	if !yield {
		// The other side sees only broadcasts: announce again so it hears
		// this node and yields too.
		s.l2.reannounce(c.Addr)
	}
	metricSplitBrain.WithLabelValues(outcome).Inc()
	s.log.Info("Another speaker answers for an announced address but is not in memberlist (split brain)",
		"address", c.Addr.String(), "other", other, "mac", mac, "interface", c.Interface, "outcome", outcome)
	if svcs := s.servicesOf(key); len(svcs) > 0 {
		msg := fmt.Sprintf("Nodes %s and %s both answer for %s but cannot reach each other through memberlist (port %d); ", s.cfg.NodeName, other, c.Addr, s.cfg.MemberlistPort)
		if yield {
			msg += fmt.Sprintf("%s stops and leaves it to %s", s.cfg.NodeName, other)
		} else {
			msg += fmt.Sprintf("%s keeps it and %s must stop", s.cfg.NodeName, other)
		}
		for _, svc := range svcs {
			if ref := s.serviceRef(ctx, svc); ref != nil {
				s.recorder.Event(ref, corev1.EventTypeWarning, "SplitBrain", msg)
			}
		}
	}
	return yield
}

// servicesOf returns the Services announced under key, from the last report.
func (s *speaker) servicesOf(key string) []string { return s.ownedServices[key] }

// checkYielded probes each yielded key whose check is due: while the speaker it
// yielded to still answers, the key stays yielded; when it does not, this node
// takes the key back (the other may have died during the cut).
func (s *speaker) checkYielded(ctx context.Context) {
	now := s.now()
	own := s.ownHardwareAddrs()
	for key, y := range s.yielded {
		if now.Before(y.check) {
			continue
		}
		// A group's key is its lowest address; a key gone from the plan is
		// dropped.
		addr, err := netip.ParseAddr(key)
		if err != nil || s.keyOf[addr] != key {
			delete(s.yielded, key)
			continue
		}
		if mac, ok := s.l2.answerer(ctx, addr, nil, own, 0); !ok || mac != "" {
			y.check = now.Add(yieldCheck)
			s.yielded[key] = y
			continue
		}
		s.log.Info("The speaker this node yielded to no longer answers; taking the address back", "address", addr.String(), "other", y.to)
		delete(s.yielded, key)
	}
}

// takeoverProbeWait bounds the probe before a takeover from a failed member: it
// adds to every failover in which that member is really gone, while a live
// host answers ARP in a millisecond or two. A slower answer is missed, and the
// two nodes then settle it on the wire (onConflict) within about a second.
const takeoverProbeWait = 30 * time.Millisecond

// aliveRecheck is how soon a takeover answered by a live member is looked at
// again: the next pass sees that member's claims and eligibility.
const aliveRecheck = 200 * time.Millisecond

// takeover is a key this node was just elected for, from a member that failed.
type takeover struct {
	key, prev string
	addr      netip.Addr
	ifs       []string
}

// probeTakeovers checks, before this node announces keys it takes over, whether
// a member that failed (not left) still answers for them on the wire: a member that memberlist lost but the LAN did not (a firewall on
// the gossip port, a wrong key) is alive, and taking its addresses would make
// two nodes answer and move every flow. Such keys are yielded to it and checked
// again every yieldCheck. The probes run together: one probe time in all.
func (s *speaker) probeTakeovers(ctx context.Context, groups []plan.Group, owner map[string]string) {
	var checks []takeover
	for _, g := range groups {
		if owner[g.Key] != s.cfg.NodeName || len(g.IPs) == 0 {
			continue
		}
		if _, held := s.claims.weight[g.Key]; held {
			continue
		}
		if _, done := s.yielded[g.Key]; done {
			continue
		}
		// A takeover: the address was in the last plan. (An address new to
		// the cluster is probed by Set before its first announcement.) Its
		// holder may be a member this node's view lost a moment ago without
		// its last claims: a returning node's stale gossip can make a live
		// member look dead for a few milliseconds.
		if !s.seen[g.IPs[0]] {
			continue
		}
		checks = append(checks, takeover{key: g.Key, addr: g.IPs[0], ifs: g.Interfaces})
	}
	if len(checks) == 0 {
		return
	}
	own := s.ownHardwareAddrs()
	macs := make([]string, len(checks))
	var wg sync.WaitGroup
	for i := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			macs[i], _ = s.l2.answerer(ctx, checks[i].addr, checks[i].ifs, own, takeoverProbeWait)
		}()
	}
	wg.Wait()
	alive := map[string]bool{}
	for _, m := range s.members.Alive() {
		alive[m.Name] = true
	}
	now := s.now()
	for i, c := range checks {
		if macs[i] == "" {
			continue
		}
		// A member that failed (not one that left, which answers until its
		// new owners announce), or one that came back while the probe ran:
		// the next pass, with its claims, decides.
		who, ok := s.members.MemberOfMAC(macs[i])
		if !ok || who == s.cfg.NodeName || !s.members.Failed(who) && !alive[who] {
			continue
		}
		c.prev = who
		if alive[who] {
			// Back already, or still answering while it hands over an
			// address it is no longer eligible for: look again at once with
			// its claims, no split brain to report.
			s.yielded[c.key] = yielded{to: who, mac: macs[i], check: now.Add(aliveRecheck)}
			continue
		}
		s.yielded[c.key] = yielded{to: c.prev, mac: macs[i], check: now.Add(yieldCheck)}
		metricSplitBrain.WithLabelValues("yielded").Inc()
		s.log.Info("Not taking over: the node memberlist lost still answers for the address (split brain)", "address", c.addr.String(), "other", c.prev, "mac", macs[i])
		for _, svc := range s.groupServices(groups, c.key) {
			if ref := s.serviceRef(ctx, svc); ref != nil {
				s.recorder.Eventf(ref, corev1.EventTypeWarning, "SplitBrain", "Node %s lost %s in memberlist (port %d) but %s still answers for %s on the LAN; %s leaves it there",
					s.cfg.NodeName, c.prev, s.cfg.MemberlistPort, c.prev, c.addr, s.cfg.NodeName)
			}
		}
	}
}

func (s *speaker) groupServices(groups []plan.Group, key string) []string {
	for _, g := range groups {
		if g.Key == key {
			return g.Services
		}
	}
	return nil
}
