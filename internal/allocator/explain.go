package allocator

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Verdict is what one pool is to one Service's request.
type Verdict int

const (
	// VerdictTaken: the Service's addresses come from this pool, or would if
	// Assign were called now.
	VerdictTaken Verdict = iota + 1
	// VerdictUsable: the pool could serve the Service, but another one is taken.
	VerdictUsable
	// VerdictRejected: the pool cannot serve the Service; Why says why.
	VerdictRejected
)

func (v Verdict) String() string {
	switch v {
	case VerdictTaken:
		return "taken"
	case VerdictUsable:
		return "usable"
	case VerdictRejected:
		return "rejected"
	}
	return "unknown"
}

// Why is the typed reason behind a pool's Verdict.
type Why int

const (
	// WhyHolds (taken): the pool holds the addresses the Service has.
	WhyHolds Why = iota + 1
	// WhyNamed (taken): the Service names the pool (herald.io/pool).
	WhyNamed
	// WhyRequested (taken): the pool holds the addresses the Service requests.
	WhyRequested
	// WhyFirst (taken): the first pool, in priority order, the Service may use.
	WhyFirst
	// WhyLater (usable): another pool comes first or holds the addresses.
	WhyLater
	// WhyOtherPoolNamed: the Service names another pool (herald.io/pool).
	WhyOtherPoolNamed
	// WhyNamespace: allocation.namespaces leaves the Service's namespace out.
	WhyNamespace
	// WhyNamespaceSelector: allocation.namespaceSelector does not match the
	// Service's namespace.
	WhyNamespaceSelector
	// WhyServiceSelector: allocation.serviceSelector does not match the Service.
	WhyServiceSelector
	// WhyNoAutoAssign: autoAssign is false and the Service neither names the
	// pool nor requests an address.
	WhyNoAutoAssign
	// WhyRequestedIPNotInPool: the Service requests addresses the pool lacks.
	WhyRequestedIPNotInPool
	// WhyFamilyMissing: the pool has no address of a family the Service needs.
	WhyFamilyMissing
	// WhyExhausted: the pool has no free address of a family the Service needs.
	WhyExhausted
	// WhyAddressRefused: the address this pool would give (requested, or
	// shared under the sharing key) cannot be had: held by another Service,
	// a sharing conflict, avoidBuggyIPs, or a quarantine; Reason says which.
	WhyAddressRefused
	// WhyRequestRefused: the request is refused before any pool is looked at
	// (see Explanation.Refusal).
	WhyRequestRefused
)

var whyNames = map[Why]string{
	WhyHolds:                "HoldsAddresses",
	WhyNamed:                "NamedByService",
	WhyRequested:            "HoldsRequestedAddresses",
	WhyFirst:                "FirstByPriority",
	WhyLater:                "AnotherPoolFirst",
	WhyOtherPoolNamed:       "OtherPoolNamed",
	WhyNamespace:            "Namespace",
	WhyNamespaceSelector:    "NamespaceSelector",
	WhyServiceSelector:      "ServiceSelector",
	WhyNoAutoAssign:         "AutoAssignOff",
	WhyRequestedIPNotInPool: "RequestedIPNotInPool",
	WhyFamilyMissing:        "FamilyMissing",
	WhyExhausted:            "Exhausted",
	WhyAddressRefused:       "AddressRefused",
	WhyRequestRefused:       "RequestRefused",
}

func (w Why) String() string {
	if s, ok := whyNames[w]; ok {
		return s
	}
	return "Unknown"
}

// PoolExplanation is one pool's verdict on a request.
type PoolExplanation struct {
	Pool    string
	Verdict Verdict
	Why     Why
	// Reason is the allocator's refusal reason when Why is WhyAddressRefused,
	// WhyRequestRefused or WhyExhausted; 0 otherwise.
	Reason Reason
	// Message says the same in words, for people.
	Message string
}

// Explanation says, pool by pool, what Assign makes of a request.
type Explanation struct {
	// Refusal is set when the request is refused before any pool is looked at:
	// it contradicts itself, requests a Node's address, or names a pool that
	// does not exist. Every pool is then rejected with WhyRequestRefused.
	Refusal *Error
	// Pools holds every pool, in the order automatic assignment tries them.
	Pools []PoolExplanation
}

// Taken returns the pool the Service's addresses come from (or would), or "".
func (e Explanation) Taken() (PoolExplanation, bool) {
	for _, p := range e.Pools {
		if p.Verdict == VerdictTaken {
			return p, true
		}
	}
	return PoolExplanation{}, false
}

