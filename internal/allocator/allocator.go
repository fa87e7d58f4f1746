package allocator

import (
	"cmp"
	"fmt"
	"maps"
	"math/big"
	"net/netip"
	"slices"
	"strings"
)

// Allocator assigns addresses from pools to Services. It is not safe for
// concurrent use; the controller serialises calls.
type Allocator struct {
	orphans OrphanPolicy
	pools   map[string]*pool
	// order is pools sorted for automatic assignment (see Pool.Priority).
	order []*pool
	// ips maps every assigned address to the Services holding it (more than one
	// only when they share it).
	ips map[netip.Addr]map[string]*holder
	// svcs maps a Service key to what it holds.
	svcs map[string]*holder
	// shared maps a sharing key to the addresses held under it, so a Service with
	// that key finds a partner without scanning every assignment.
	shared map[string]map[netip.Addr]struct{}
	// releases counts changes that may let a refused Service succeed.
	releases uint64
	// quarantined maps an address that Services gave up, but whose statuses may
	// still show it, to those Services (see Shown); quarantinedBy is its index
	// by Service.
	quarantined   map[netip.Addr][]string
	quarantinedBy map[string][]netip.Addr
	// nodes maps every Node address to the nodes that have it (sorted): such an
	// address is never given to a Service that does not already hold it.
	nodes map[netip.Addr][]string
}

// Releases counts the changes that may let a refused Service succeed now: an
// address freed (which, for an address a Service gave up, is when Shown ends its
// quarantine), or a Service leaving an address it shared or changing what it
// shares it with (ports, traffic policy, sharing key). A caller compares it before
// and after a call to know whether to retry the Services it holds as refused; a new
// assignment alone never moves it, so a burst of allocations causes no retries.
func (a *Allocator) Releases() uint64 { return a.releases }

// holder is what one Service holds, with what sharing needs to know of it.
type holder struct {
	key        string
	ips        []netip.Addr
	sharingKey string
	ports      []Port
	local      bool
	selector   map[string]string
}

func (h *holder) ipOf(f Family) netip.Addr {
	if h == nil {
		return netip.Addr{}
	}
	for _, ip := range h.ips {
		if FamilyOf(ip) == f {
			return ip
		}
	}
	return netip.Addr{}
}

type pool struct {
	Pool
	free     map[Family]*freeList
	capacity map[Family]*big.Int
	used     map[Family]uint64
}

// New returns an empty Allocator.
func New(orphans OrphanPolicy) *Allocator {
	return &Allocator{
		orphans: orphans,
		pools:   map[string]*pool{},
		ips:     map[netip.Addr]map[string]*holder{},
		svcs:    map[string]*holder{},
		shared:  map[string]map[netip.Addr]struct{}{},
		nodes:   map[netip.Addr][]string{},

		quarantined:   map[netip.Addr][]string{},
		quarantinedBy: map[string][]netip.Addr{},
	}
}

// SetPool adds a pool or replaces the one of the same name. Addresses already
// assigned stay assigned; call Assign again for Services that may be affected.
func (a *Allocator) SetPool(p Pool) {
	np := &pool{Pool: p, free: map[Family]*freeList{}, capacity: map[Family]*big.Int{}, used: map[Family]uint64{}}
	// Quarantined addresses are as good as assigned: a status still shows them.
	assigned := make([]netip.Addr, 0, len(a.ips)+len(a.quarantined))
	for ip := range a.ips {
		assigned = append(assigned, ip)
	}
	for ip := range a.quarantined {
		if _, held := a.ips[ip]; !held {
			assigned = append(assigned, ip)
		}
	}
	slices.SortFunc(assigned, netip.Addr.Compare)
	if p.Addresses != nil {
		for _, r := range p.Addresses.Ranges() {
			f := FamilyOf(r.From())
			l := np.free[f]
			if l == nil {
				l = newFreeList(f)
				np.free[f] = l
				np.capacity[f] = new(big.Int)
			}
			np.capacity[f].Add(np.capacity[f], rangeSize(r))
			if p.AvoidBuggyIPs && f == IPv4 {
				np.capacity[f].Sub(np.capacity[f], new(big.Int).SetUint64(buggyCount(r)))
			}
			// Cut the assigned addresses out of the range: they are sorted, so
			// the free runs fall between consecutive ones.
			next, end, done := toU128(r.From()), toU128(r.To()), false
			i, _ := slices.BinarySearchFunc(assigned, r.From(), netip.Addr.Compare)
			for ; i < len(assigned) && !r.To().Less(assigned[i]); i++ {
				x := toU128(assigned[i])
				if next.less(x) {
					l.add(next, x.dec())
				}
				np.used[f]++
				if x == end {
					done = true
					break
				}
				next = x.inc()
			}
			if !done {
				l.add(next, end)
			}
		}
	}
	a.pools[p.Name] = np
	a.sortPools()
}

