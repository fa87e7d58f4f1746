package inspect

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/allocator"
	"github.com/heraldlb/herald/internal/crconv"
	"github.com/heraldlb/herald/internal/nodeaddr"
)

// maxEvents is how many of a Service's Events a report keeps: the latest ones,
// enough to see a failover (NotAnnouncing, then Announcing) and what preceded it.
const maxEvents = 10

// States of a Service in a ServiceReport.
const (
	StateAssigned = "Assigned"
	StatePending  = "Pending"
	// StateNotHandled: not a LoadBalancer, or of another loadBalancerClass.
	StateNotHandled = "NotHandled"
)

// ServiceReport is the output of kubectl herald status.
type ServiceReport struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// State is Assigned (the status shows addresses), Pending, or NotHandled.
	State string `json:"state"`
	// Addresses are status.loadBalancer.ingress.
	Addresses []string `json:"addresses"`
	// Pool is the herald.io/allocated-from-pool annotation.
	Pool string `json:"pool,omitempty"`
	// Allocated is the herald.io/IPAllocated condition; absent when the
	// controller never wrote it.
	Allocated *Condition `json:"allocated,omitempty"`
	// Why says, in words, why the Service's addresses come from Pool: what it
	// requested, or that priority chose it.
	Why string `json:"why,omitempty"`
	// Refusal is set when the request is refused before any pool is looked
	// at (an invalid annotation, a Node's address, a pool that does not exist).
	Refusal string `json:"refusal,omitempty"`
	// Pools is every IPPool's verdict on the Service, in the order automatic
	// assignment tries them; unreadable pools come last.
	Pools []PoolVerdict `json:"pools"`
	// SharingKey is herald.io/sharing-key.
	SharingKey string `json:"sharingKey,omitempty"`
	// SharedWith lists the other Services whose status shows one of this
	// Service's addresses.
	SharedWith []Sharer `json:"sharedWith,omitempty"`
	// Announced is the herald.io/Announced condition the speakers write;
	// null when no speaker has reported yet.
	Announced *Condition `json:"announced"`
	// Announcements are those covering Pool.
	Announcements []Announcement `json:"announcements"`
	// Sessions are the BGP sessions of the nodes the Announced condition
	// names, else of every node, to the peers the covering BGPAnnouncements
	// name; sorted by peer then node.
	Sessions []Session `json:"bgpSessions"`
	// Events are the Service's latest Events, oldest first.
	Events []Event `json:"events"`
}

// PoolVerdict is one pool's verdict on the Service (see allocator.Explain).
type PoolVerdict struct {
	Pool string `json:"pool"`
	// Verdict is taken, usable or rejected.
	Verdict string `json:"verdict"`
	// Why is the typed reason (allocator.Why), e.g. ServiceSelector.
	Why     string `json:"why"`
	Message string `json:"message"`
}

// Sharer is another Service showing one of the inspected Service's addresses.
type Sharer struct {
	Service   string   `json:"service"`
	Addresses []string `json:"addresses"`
	Ports     []string `json:"ports"`
}

// Session is one node's BGP session to a peer (BGPPeer status.nodes[]).
type Session struct {
	Peer        string    `json:"peer"`
	PeerAddress string    `json:"peerAddress"`
	Node        string    `json:"node"`
	State       string    `json:"state"`
	Since       time.Time `json:"since"`
	LastError   string    `json:"lastError,omitempty"`
}

// Event is a core/v1 Event of the Service.
type Event struct {
	Type    string    `json:"type"`
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
	Count   int32     `json:"count"`
	Last    time.Time `json:"lastSeen"`
	Source  string    `json:"source,omitempty"`
}

