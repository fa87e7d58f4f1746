package app

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/heraldlb/herald/internal/ipaddr"
	"github.com/heraldlb/herald/speaker/announced"
	"github.com/heraldlb/herald/speaker/election"
	"github.com/heraldlb/herald/speaker/plan"
)

// applyRetry is how long a group this node was elected for but failed to answer
// for is refused (left to another node) before it tries again.
const applyRetry = 30 * time.Second

// sync recomputes what this node announces, applies it and publishes its
// claims. It returns when it must run again with no other change (this node
// settling, a yielded key's check), or zero.
func (s *speaker) sync(ctx context.Context) time.Time {
	svcs, nodes, pools, anns, err := snapshot(ctx, s.client, s.cfg.HandleClassless)
	if err != nil {
		s.log.Error(err, "Reading cluster state; keeping current announcements, trying again in a second")
		return s.now().Add(time.Second)
	}
	if s.flows != nil {
		// Every node, whoever announces: a SYN that came before kube-proxy's
		// rules may have passed through any of them (flows package).
		s.flows.Observe(serviceAddrs(svcs))
	}
	s.syncBGP(ctx, svcs, nodes, pools)
	p := plan.Compute(svcs, nodes, pools, anns)
	s.reportNodeAddresses(ctx, p.NodeAddressConflicts)
	s.reportIPVS(ctx)
	now := s.now()
	alive := s.members.Alive()
	states := s.members.States()

	speakerMACs := map[string]bool{}
	for _, mac := range s.members.KnownMACs() {
		speakerMACs[strings.ToLower(mac)] = true
	}
	for _, mac := range s.hostMACs() {
		speakerMACs[strings.ToLower(mac)] = true
	}
	// Until it has heard another speaker, a starting speaker announces nothing
	// (for at most a hold-down): alone, it would elect itself for every address
	// and pull traffic from the nodes serving it. Joining one speaker brings
	// every speaker's claims (memberlist's push-pull), so from then on it
	// takes nothing another holds. A lone node of a one-node cluster does not
	// wait.
	// memberlist reports a member alive before the State it pushed with its
	// join is merged: until every live member's State is known, claims may be
	// missing, so nothing new is taken (pending).
	pending := false
	for _, m := range alive {
		if _, ok := states[m.Name]; !ok && m.Name != s.cfg.NodeName {
			pending = true
		}
	}
	if len(alive) > 1 && !pending && !s.joined {
		s.joined, s.joinedAt = true, now
	}
	alone := !otherNodes(nodes, s.cfg.NodeName)
	s.ready.update(func(r *readiness) { r.Joined, r.Alone = s.joined, alone })
	if !s.joined && now.Sub(s.started) < s.cfg.HoldDown && !alone {
		s.log.V(1).Info("Not announcing until another speaker is heard", "waitUntil", s.started.Add(s.cfg.HoldDown))
		return s.started.Add(s.cfg.HoldDown)
	}
	// Settled: with the others (or alone for good) for a hold-down, by this
	// node's clock. Until then keys nobody holds go to settled nodes.
	settleAt := s.joinedAt.Add(s.cfg.HoldDown)
	if !s.joined {
		settleAt = s.started.Add(s.cfg.HoldDown)
	}
	settled := !now.Before(settleAt)

	// Keys this node could be elected for but cannot announce (no usable
	// interface) are refused, so the election passes them to another node.
	keyOf := make(map[netip.Addr]string, len(s.keyOf))
	refuses := map[string]bool{}
	var refusedList []string
	for _, g := range p.Groups {
		for _, ip := range g.IPs {
			keyOf[ip] = g.Key
		}
		if !slices.Contains(g.Nodes, s.cfg.NodeName) {
			continue
		}
		why := s.l2.cannotAnnounce(g.IPs, g.Interfaces)
		if at, failed := s.applyFailed[g.Key]; why == "" && failed {
			if now.Sub(at) < applyRetry {
				why = "answering for it failed (see the speaker's log); trying again " + at.Add(applyRetry).Format(time.RFC3339)
			} else {
				delete(s.applyFailed, g.Key)
			}
		}
		if why != "" {
			refuses[g.Key] = true
			refusedList = append(refusedList, g.Key)
			if s.refused[g.Key] != why {
				s.log.Info("Cannot announce; leaving the address to another node", "key", g.Key, "reason", why)
				for _, svc := range g.Services {
					if ref := s.serviceRef(ctx, svc); ref != nil {
						s.recorder.Eventf(ref, corev1.EventTypeWarning, "CannotAnnounce", "Node %s cannot announce %s: %s; another eligible node takes it", s.cfg.NodeName, ipaddr.Join(g.IPs), why)
					}
				}
			}
			s.refused[g.Key] = why
		}
	}
	for k := range s.refused {
		if !refuses[k] {
			delete(s.refused, k)
		}
	}
	s.keyOf = keyOf
	metricRefused.Set(float64(len(refusedList)))

	in := election.Input{Keys: make(map[string][]string, len(p.Groups))}
	for _, g := range p.Groups {
		in.Keys[g.Key] = g.Nodes
	}
	for _, m := range alive {
		if m.Name == s.cfg.NodeName {
			in.Nodes = append(in.Nodes, election.Node{Name: m.Name, Settled: settled, Claims: s.claims.weight, Refuses: refuses})
			continue
		}
		st := states[m.Name]
		n := election.Node{Name: m.Name, Settled: st.Settled, Claims: st.Claims}
		if len(st.Refuses) > 0 {
			n.Refuses = make(map[string]bool, len(st.Refuses))
			for _, k := range st.Refuses {
				n.Refuses[k] = true
			}
		}
		in.Nodes = append(in.Nodes, n)
	}
	res := election.Elect(in)

	// A yielded key is given back to the election when the speaker it
	// yielded to is seen in memberlist again: claims settle it from there.
	aliveNames := map[string]bool{}
	for _, m := range alive {
		aliveNames[m.Name] = true
	}
	next := time.Time{}
	for k, y := range s.yielded {
		if aliveNames[y.to] || res.Owner[k] != s.cfg.NodeName {
			delete(s.yielded, k)
		}
	}
	s.probeTakeovers(ctx, p.Groups, res.Owner)
	s.checkYielded(ctx)
	for _, y := range s.yielded {
		if next.IsZero() || y.check.Before(next) {
			next = y.check
		}
	}
	metricYielded.Set(float64(len(s.yielded)))

	var desired []want
	mine := map[string]plan.Group{}
	seen := map[netip.Addr]bool{}
	for _, g := range p.Groups {
		for _, ip := range g.IPs {
			seen[ip] = true
		}
		if res.Owner[g.Key] != s.cfg.NodeName {
			continue
		}
		if _, ok := s.yielded[g.Key]; ok {
			continue
		}
		if _, held := s.claims.weight[g.Key]; pending && !held {
			continue
		}
		mine[g.Key] = g
		for _, ip := range g.IPs {
			desired = append(desired, want{addr: ip, interfaces: g.Interfaces, probe: !s.seen[ip]})
		}
	}
	s.seen = seen
	applied := s.l2.Set(ctx, desired, speakerMACs)
	s.ready.update(func(r *readiness) { r.Applied = true })
	s.report(ctx, mine, applied)
	s.reportAnnounced(ctx, announced.Input{Self: s.cfg.NodeName, Alive: slices.Sorted(maps.Keys(aliveNames)), Services: svcs, Nodes: nodes, Pools: pools,
		L2Anns: anns, L2: p, Owner: res.Owner}, in, mine, applied)

	// Claim what is announced now (a group counts when any of its addresses
	// is answered). Until settled, also say so, so that nobody gives this
	// node keys that settled nodes could take. A group none of whose
	// addresses could be answered, with no foreign host in the way (the raw
	// socket failed, say), is refused from the next round for applyRetry.
	var announced []string
	for k, g := range mine {
		answered, foreign := false, false
		for _, ip := range g.IPs {
			answered = answered || applied[ip].iface != ""
			foreign = foreign || applied[ip].conflict != ""
		}
		if answered {
			announced = append(announced, k)
			delete(s.applyFailed, k)
		} else if !foreign {
			if _, ok := s.applyFailed[k]; !ok {
				s.applyFailed[k] = now
				if soon := now.Add(10 * time.Millisecond); next.IsZero() || soon.Before(next) {
					next = soon
				}
			}
		}
	}
	for _, at := range s.applyFailed {
		if retry := at.Add(applyRetry); now.Before(retry) && (next.IsZero() || retry.Before(next)) {
			next = retry
		}
	}
	slices.Sort(announced)
	slices.Sort(refusedList)
	s.members.SetState(settled, s.claims.update(announced, len(alive), now), refusedList)
	metricMembers.Set(float64(len(alive)))
	if !settled && (next.IsZero() || settleAt.Before(next)) {
		next = settleAt
	}
	if pending {
		// States arrive by push-pull and by each member's own sends; look
		// again soon rather than wait for the next change.
		if soon := now.Add(100 * time.Millisecond); next.IsZero() || soon.Before(next) {
			next = soon
		}
	}
	return next
}

// serviceAddrs lists the addresses of svcs.
func serviceAddrs(svcs []plan.Service) []netip.Addr {
	var out []netip.Addr
	for _, svc := range svcs {
		out = append(out, svc.IPs...)
	}
	return out
}

// otherNodes reports whether the cluster has a Ready node besides this one.
func otherNodes(nodes []plan.Node, self string) bool {
	for _, n := range nodes {
		if n.Name != self && n.Ready {
			return true
		}
	}
	return false
}