// DeletePool removes a pool. Its assigned addresses stay with their Services until
// Assign is called for them, which applies the OrphanPolicy.
func (a *Allocator) DeletePool(name string) {
	if _, ok := a.pools[name]; !ok {
		return
	}
	delete(a.pools, name)
	a.sortPools()
}

func (a *Allocator) sortPools() {
	a.order = a.order[:0]
	for _, p := range a.pools {
		a.order = append(a.order, p)
	}
	slices.SortFunc(a.order, func(x, y *pool) int {
		switch {
		case x.HasPriority && !y.HasPriority:
			return -1
		case !x.HasPriority && y.HasPriority:
			return 1
		case x.HasPriority && x.Priority != y.Priority:
			return cmp.Compare(x.Priority, y.Priority)
		}
		return strings.Compare(x.Name, y.Name)
	})
}

// Get returns what a Service holds.
func (a *Allocator) Get(key string) (Assignment, bool) {
	h, ok := a.svcs[key]
	if !ok {
		return Assignment{}, false
	}
	return a.assignment(h), true
}

func (a *Allocator) assignment(h *holder) Assignment {
	if h == nil {
		return Assignment{}
	}
	out := Assignment{IPs: slices.Clone(h.ips)}
	for _, p := range a.order {
		if containsAll(p, h.ips) {
			out.Pool = p.Name
			break
		}
	}
	return out
}

func containsAll(p *pool, ips []netip.Addr) bool {
	for _, ip := range ips {
		if p.Addresses == nil || !p.Addresses.Contains(ip) {
			return false
		}
	}
	return len(ips) > 0
}

// inAnyPool reports whether some pool holds ip.
func (a *Allocator) inAnyPool(ip netip.Addr) bool {
	for _, p := range a.order {
		if p.Addresses != nil && p.Addresses.Contains(ip) {
			return true
		}
	}
	return false
}

// Assign gives a Service addresses, or confirms the ones it holds. It is
// idempotent: a Service whose request still fits what it holds keeps it. When the
// request can no longer be met (a requested address is taken, a pool is full) the
// Service keeps what it held, and the returned Assignment says so alongside the
// error, so a refusal never cuts traffic that was flowing.
func (a *Allocator) Assign(req Request) (Assignment, error) {
	cur := a.svcs[req.Key]
	want, requested, err := wanted(req)
	if err != nil {
		return a.assignment(cur), err
	}
	if err := a.nodeAddressRequested(req, cur); err != nil {
		return a.assignment(cur), err
	}
	if cur != nil && a.orphans == RetainOrphans && a.keepsOrphan(cur, req) {
		a.refresh(cur, req)
		return a.assignment(cur), nil
	}
	cands, err := a.candidates(req, requested)
	if err != nil {
		return a.assignment(cur), err
	}
	// The pool that holds the current addresses goes first, so an address stays put
	// when a pool of higher priority gains room.
	if cur != nil {
		for i, p := range cands {
			if a.allUsableIn(p, cur.ips, req) {
				cands = append([]*pool{p}, append(cands[:i:i], cands[i+1:]...)...)
				break
			}
		}
	}
	var best []netip.Addr
	var firstErr *Error
	for i, p := range cands {
		ips, perr := a.pickIn(p, req, want, requested, cur)
		if perr == nil && len(ips) == len(want) {
			best = ips
			break
		}
		// A PreferDualStack Service that still has everything it held, from the
		// pool that holds it, stays: completing the pair from another pool would
		// change the address its clients use.
		if i == 0 && perr == nil && cur != nil && req.Policy == PreferDualStack && a.allUsableIn(p, cur.ips, req) && len(ips) >= len(cur.ips) {
			best = ips
			break
		}
		if perr == nil && req.Policy == PreferDualStack && len(ips) > len(best) {
			best = ips
		}
		if perr != nil && firstErr == nil {
			firstErr = perr
		}
	}
	if len(best) == 0 || (req.Policy != PreferDualStack && len(best) != len(want)) {
		if firstErr == nil && cur != nil {
			// What the Service holds may have become unusable through its own
			// change (a port now clashing with a sharer's): say so, rather than
			// that the pools are full.
			for _, ip := range cur.ips {
				if err := a.shareable(ip, req); err != nil {
					firstErr = err
					break
				}
			}
		}
		if firstErr == nil || firstErr.Reason == ReasonPoolExhausted || firstErr.Reason == ReasonFamilyUnavailable {
			firstErr = exhausted(cands, want, req.Policy)
			if firstErr.Reason == ReasonPoolExhausted {
				// No count: the condition would be rewritten each time it moved.
				if a.quarantineBlocks(cands, want) {
					firstErr.Message += "; addresses other Services gave up become free once their status is updated"
				}
			}
		}
		return a.assignment(cur), firstErr
	}
	a.commit(req, best)
	return a.assignment(a.svcs[req.Key]), nil
}