// Status reports on the Service namespace/name, which must be in c.Services.
func Status(c Cluster, namespace, name string) (ServiceReport, error) {
	i := slices.IndexFunc(c.Services, func(s corev1.Service) bool { return s.Namespace == namespace && s.Name == name })
	if i < 0 {
		return ServiceReport{}, fmt.Errorf("service %s/%s not found", namespace, name)
	}
	svc := &c.Services[i]
	r := ServiceReport{
		Namespace:     namespace,
		Name:          name,
		Addresses:     []string{},
		Pool:          svc.Annotations[heraldv1.AnnotationAllocatedFromPool],
		Allocated:     conditionOf(svc.Status.Conditions, heraldv1.ConditionIPAllocated),
		Announced:     conditionOf(svc.Status.Conditions, heraldv1.ConditionAnnounced),
		SharingKey:    svc.Annotations[heraldv1.AnnotationSharingKey],
		Pools:         []PoolVerdict{},
		Announcements: []Announcement{},
		Sessions:      []Session{},
		Events:        events(c.Events, svc),
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP != "" {
			r.Addresses = append(r.Addresses, ing.IP)
		}
	}
	switch {
	case svc.Spec.Type != corev1.ServiceTypeLoadBalancer:
		r.State = StateNotHandled
		r.Why = fmt.Sprintf("spec.type is %s, not LoadBalancer", svc.Spec.Type)
		return r, nil
	case svc.Spec.LoadBalancerClass != nil && *svc.Spec.LoadBalancerClass != heraldv1.LoadBalancerClass:
		r.State = StateNotHandled
		r.Why = fmt.Sprintf("spec.loadBalancerClass is %s, which another implementation handles (herald's is %s)", *svc.Spec.LoadBalancerClass, heraldv1.LoadBalancerClass)
		return r, nil
	case len(r.Addresses) > 0:
		r.State = StateAssigned
	default:
		r.State = StatePending
	}
	ex, req := explain(c, svc)
	if ex.Refusal != nil {
		r.Refusal = ex.Refusal.Message
	}
	for _, p := range ex.Pools {
		r.Pools = append(r.Pools, PoolVerdict{Pool: p.Pool, Verdict: p.Verdict.String(), Why: p.Why.String(), Message: p.Message})
	}
	r.Pools = append(r.Pools, unreadablePools(c)...)
	if taken, ok := ex.Taken(); ok {
		if r.Pool == "" {
			r.Pool = taken.Pool
		}
		r.Why = why(svc, req, taken, c)
	}
	r.SharedWith = sharers(c, svc)
	if r.Pool != "" {
		r.Announcements = covering(c, r.Pool, labelsOrEmpty(svc.Labels))
	}
	r.Sessions = sessions(c, r.Announcements, r.Announced)
	return r, nil
}

func labelsOrEmpty(l map[string]string) map[string]string {
	if l == nil {
		return map[string]string{}
	}
	return l
}

// explain rebuilds the allocator as the controller does at start (Node
// addresses, pools, every Service's shown addresses restored oldest first, the
// ones that cannot be restored quarantined) and explains svc's request.
func explain(c Cluster, svc *corev1.Service) (allocator.Explanation, allocator.Request) {
	a := allocator.New(allocator.RetainOrphans)
	nodes := map[netip.Addr][]string{}
	for i := range c.Nodes {
		for _, ip := range nodeaddr.Own(&c.Nodes[i]) {
			nodes[ip] = append(nodes[ip], c.Nodes[i].Name)
		}
	}
	a.SetNodeAddresses(nodes)
	for i := range c.Pools {
		if p, err := crconv.Pool(&c.Pools[i]); err == nil {
			a.SetPool(p)
		}
	}
	svcs := make([]*corev1.Service, 0, len(c.Services))
	for i := range c.Services {
		svcs = append(svcs, &c.Services[i])
	}
	slices.SortFunc(svcs, func(x, y *corev1.Service) int {
		if d := x.CreationTimestamp.Compare(y.CreationTimestamp.Time); d != 0 {
			return d
		}
		return strings.Compare(x.Namespace+"/"+x.Name, y.Namespace+"/"+y.Name)
	})
	for _, s := range svcs {
		ips := crconv.StatusIPs(s)
		if len(ips) == 0 || s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		req, _ := crconv.Request(s, nil)
		if a.Restore(req, ips) != nil {
			a.Quarantine(req.Key, ips)
		}
	}
	var nsLabels map[string]string
	for _, ns := range c.Namespaces {
		if ns.Name == svc.Namespace {
			nsLabels = ns.Labels
		}
	}
	req, err := crconv.Request(svc, nsLabels)
	if err != nil {
		ex := allocator.Explanation{Refusal: &allocator.Error{Reason: allocator.ReasonOf(err), Message: err.Error()}}
		for _, p := range a.Explain(allocator.Request{Key: req.Key}).Pools {
			ex.Pools = append(ex.Pools, allocator.PoolExplanation{Pool: p.Pool, Verdict: allocator.VerdictRejected, Why: allocator.WhyRequestRefused, Reason: ex.Refusal.Reason, Message: ex.Refusal.Message})
		}
		return ex, req
	}
	return a.Explain(req), req
}