// Explain says, for every pool, whether the request's Service takes it, could
// use it, or why it cannot. It changes nothing: it runs the checks Assign runs
// (wanted, candidates, allows, pickIn, exhausted's family rules) one pool at a
// time, so a pool rejected for its selector is also shown when another pool is
// full. Restore the Services holding addresses first, as the controller does
// at start, so that what is in use is known.
//
// For a Service that holds addresses, the pool that holds them is taken. For
// one that holds none, the taken pool is the one Assign would choose now: the
// first usable one, or for PreferDualStack the first with the most families.
func (a *Allocator) Explain(req Request) Explanation {
	var out Explanation
	cur := a.svcs[req.Key]
	want, requested, err := wanted(req)
	if err == nil {
		if nerr := a.nodeAddressRequested(req, cur); nerr != nil {
			err = nerr
		} else if _, cerr := a.candidates(req, requested); ReasonOf(cerr) == ReasonPoolNotFound {
			err = cerr
		}
	}
	if err != nil {
		if !errors.As(err, &out.Refusal) {
			out.Refusal = &Error{ReasonInvalidRequest, err.Error()}
		}
		for _, p := range a.order {
			out.Pools = append(out.Pools, PoolExplanation{Pool: p.Name, Verdict: VerdictRejected, Why: WhyRequestRefused, Reason: out.Refusal.Reason, Message: out.Refusal.Message})
		}
		return out
	}
	held := a.assignment(cur).Pool
	// got counts, per usable pool, the addresses it would give: the choice
	// among usable pools is made once all are known.
	got := map[int]int{}
	for i, p := range a.order {
		e := PoolExplanation{Pool: p.Name}
		if p.Name == held {
			e.Verdict, e.Why = VerdictTaken, WhyHolds
			e.Message = fmt.Sprintf("holds the Service's %s", joinAddrs(cur.ips))
		} else if n, rej := a.judge(p, req, want, requested, cur); rej != nil {
			e.Verdict, e.Why, e.Reason, e.Message = VerdictRejected, rej.why, rej.reason, rej.msg
		} else {
			e.Verdict, e.Why = VerdictUsable, WhyLater
			got[i] = n
		}
		out.Pools = append(out.Pools, e)
	}
	if held != "" {
		for i := range got {
			out.Pools[i].Message = fmt.Sprintf("could serve the Service, but IPPool %s holds its addresses", held)
		}
		return out
	}
	best := -1
	for i, p := range out.Pools {
		if p.Verdict == VerdictUsable && (best < 0 || got[i] > got[best]) {
			best = i
		}
	}
	for i := range got {
		out.Pools[i].Message = fmt.Sprintf("could serve the Service, but IPPool %s comes first", out.Pools[best].Pool)
	}
	if best >= 0 {
		t := &out.Pools[best]
		t.Verdict = VerdictTaken
		switch {
		case req.Pool != "":
			t.Why, t.Message = WhyNamed, "named by the Service's herald.io/pool annotation"
		case len(requested) > 0:
			t.Why, t.Message = WhyRequested, fmt.Sprintf("holds the requested %s", joinAddrs(req.IPs))
		default:
			t.Why, t.Message = WhyFirst, "the first pool, by priority then name, that the Service may use and that has room"
		}
	}
	return out
}

// rejection is why judge turns a pool down.
type rejection struct {
	why    Why
	reason Reason
	msg    string
}

// judge returns how many of the wanted addresses pool p would give the request,
// or why it gives none the request accepts.
func (a *Allocator) judge(p *pool, req Request, want []Family, requested map[Family]netip.Addr, cur *holder) (int, *rejection) {
	if req.Pool != "" && req.Pool != p.Name {
		return 0, &rejection{why: WhyOtherPoolNamed, msg: fmt.Sprintf("the Service names IPPool %s (herald.io/pool)", req.Pool)}
	}
	if why := p.allows(req); why != "" {
		return 0, &rejection{why: limitWhy(p, req), reason: ReasonPoolNotAllowed, msg: why}
	}
	if len(requested) > 0 && !containsAll(p, req.IPs) {
		return 0, &rejection{why: WhyRequestedIPNotInPool, reason: ReasonRequestedIPNotInPool, msg: fmt.Sprintf("the requested %s %s not in this pool", joinAddrs(req.IPs), isAre(len(req.IPs)))}
	}
	if req.Pool == "" && len(requested) == 0 && !p.AutoAssign {
		return 0, &rejection{why: WhyNoAutoAssign, msg: "autoAssign is false: only Services that name this pool (herald.io/pool) or request one of its addresses get its addresses"}
	}
	var missing []string
	for _, f := range want {
		if p.free[f] == nil {
			missing = append(missing, f.String())
		}
	}
	if len(missing) > 0 && (req.Policy != PreferDualStack || len(missing) == len(want)) {
		return 0, &rejection{why: WhyFamilyMissing, reason: ReasonFamilyUnavailable, msg: fmt.Sprintf("has no %s addresses, which the Service needs (spec.ipFamilies, spec.ipFamilyPolicy)", strings.Join(missing, " or "))}
	}
	ips, perr := a.pickIn(p, req, want, requested, cur)
	if perr != nil {
		return 0, &rejection{why: WhyAddressRefused, reason: perr.Reason, msg: perr.Message}
	}
	if len(ips) == 0 || (req.Policy != PreferDualStack && len(ips) != len(want)) {
		var full []string
		for _, f := range want {
			if !slices.ContainsFunc(ips, func(ip netip.Addr) bool { return FamilyOf(ip) == f }) {
				full = append(full, f.String())
			}
		}
		msg := fmt.Sprintf("no free %s address", strings.Join(full, " or "))
		if a.quarantineBlocks([]*pool{p}, want) {
			msg += "; addresses other Services gave up become free once their status is updated"
		}
		return 0, &rejection{why: WhyExhausted, reason: ReasonPoolExhausted, msg: msg}
	}
	return len(ips), nil
}

// limitWhy says which of the pool's allocation limits, which allows found
// leaving the request out, does so: each is tried alone through allows, in the
// order allows checks them.
func limitWhy(p *pool, req Request) Why {
	alone := func(set func(q *pool)) bool {
		q := pool{Pool: Pool{Name: p.Name}}
		set(&q)
		return q.allows(req) != ""
	}
	switch {
	case alone(func(q *pool) { q.Namespaces = p.Namespaces }):
		return WhyNamespace
	case alone(func(q *pool) { q.NamespaceSelector = p.NamespaceSelector }):
		return WhyNamespaceSelector
	}
	return WhyServiceSelector
}