// keepsOrphan reports whether cur holds an address that no pool holds any more and,
// under RetainOrphans, should keep it: the Service still asks for what it holds.
func (a *Allocator) keepsOrphan(cur *holder, req Request) bool {
	orphan := false
	for _, ip := range cur.ips {
		if !a.inAnyPool(ip) {
			orphan = true
		}
	}
	if !orphan {
		return false
	}
	for _, ip := range req.IPs {
		if !slices.Contains(cur.ips, ip) {
			return false
		}
	}
	for _, ip := range cur.ips {
		if a.shareable(ip, req) != nil {
			return false
		}
	}
	return true
}

// refresh records what may have changed in a Service that keeps its addresses.
func (a *Allocator) refresh(cur *holder, req Request) { a.commit(req, slices.Clone(cur.ips)) }

// wanted returns the families a Service should get addresses of, in order, and the
// address it requests for each family.
func wanted(req Request) ([]Family, map[Family]netip.Addr, error) {
	requested := map[Family]netip.Addr{}
	for _, ip := range req.IPs {
		f := FamilyOf(ip)
		if prev, dup := requested[f]; dup {
			return nil, nil, &Error{ReasonInvalidRequest, fmt.Sprintf("two %s addresses requested (%s and %s); request at most one per family", f, prev, ip)}
		}
		requested[f] = ip
	}
	fams := slices.Clone(req.Families)
	if len(fams) == 0 {
		if len(req.IPs) > 0 {
			for _, ip := range req.IPs {
				fams = append(fams, FamilyOf(ip))
			}
		} else {
			fams = []Family{IPv4}
		}
	}
	if req.Policy == SingleStack {
		fams = fams[:1]
	}
	if len(requested) == 0 {
		return fams, requested, nil
	}
	for f, ip := range requested {
		if !slices.Contains(fams, f) {
			return nil, nil, &Error{ReasonInvalidRequest, fmt.Sprintf("requested address %s is %s, but the Service's families are %v (see spec.ipFamilies and spec.ipFamilyPolicy)", ip, f, fams)}
		}
	}
	if req.Policy == RequireDualStack && len(requested) != len(fams) {
		return nil, nil, &Error{ReasonInvalidRequest, "ipFamilyPolicy RequireDualStack with requested addresses needs one address per family"}
	}
	// Requested addresses decide the families: a Service that names its address
	// gets that address and no other.
	out := fams[:0:0]
	for _, f := range fams {
		if _, ok := requested[f]; ok {
			out = append(out, f)
		}
	}
	return out, requested, nil
}

// allows returns why pool p's limits leave a Service out, or "" when they do not.
func (p *pool) allows(req Request) string {
	if len(p.Namespaces) > 0 && !slices.Contains(p.Namespaces, req.Namespace) {
		return fmt.Sprintf("pool %s is limited to namespaces %v", p.Name, p.Namespaces)
	}
	if p.NamespaceSelector != nil && !p.NamespaceSelector(req.NamespaceLabels) {
		return fmt.Sprintf("namespace %s does not match the namespaceSelector of pool %s", req.Namespace, p.Name)
	}
	if p.ServiceSelector != nil && !p.ServiceSelector(req.Labels) {
		return fmt.Sprintf("the Service's labels do not match the serviceSelector of pool %s", p.Name)
	}
	return ""
}