// unreadablePools are pools whose spec the allocator cannot read: rejected.
func unreadablePools(c Cluster) []PoolVerdict {
	var out []PoolVerdict
	for i := range c.Pools {
		if _, err := crconv.Pool(&c.Pools[i]); err != nil {
			out = append(out, PoolVerdict{Pool: c.Pools[i].Name, Verdict: allocator.VerdictRejected.String(), Why: "Unreadable", Message: "its spec cannot be used: " + err.Error()})
		}
	}
	return out
}

// why says in words why the Service's addresses come from the taken pool.
func why(svc *corev1.Service, req allocator.Request, taken allocator.PoolExplanation, c Cluster) string {
	switch {
	case req.Pool != "":
		return fmt.Sprintf("requested: the annotation %s names IPPool %s", heraldv1.AnnotationPool, req.Pool)
	case svc.Annotations[heraldv1.AnnotationIPs] != "":
		return fmt.Sprintf("requested: the annotation %s asks for %s, which IPPool %s holds", heraldv1.AnnotationIPs, svc.Annotations[heraldv1.AnnotationIPs], taken.Pool)
	case svc.Spec.LoadBalancerIP != "":
		return fmt.Sprintf("requested: spec.loadBalancerIP asks for %s, which IPPool %s holds", svc.Spec.LoadBalancerIP, taken.Pool)
	}
	prio := "no priority"
	for _, p := range c.Pools {
		if p.Name == taken.Pool && p.Spec.Allocation != nil && p.Spec.Allocation.Priority != nil {
			prio = fmt.Sprintf("priority %d", *p.Spec.Allocation.Priority)
		}
	}
	return fmt.Sprintf("chosen by priority: IPPool %s (%s) is the first pool this Service may use that had room", taken.Pool, prio)
}

// sharers lists the other Services whose status shows one of svc's addresses.
func sharers(c Cluster, svc *corev1.Service) []Sharer {
	mine := crconv.StatusIPs(svc)
	var out []Sharer
	for i := range c.Services {
		o := &c.Services[i]
		if o.Namespace == svc.Namespace && o.Name == svc.Name {
			continue
		}
		var common []string
		for _, ip := range crconv.StatusIPs(o) {
			if slices.Contains(mine, ip) {
				common = append(common, ip.String())
			}
		}
		if len(common) == 0 {
			continue
		}
		s := Sharer{Service: o.Namespace + "/" + o.Name, Addresses: common, Ports: []string{}}
		for _, p := range o.Spec.Ports {
			proto := p.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			s.Ports = append(s.Ports, fmt.Sprintf("%s/%d", proto, p.Port))
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Sharer) int { return strings.Compare(a.Service, b.Service) })
	return out
}

