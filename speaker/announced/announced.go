// Package announced decides the herald.io/Announced condition of each
// LoadBalancer Service: which nodes announce its addresses and how, or why none
// does. It is pure: every speaker computes it from the same shared state (the
// plans, the election, memberlist's live speakers, BGPPeer status) plus its own
// layer 2 facts, and exactly one speaker reports each Service (Reporter), so the
// API server sees one writer per Service and no two speakers fight.
package announced

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"sort"
	"strings"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/ipaddr"
	"github.com/heraldlb/herald/internal/poolcover"
	"github.com/heraldlb/herald/speaker/plan"
)

// Verdict is a Service's herald.io/Announced condition.
type Verdict struct {
	Announced bool
	Reason    string
	Message   string
}

// Local is what only this node knows: how its layer 2 announcements went.
type Local struct {
	// Interfaces maps each address this node answers for to the interface.
	Interfaces map[netip.Addr]string
	// Conflicts maps each address this node was elected for but does not
	// announce, because another host answers for it, to that host's MAC.
	Conflicts map[netip.Addr]string
	// Refused maps a group key this node cannot announce to why.
	Refused map[string]string
	// Unsettled holds group keys this node owns but does not answer for yet
	// (yielded in a split, or waiting for the others' state): their Services
	// are left as they are until it settles.
	Unsettled map[string]bool
}

// Session is one BGP session as a BGPPeer's status shows it.
type Session struct {
	Established bool
	State       string
	LastError   string
}

// BGP is the BGP configuration and every node's sessions.
type BGP struct {
	Peers []plan.BGPPeer
	Anns  []plan.BGPAnnouncement
	// Sessions maps a node to its sessions by BGPPeer name.
	Sessions map[string]map[string]Session
}

// Input is everything a verdict depends on.
type Input struct {
	Self string
	// Alive are the speakers memberlist shows alive, this one included.
	Alive    []string
	Services []plan.Service
	Nodes    []plan.Node
	Pools    []plan.Pool
	L2Anns   []plan.Announcement
	L2       plan.Plan
	// Owner maps each layer 2 group key to the elected node.
	Owner map[string]string
	// Refuses maps a layer 2 group key to the live nodes that refuse it.
	Refuses map[string][]string
	Local   Local
	BGP     BGP
}

// Reporter is the speaker that writes a Service's condition: the node elected
// for its layer 2 group (only it knows whether answering worked), else the live
// speaker a hash of the Service's key picks (rendezvous hashing: when a speaker
// comes or goes, only the Services it reported move).
func Reporter(key, owner string, alive []string) string {
	if owner != "" {
		return owner
	}
	best, bestHash := "", uint64(0)
	for _, n := range alive {
		h := fnv.New64a()
		h.Write([]byte(n))
		h.Write([]byte{0})
		h.Write([]byte(key))
		if v := h.Sum64(); best == "" || v > bestHash || (v == bestHash && n < best) {
			best, bestHash = n, v
		}
	}
	return best
}

// Decide returns the verdicts of the Services this node reports, by key.
// Services whose layer 2 owner is this node but not settled are left out.
func Decide(in Input) map[string]Verdict {
	groupOf := map[string]*plan.Group{}
	for i := range in.L2.Groups {
		for _, svc := range in.L2.Groups[i].Services {
			groupOf[svc] = &in.L2.Groups[i]
		}
	}
	alive := map[string]bool{}
	for _, n := range in.Alive {
		alive[n] = true
	}
	var mine []plan.Service
	for _, s := range in.Services {
		owner := ""
		if g := groupOf[s.Key]; g != nil {
			owner = in.Owner[g.Key]
			if owner == in.Self && in.Local.Unsettled[g.Key] {
				continue
			}
		}
		if Reporter(s.Key, owner, in.Alive) == in.Self {
			mine = append(mine, s)
		}
	}
	out := make(map[string]Verdict, len(mine))
	if len(mine) == 0 {
		return out
	}
	bgp := bgpRoutes(in, mine)
	for _, s := range mine {
		out[s.Key] = decide(in, s, groupOf[s.Key], alive, bgp)
	}
	return out
}

// part is what one mode (layer 2 or BGP) says of a Service.
type part struct {
	covered   bool
	announced bool
	reason    string
	message   string
}