// candidates returns the pools a Service may get addresses from, in order.
func (a *Allocator) candidates(req Request, requested map[Family]netip.Addr) ([]*pool, error) {
	if req.Pool != "" {
		p, ok := a.pools[req.Pool]
		if !ok {
			return nil, &Error{ReasonPoolNotFound, fmt.Sprintf("IPPool %q named by the herald.io/pool annotation does not exist", req.Pool)}
		}
		if why := p.allows(req); why != "" {
			return nil, &Error{ReasonPoolNotAllowed, why}
		}
		return []*pool{p}, nil
	}
	if len(requested) > 0 {
		var holding []*pool
		var whyNot []string
		for _, p := range a.order {
			if !containsAll(p, req.IPs) {
				continue
			}
			holding = append(holding, p)
			if why := p.allows(req); why != "" {
				whyNot = append(whyNot, why)
				continue
			}
			return append([]*pool(nil), p), nil
		}
		if len(holding) == 0 {
			return nil, &Error{ReasonRequestedIPNotInPool, fmt.Sprintf("requested %s %s in no IPPool", joinAddrs(req.IPs), isAre(len(req.IPs)))}
		}
		return nil, &Error{ReasonPoolNotAllowed, strings.Join(whyNot, "; ")}
	}
	var out []*pool
	var whyNot []string
	auto := 0
	for _, p := range a.order {
		if !p.AutoAssign {
			continue
		}
		auto++
		if why := p.allows(req); why != "" {
			whyNot = append(whyNot, why)
			continue
		}
		out = append(out, p)
	}
	switch {
	case len(out) > 0:
		return out, nil
	case len(a.order) == 0:
		return nil, &Error{ReasonNoPool, "no IPPool exists; create one to give LoadBalancer Services addresses"}
	case auto == 0:
		return nil, &Error{ReasonNoPool, "no IPPool has autoAssign enabled; name a pool with the herald.io/pool annotation"}
	}
	return nil, &Error{ReasonNoPoolAllowed, strings.Join(whyNot, "; ")}
}

// pickIn picks addresses for the wanted families from one pool. It returns fewer
// addresses than families when a family has no free address there (which only
// PreferDualStack accepts), and an error when a requested address cannot be had.
func (a *Allocator) pickIn(p *pool, req Request, want []Family, requested map[Family]netip.Addr, cur *holder) ([]netip.Addr, *Error) {
	var out []netip.Addr
	for _, f := range want {
		if ip, ok := requested[f]; ok {
			if p.Addresses == nil || !p.Addresses.Contains(ip) {
				return nil, &Error{ReasonRequestedIPNotInPool, fmt.Sprintf("requested %s is not in IPPool %s", ip, p.Name)}
			}
			if p.AvoidBuggyIPs && f == IPv4 && buggy(toU128(ip)) {
				return nil, &Error{ReasonRequestedIPNotInPool, fmt.Sprintf("requested %s ends in .0 or .255, which IPPool %s avoids (avoidBuggyIPs)", ip, p.Name)}
			}
			if err := a.shareable(ip, req); err != nil {
				return nil, err
			}
			if err := a.quarantinedFor(ip, req.Key); err != nil {
				return nil, err
			}
			out = append(out, ip)
			continue
		}
		if ip := cur.ipOf(f); ip.IsValid() && a.usableIn(p, ip, req) {
			out = append(out, ip)
			continue
		}
		ip, ok, blocked := a.partner(p, f, req)
		if ok {
			out = append(out, ip)
			continue
		}
		if blocked != nil {
			return nil, blocked
		}
		l := p.free[f]
		if l == nil {
			continue
		}
		if x, ok := l.first(a.skipper(p, f)); ok {
			out = append(out, x.addr(f))
		}
	}
	return out, nil
}

// usableIn reports whether a Service may hold ip as an address of pool p. A Node's
// address is usable only by a Service that already holds it (see keepsNodeAddress).
func (a *Allocator) usableIn(p *pool, ip netip.Addr, req Request) bool {
	if p.Addresses == nil || !p.Addresses.Contains(ip) {
		return false
	}
	if p.AvoidBuggyIPs && ip.Is4() && buggy(toU128(ip)) {
		return false
	}
	if len(a.nodes[ip]) > 0 && !slices.Contains(a.svcs[req.Key].heldIPs(), ip) {
		return false
	}
	return a.shareable(ip, req) == nil
}

// allUsableIn reports whether a Service may hold all of ips as addresses of pool p.
func (a *Allocator) allUsableIn(p *pool, ips []netip.Addr, req Request) bool {
	for _, ip := range ips {
		if !a.usableIn(p, ip, req) {
			return false
		}
	}
	return len(ips) > 0
}