// sessions returns the BGP sessions behind the Service's announcement: to the
// peers its selecting BGPAnnouncements name (every peer when one names none),
// of the nodes the Announced condition's message names, else of every node.
func sessions(c Cluster, anns []Announcement, announced *Condition) []Session {
	peers := map[string]bool{}
	all := false
	for _, a := range anns {
		if a.Kind != "BGPAnnouncement" || !a.Selects {
			continue
		}
		if len(a.Peers) == 0 {
			all = true
		}
		for _, p := range a.Peers {
			peers[p] = true
		}
	}
	var out []Session
	for _, p := range c.Peers {
		if !all && !peers[p.Name] {
			continue
		}
		for _, n := range p.Status.Nodes {
			out = append(out, Session{Peer: p.Name, PeerAddress: p.Spec.PeerAddress, Node: n.Node, State: string(n.State), Since: n.Since.Time, LastError: n.LastError})
		}
	}
	if announced != nil {
		named := slices.DeleteFunc(slices.Clone(out), func(s Session) bool { return !mentions(announced.Message, s.Node) })
		if len(named) > 0 {
			out = named
		}
	}
	slices.SortFunc(out, func(a, b Session) int {
		if d := strings.Compare(a.Peer, b.Peer); d != 0 {
			return d
		}
		return strings.Compare(a.Node, b.Node)
	})
	if out == nil {
		out = []Session{}
	}
	return out
}

// mentions reports whether msg names node as a whole word.
func mentions(msg, node string) bool {
	for _, w := range strings.FieldsFunc(msg, func(r rune) bool {
		return r == ' ' || r == ',' || r == ';' || r == '(' || r == ')' || r == ':' || r == '"'
	}) {
		if strings.TrimSuffix(w, ".") == node {
			return true
		}
	}
	return false
}

// events returns svc's latest Events, oldest first.
func events(all []corev1.Event, svc *corev1.Service) []Event {
	out := []Event{}
	for _, e := range all {
		o := e.InvolvedObject
		if o.Kind != "Service" || o.Namespace != svc.Namespace || o.Name != svc.Name || (o.UID != "" && svc.UID != "" && o.UID != svc.UID) {
			continue
		}
		ev := Event{Type: e.Type, Reason: e.Reason, Message: e.Message, Count: e.Count, Last: lastSeen(e), Source: e.Source.Component}
		if ev.Source == "" {
			ev.Source = e.ReportingController
		}
		if ev.Count == 0 {
			ev.Count = 1
		}
		out = append(out, ev)
	}
	slices.SortStableFunc(out, func(a, b Event) int {
		if c := a.Last.Truncate(time.Second).Compare(b.Last.Truncate(time.Second)); c != 0 {
			return c
		}
		if c := stage(a) - stage(b); c != 0 {
			return c
		}
		return a.Last.Compare(b.Last)
	})
	if len(out) > maxEvents {
		out = out[len(out)-maxEvents:]
	}
	return out
}

// stage orders the Events of one second by cause and effect. Their times
// have a resolution of one second (core/v1 Events), and within it the list's
// order is the order in which the controller and the speakers called their
// recorders: a speaker that sees the controller's status write can announce,
// and say so, before the controller has recorded its IPAllocated, and the
// speaker writing the condition can say Announced before the announcing node
// has said Announcing (CI saw both). The allocation comes first, then what
// nodes did, then the herald.io/Announced condition that sums them up.
func stage(e Event) int {
	switch {
	case e.Source == controllerComponent:
		return 0
	case e.Reason == eventAnnounced || e.Reason == eventNotAnnounced:
		return 2
	}
	return 1
}

// The Event source and reasons stage knows.
const (
	controllerComponent = "herald-controller"
	eventAnnounced      = "Announced"
	eventNotAnnounced   = "NotAnnounced"
)

// lastSeen is when an Event last happened, whichever API wrote it.
func lastSeen(e corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	}
	return e.CreationTimestamp.Time
}