func decide(in Input, s plan.Service, g *plan.Group, alive map[string]bool, bgp map[string]map[string][]string) Verdict {
	if in.L2.Skipped[s.Key] == plan.SkipNodeAddress && len(bgp[s.Key]) == 0 {
		return Verdict{Reason: heraldv1.AnnouncedReasonNodeAddress,
			Message: fmt.Sprintf("%s is a node's own address; no speaker announces it: give the Service another address", ipaddr.Join(s.IPs))}
	}
	l2 := layer2(in, s, g, alive)
	b := bgpPart(in, s, alive, bgp[s.Key])
	switch {
	case l2.announced || b.announced:
		v := Verdict{Announced: true, Reason: heraldv1.AnnouncedReasonAnnounced}
		var msgs []string
		for _, p := range []part{l2, b} {
			if p.announced {
				msgs = append(msgs, p.message)
				if p.reason != "" {
					v.Reason = p.reason
				}
			}
		}
		for _, p := range []part{l2, b} {
			if p.covered && !p.announced {
				msgs = append(msgs, "but "+p.message)
			}
		}
		v.Message = strings.Join(msgs, "; ")
		return v
	case !l2.covered && !b.covered:
		pools := "the IPPool of its addresses"
		if names := poolNames(s, in.Pools); len(names) > 0 {
			pools = "IPPool " + strings.Join(names, ", ")
		}
		return Verdict{Reason: heraldv1.AnnouncedReasonNotCovered,
			Message: fmt.Sprintf("no L2Announcement or BGPAnnouncement covers %s and selects this Service: nothing announces %s", pools, ipaddr.Join(s.IPs))}
	case l2.covered && b.covered:
		return Verdict{Reason: l2.reason, Message: l2.message + "; " + b.message}
	case l2.covered:
		return Verdict{Reason: l2.reason, Message: l2.message}
	default:
		return Verdict{Reason: b.reason, Message: b.message}
	}
}