// partner returns the lowest address of family f in pool p that Services with the
// request's sharing key hold and that the request can share. When there is none,
// and some address was refused only because Local sharers would select different
// pods, it returns that refusal (the lowest such address's): a user who gives
// Local Services one sharing key wants one address, and quietly handing out a
// second one would hide that the pair cannot work as written.
func (a *Allocator) partner(p *pool, f Family, req Request) (netip.Addr, bool, *Error) {
	if req.SharingKey == "" {
		return netip.Addr{}, false, nil
	}
	var best, blockedAt netip.Addr
	var blocked *Error
	for ip := range a.shared[req.SharingKey] {
		if FamilyOf(ip) != f || (best.IsValid() && best.Less(ip)) {
			continue
		}
		if a.usableIn(p, ip, req) {
			best = ip
			continue
		}
		if p.Addresses == nil || !p.Addresses.Contains(ip) || (blockedAt.IsValid() && blockedAt.Less(ip)) {
			continue
		}
		if err := a.shareable(ip, req); err != nil && err.Reason == ReasonSharingLocalSelector {
			blocked, blockedAt = err, ip
		}
	}
	if best.IsValid() {
		return best, true, nil
	}
	return netip.Addr{}, false, blocked
}

// shareable returns why a Service may not hold ip alongside its current holders, or
// nil when it may.
func (a *Allocator) shareable(ip netip.Addr, req Request) *Error {
	holders := a.ips[ip]
	keys := make([]string, 0, len(holders))
	for k := range holders {
		if k != req.Key {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		h := holders[k]
		if req.SharingKey == "" || h.sharingKey != req.SharingKey {
			msg := fmt.Sprintf("%s is assigned to Service %s", ip, k)
			if h.sharingKey != "" {
				msg += fmt.Sprintf(" under sharing key %q; set the same herald.io/sharing-key to share it", h.sharingKey)
			}
			return &Error{ReasonRequestedIPInUse, msg}
		}
		if h.local != req.LocalTraffic {
			return &Error{ReasonSharingConflict, fmt.Sprintf("Services sharing %s must have the same externalTrafficPolicy, and Service %s's differs", ip, k)}
		}
		if req.LocalTraffic && !maps.Equal(h.selector, req.Selector) {
			return &Error{ReasonSharingLocalSelector, fmt.Sprintf("Service %s shares %s with externalTrafficPolicy Local and selects other pods (spec.selector %s, this Service's %s): Local Services sharing an address must select the same pods, because the address is announced only from a node with ready endpoints of both, and pods on different nodes would leave no node to announce it", k, ip, formatSelector(h.selector), formatSelector(req.Selector))}
		}
		for _, p := range req.Ports {
			if slices.Contains(h.ports, p) {
				return &Error{ReasonSharingConflict, fmt.Sprintf("port %s on %s is already used by Service %s", p, ip, k)}
			}
		}
	}
	return nil
}

// exhausted explains why no candidate pool could serve the wanted families.
func exhausted(cands []*pool, want []Family, policy FamilyPolicy) *Error {
	names := make([]string, 0, len(cands))
	for _, p := range cands {
		names = append(names, p.Name)
	}
	for _, f := range want {
		has := false
		for _, p := range cands {
			if p.free[f] != nil {
				has = true
			}
		}
		if !has && (policy != PreferDualStack || len(want) == 1) {
			return &Error{ReasonFamilyUnavailable, fmt.Sprintf("no %s addresses in IPPools %s, which this Service may use", f, strings.Join(names, ", "))}
		}
	}
	fams := make([]string, 0, len(want))
	for _, f := range want {
		fams = append(fams, f.String())
	}
	// Both addresses of a dual-stack Service come from one pool, so when no pool
	// has both families, free addresses in each would not help.
	if policy == RequireDualStack && len(want) > 1 && !slices.ContainsFunc(cands, func(p *pool) bool {
		for _, f := range want {
			if p.free[f] == nil {
				return false
			}
		}
		return true
	}) {
		return &Error{ReasonFamilyUnavailable, fmt.Sprintf("none of IPPools %s, which this Service may use, has both %s addresses; a dual-stack Service gets both from one pool", strings.Join(names, ", "), strings.Join(fams, " and "))}
	}
	return &Error{ReasonPoolExhausted, fmt.Sprintf("no free %s address in IPPools %s", strings.Join(fams, "+"), strings.Join(names, ", "))}
}

// Restore records addresses a Service already holds, as found in its status when the
// controller starts, without consulting pools: the status is the ledger. It refuses
// an address that another Service holds and may not share.
func (a *Allocator) Restore(req Request, ips []netip.Addr) error {
	seen := map[Family]bool{}
	for _, ip := range ips {
		if seen[FamilyOf(ip)] {
			return &Error{ReasonInvalidRequest, fmt.Sprintf("status holds two %s addresses", FamilyOf(ip))}
		}
		seen[FamilyOf(ip)] = true
		// Local sharers with different selectors that already share an address
		// (from before the rule, or a selector edited since) keep it: a restart
		// must not move traffic. Assign then says what is wrong.
		if err := a.shareable(ip, req); err != nil && err.Reason != ReasonSharingLocalSelector {
			return err
		}
		if err := a.quarantinedFor(ip, req.Key); err != nil {
			return err
		}
	}
	if len(ips) > 0 {
		// A copy: commit sorts and keeps the slice, and the caller may reuse its own.
		a.commit(req, slices.Clone(ips))
	}
	return nil
}

// Release gives up what a Service holds. It reports whether the Service held
// anything. The addresses stay quarantined until Shown says the Service's status no
// longer shows them.
func (a *Allocator) Release(key string) bool {
	h, ok := a.svcs[key]
	if !ok {
		return false
	}
	for _, ip := range h.ips {
		a.drop(h, ip)
	}
	delete(a.svcs, key)
	return true
}

// commit makes ips what the request's Service holds.
func (a *Allocator) commit(req Request, ips []netip.Addr) {
	old := a.svcs[req.Key]
	slices.SortFunc(ips, netip.Addr.Compare) // IPv4 sorts before IPv6
	h := &holder{key: req.Key, ips: ips, sharingKey: req.SharingKey, ports: slices.Clone(req.Ports), local: req.LocalTraffic}
	if req.LocalTraffic {
		h.selector = maps.Clone(req.Selector)
	}
	if old != nil && old.sharingKey == h.sharingKey && old.local == h.local &&
		slices.Equal(old.ips, h.ips) && slices.Equal(old.ports, h.ports) && maps.Equal(old.selector, h.selector) {
		return // nothing changed: the common case of a Service reconciled again
	}
	if old != nil {
		for _, ip := range old.ips {
			a.drop(old, ip)
		}
		// What it shares, and with whom, changed: a refused sharer may fit now.
		a.releases++
	}
	for _, ip := range ips {
		hs := a.ips[ip]
		if hs == nil {
			hs = map[string]*holder{}
			a.ips[ip] = hs
			a.take(ip)
		}
		hs[h.key] = h
		// Taking back an address it gave up: its status showing it is right again.
		a.unquarantine(h.key, ip)
		if h.sharingKey != "" {
			s := a.shared[h.sharingKey]
			if s == nil {
				s = map[netip.Addr]struct{}{}
				a.shared[h.sharingKey] = s
			}
			s[ip] = struct{}{}
		}
	}
	a.svcs[req.Key] = h
}

// drop removes h from ip's holders. The address is quarantined for h's Service,
// whose status may still show it, rather than freed (see Shown).
func (a *Allocator) drop(h *holder, ip netip.Addr) {
	hs := a.ips[ip]
	delete(hs, h.key)
	a.quarantine(h.key, ip)
	if len(hs) > 0 {
		// The remaining sharers may now take a Service they refused.
		a.releases++
		return
	}
	delete(a.ips, ip)
	if h.sharingKey != "" {
		delete(a.shared[h.sharingKey], ip)
		if len(a.shared[h.sharingKey]) == 0 {
			delete(a.shared, h.sharingKey)
		}
	}
}

// take marks ip used in every pool that holds it: pools may overlap.
func (a *Allocator) take(ip netip.Addr) {
	f, x := FamilyOf(ip), toU128(ip)
	for _, p := range a.order {
		if l := p.free[f]; l != nil && p.Addresses.Contains(ip) && l.take(x) {
			p.used[f]++
		}
	}
}

func (a *Allocator) give(ip netip.Addr) {
	f, x := FamilyOf(ip), toU128(ip)
	for _, p := range a.order {
		if l := p.free[f]; l != nil && p.Addresses.Contains(ip) && !l.isFree(x) {
			l.give(x)
			p.used[f]--
		}
	}
}

func joinAddrs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, " and ")
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}