// poolNames names the pools of a Service's addresses, sorted.
func poolNames(s plan.Service, pools []plan.Pool) []string {
	var names []string
	for _, ip := range s.IPs {
		for _, p := range poolcover.Attribute(ip, s.AllocatedFrom, pools).Pools {
			names = append(names, p.Name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// layer2 is the layer 2 part of a Service's verdict.
func layer2(in Input, s plan.Service, g *plan.Group, alive map[string]bool) part {
	covering := plan.Covering(s, in.Pools, in.L2Anns)
	if len(covering) == 0 {
		return part{}
	}
	p := part{covered: true}
	if g == nil {
		// Covered but not planned: no node is eligible.
		p.reason, p.message = noNode(s, in.Nodes, "L2Announcement", l2Selectors(covering))
		p.message = "layer 2: " + p.message
		return p
	}
	owner := in.Owner[g.Key]
	switch {
	case owner == in.Self:
		var ifs, answered, conflicts []string
		for _, ip := range s.IPs {
			if mac, ok := in.Local.Conflicts[ip]; ok {
				conflicts = append(conflicts, fmt.Sprintf("%s is already answered by %s, which is not a herald speaker", ip, mac))
				continue
			}
			if ifc, ok := in.Local.Interfaces[ip]; ok {
				answered = append(answered, ip.String())
				ifs = append(ifs, ifc)
			}
		}
		slices.Sort(ifs)
		ifs = slices.Compact(ifs)
		switch {
		case len(answered) > 0 && slices.Contains(g.Unserved[in.Self], s.Key):
			p.reason = heraldv1.AnnouncedReasonNoReadyEndpoint
			p.message = fmt.Sprintf("node %s announces %s on %s (layer 2) for the Services sharing it, but has no ready endpoint of this Service (externalTrafficPolicy Local): it is unreachable there", in.Self, strings.Join(answered, ", "), strings.Join(ifs, ", "))
		case len(answered) > 0:
			p.announced = true
			p.message = fmt.Sprintf("node %s announces %s on %s (layer 2)", in.Self, strings.Join(answered, ", "), strings.Join(ifs, ", "))
			if len(conflicts) > 0 {
				p.reason = heraldv1.AnnouncedReasonPartly
				p.message += "; not " + strings.Join(conflicts, "; ")
			}
		case len(conflicts) > 0:
			p.reason = heraldv1.AnnouncedReasonAddressConflict
			p.message = fmt.Sprintf("node %s was elected but does not announce: %s (layer 2)", in.Self, strings.Join(conflicts, "; "))
		default:
			why := in.Local.Refused[g.Key]
			if why == "" {
				why = "answering for it failed (see the speaker's log)"
			}
			p.reason = heraldv1.AnnouncedReasonInterfaceUnavailable
			p.message = fmt.Sprintf("node %s cannot announce %s: %s (layer 2)", in.Self, ipaddr.Join(s.IPs), why)
		}
		return p
	case owner != "":
		// Reported by the owner; a verdict here only when Decide is asked
		// about a Service it does not report (tests).
		p.announced = true
		p.message = fmt.Sprintf("node %s announces %s (layer 2)", owner, ipaddr.Join(s.IPs))
		return p
	}
	var live, dead []string
	for _, n := range g.Nodes {
		if alive[n] {
			live = append(live, n)
		} else {
			dead = append(dead, n)
		}
	}
	if len(live) == 0 {
		p.reason = heraldv1.AnnouncedReasonNoSpeaker
		p.message = fmt.Sprintf("layer 2: no speaker is alive on the eligible nodes %s", strings.Join(dead, ", "))
		return p
	}
	var whys []string
	for _, n := range g.Nodes {
		if !slices.Contains(in.Refuses[g.Key], n) {
			continue
		}
		if n == in.Self && in.Local.Refused[g.Key] != "" {
			whys = append(whys, n+" ("+in.Local.Refused[g.Key]+")")
		} else {
			whys = append(whys, n)
		}
	}
	p.reason = heraldv1.AnnouncedReasonInterfaceUnavailable
	p.message = fmt.Sprintf("layer 2: every eligible node with a live speaker refuses %s: %s cannot announce it (see their CannotAnnounce Events)", ipaddr.Join(s.IPs), strings.Join(whys, ", "))
	if len(whys) == 0 {
		// The election gave it to nobody for a moment (a node settling).
		p.reason = heraldv1.AnnouncedReasonNoSpeaker
		p.message = fmt.Sprintf("layer 2: no speaker on %s has taken %s yet", strings.Join(live, ", "), ipaddr.Join(s.IPs))
	}
	return p
}

// bgpRoutes works out, for each of svcs, which live nodes announce it over BGP
// to which peers (nil when no BGPAnnouncement exists).
func bgpRoutes(in Input, svcs []plan.Service) map[string]map[string][]string {
	if len(in.BGP.Anns) == 0 {
		return nil
	}
	out := map[string]map[string][]string{}
	for _, n := range in.Alive {
		bp := plan.ComputeBGP(n, svcs, in.Nodes, in.Pools, in.BGP.Peers, in.BGP.Anns)
		for svc, peers := range bp.Announced {
			if out[svc] == nil {
				out[svc] = map[string][]string{}
			}
			out[svc][n] = peers
		}
	}
	return out
}

// bgpPart is the BGP part of a Service's verdict, given the live nodes that
// announce it and to which peers.
func bgpPart(in Input, s plan.Service, alive map[string]bool, routes map[string][]string) part {
	covering := plan.CoveringBGP(s, in.Pools, in.BGP.Anns)
	if len(covering) == 0 {
		return part{}
	}
	p := part{covered: true}
	if len(routes) == 0 {
		// No live node announces it: would a node whose speaker is gone?
		var dead []string
		for _, n := range in.Nodes {
			if alive[n.Name] {
				continue
			}
			if len(plan.ComputeBGP(n.Name, []plan.Service{s}, in.Nodes, in.Pools, in.BGP.Peers, in.BGP.Anns).Announced[s.Key]) > 0 {
				dead = append(dead, n.Name)
			}
		}
		if len(dead) > 0 {
			p.reason = heraldv1.AnnouncedReasonNoSpeaker
			p.message = fmt.Sprintf("BGP: no speaker is alive on the eligible nodes %s", strings.Join(dead, ", "))
			return p
		}
		p.reason, p.message = noNode(s, in.Nodes, "BGPAnnouncement", bgpSelectors(covering))
		p.message = "BGP: " + p.message
		return p
	}
	nodes := make([]string, 0, len(routes))
	for n := range routes {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	var up, down []string
	for _, n := range nodes {
		var to []string
		for _, peer := range routes[n] {
			se := in.BGP.Sessions[n][peer]
			if se.Established {
				to = append(to, peer)
				continue
			}
			state := se.State
			if state == "" {
				state = "not reported"
			}
			d := fmt.Sprintf("%s to %s: %s", n, peer, state)
			if se.LastError != "" {
				d += " (" + se.LastError + ")"
			}
			down = append(down, d)
		}
		if len(to) > 0 {
			up = append(up, fmt.Sprintf("%s (to %s)", n, strings.Join(to, ", ")))
		}
	}
	if len(up) == 0 {
		p.reason = heraldv1.AnnouncedReasonBGPSessionsDown
		p.message = fmt.Sprintf("BGP: no session that would carry %s is Established: %s", ipaddr.Join(s.IPs), strings.Join(down, "; "))
		return p
	}
	p.announced = true
	p.message = fmt.Sprintf("nodes %s announce %s over BGP", strings.Join(up, ", "), ipaddr.Join(s.IPs))
	if len(up) == 1 {
		p.message = fmt.Sprintf("node %s announces %s over BGP", up[0], ipaddr.Join(s.IPs))
	}
	if len(down) > 0 {
		p.message += "; sessions down: " + strings.Join(down, "; ")
	}
	return p
}

// selectorOf is an announcement's name and node selector.
type selectorOf struct {
	name string
	sel  plan.Selector
}

func l2Selectors(anns []plan.Announcement) []selectorOf {
	out := make([]selectorOf, len(anns))
	for i, a := range anns {
		out[i] = selectorOf{a.Name, a.NodeSelector}
	}
	return out
}

func bgpSelectors(anns []plan.BGPAnnouncement) []selectorOf {
	out := make([]selectorOf, len(anns))
	for i, a := range anns {
		out[i] = selectorOf{a.Name, a.NodeSelector}
	}
	return out
}

// noNode says why no node may announce s under announcements of kind: each
// node's first obstacle, nodes with the same one together.
func noNode(s plan.Service, nodes []plan.Node, kind string, anns []selectorOf) (reason, message string) {
	if s.LocalTraffic && len(s.EndpointNodes) == 0 {
		return heraldv1.AnnouncedReasonNoReadyEndpoint,
			"externalTrafficPolicy is Local and no node has a ready endpoint of this Service: it is announced from the nodes that get one"
	}
	var names []string
	for _, a := range anns {
		names = append(names, a.name)
	}
	byWhy := map[string][]string{}
	var order []string
	endpointBlocked := false
	for _, n := range nodes {
		var why string
		selected := false
		for _, a := range anns {
			if a.sel == nil || a.sel(n.Labels) {
				selected = true
			}
		}
		switch {
		case !n.Ready:
			why = "not Ready"
		case hasKey(n.Labels, plan.ExcludeLabel):
			why = "labelled " + plan.ExcludeLabel
		case !selected:
			why = fmt.Sprintf("not selected by the nodeSelector of %s %s", kind, strings.Join(names, ", "))
		case s.LocalTraffic && !s.EndpointNodes[n.Name]:
			why = "no ready endpoint of this Service (externalTrafficPolicy Local)"
			endpointBlocked = true
		default:
			why = "no session to a BGPPeer of the Service's family"
		}
		if _, ok := byWhy[why]; !ok {
			order = append(order, why)
		}
		byWhy[why] = append(byWhy[why], n.Name)
	}
	if len(nodes) == 0 {
		return heraldv1.AnnouncedReasonNoEligibleNode, "the cluster has no nodes"
	}
	parts := make([]string, 0, len(order))
	for _, why := range order {
		parts = append(parts, strings.Join(byWhy[why], ", ")+": "+why)
	}
	reason = heraldv1.AnnouncedReasonNoEligibleNode
	msg := "no node may announce it: " + strings.Join(parts, "; ")
	if endpointBlocked {
		var with []string
		for n := range s.EndpointNodes {
			with = append(with, n)
		}
		sort.Strings(with)
		msg = fmt.Sprintf("the nodes with ready endpoints (%s) may not announce it: %s", strings.Join(with, ", "), strings.Join(parts, "; "))
	}
	return reason, msg
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }
