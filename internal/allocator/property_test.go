package allocator

import (
	"fmt"
	"maps"
	"math/big"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"go4.org/netipx"
)

// The property test drives an Allocator with random calls and checks, after every
// call, what must always hold, against a model kept by the test: which Service holds
// which addresses, under which request. Pools are drawn from a small universe (32
// IPv4 addresses crossing a .255/.0 boundary, 32 IPv6 addresses) so that pools
// overlap, fill up and shrink under assigned addresses all the time, and so that
// every count can be checked by brute force.

var (
	uni4 = addrSeq("10.0.0.240", 32)
	uni6 = addrSeq("fd00::", 32)
)

func addrSeq(start string, n int) []netip.Addr {
	a := netip.MustParseAddr(start)
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = a
		a = a.Next()
	}
	return out
}

var (
	propPorts = []Port{tcp(80), tcp(443), udp(53), tcp(8080), udp(443)}
	propKeys  = 16 // Services s0 … s15
	propPools = 4  // pools p0 … p3; p4 is named by requests but never exists
)

type world struct {
	t       *testing.T
	rng     *rand.Rand
	a       *Allocator
	orphans OrphanPolicy
	pools   map[string]Pool
	held    map[string][]netip.Addr
	reqs    map[string]Request // the request under which each Service holds its IPs
	// fits records the Services whose IPs passed checkFits for reqs, as opposed to
	// restored ones or retained orphans.
	fits map[string]bool
	// shows is what each Service's status may show: what it was given, until a
	// status write (Shown) says it shows only what it holds. An address nobody
	// holds that some status may show is quarantined.
	shows   map[string]map[netip.Addr]bool
	history []string
	// outcomes counts Assign results by reason ("ok", "shared", "retained", ...), so a
	// run with -v shows the steps exercised what they should.
	outcomes map[string]int
}

func TestProperties(t *testing.T) {
	for _, orphans := range []OrphanPolicy{RetainOrphans, ReassignOrphans} {
		for seed := uint64(1); seed <= 4; seed++ {
			t.Run(fmt.Sprintf("orphans=%d/seed=%d", orphans, seed), func(t *testing.T) {
				w := &world{
					t:       t,
					rng:     rand.New(rand.NewPCG(seed, uint64(orphans))),
					a:       New(orphans),
					orphans: orphans,
					pools:   map[string]Pool{},
					held:    map[string][]netip.Addr{},
					reqs:    map[string]Request{},

					fits:     map[string]bool{},
					shows:    map[string]map[netip.Addr]bool{},
					outcomes: map[string]int{},
				}
				for i := range propPools {
					w.setPool(w.randomPool(fmt.Sprintf("p%d", i)))
				}
				for range 3000 {
					w.step()
					w.check()
				}
				t.Logf("outcomes: %v", w.outcomes)
			})
		}
	}
}

func (w *world) logf(format string, args ...any) {
	w.history = append(w.history, fmt.Sprintf(format, args...))
}

func (w *world) fatalf(format string, args ...any) {
	w.t.Helper()
	h := w.history
	if len(h) > 40 {
		h = h[len(h)-40:]
	}
	w.t.Fatalf("after %d steps: %s\nlast steps:\n  %s", len(w.history), fmt.Sprintf(format, args...), strings.Join(h, "\n  "))
}

func (w *world) step() {
	if w.rng.IntN(4) == 0 {
		w.land()
		return
	}
	switch n := w.rng.IntN(100); {
	case n < 50:
		w.assign(w.randomRequest(w.randomKey()))
	case n < 60:
		if k, ok := w.randomHeld(); ok {
			w.assign(w.reqs[k])
		}
	case n < 72:
		w.release(w.randomKey())
	case n < 84:
		w.setPool(w.editPool(fmt.Sprintf("p%d", w.rng.IntN(propPools))))
	case n < 88:
		name := fmt.Sprintf("p%d", w.rng.IntN(propPools))
		w.logf("DeletePool(%s)", name)
		w.a.DeletePool(name)
		delete(w.pools, name)
	case n < 95:
		w.restore()
	default:
		// What the controller does after a pool edit: Assign every Service again.
		for _, k := range slices.Sorted(maps.Keys(w.held)) {
			w.assign(w.reqs[k])
		}
	}
}

func (w *world) randomKey() string { return fmt.Sprintf("s%d", w.rng.IntN(propKeys)) }

func (w *world) randomHeld() (string, bool) {
	if len(w.held) == 0 {
		return "", false
	}
	keys := slices.Sorted(maps.Keys(w.held))
	return keys[w.rng.IntN(len(keys))], true
}

func (w *world) randomAddr(f Family) netip.Addr {
	if f == IPv6 {
		return uni6[w.rng.IntN(len(uni6))]
	}
	return uni4[w.rng.IntN(len(uni4))]
}

func (w *world) randomRange(uni []netip.Addr) netipx.IPRange {
	i, j := w.rng.IntN(len(uni)), w.rng.IntN(len(uni))
	if j < i {
		i, j = j, i
	}
	return netipx.IPRangeFrom(uni[i], uni[j])
}

func (w *world) randomPool(name string) Pool {
	var b netipx.IPSetBuilder
	for range w.rng.IntN(3) {
		b.AddRange(w.randomRange(uni4))
	}
	if w.rng.IntN(10) < 6 {
		b.AddRange(w.randomRange(uni6))
	}
	set, err := b.IPSet()
	if err != nil {
		w.fatalf("building a pool: %v", err)
	}
	p := Pool{Name: name, Addresses: set, AutoAssign: w.rng.IntN(5) > 0, AvoidBuggyIPs: w.rng.IntN(3) == 0}
	if w.rng.IntN(20) == 0 {
		p.Addresses = nil
	}
	if w.rng.IntN(5) < 3 {
		p.HasPriority, p.Priority = true, int32(w.rng.IntN(6)-2)
	} else {
		p.Priority = int32(w.rng.IntN(6)) // ignored without HasPriority
	}
	if w.rng.IntN(7) == 0 {
		p.Namespaces = []string{"ns0"}
	}
	if w.rng.IntN(10) == 0 {
		p.NamespaceSelector = matchLabel("env", "prod")
	}
	if w.rng.IntN(10) == 0 {
		p.ServiceSelector = matchLabel("tier", "front")
	}
	return p
}

// editPool returns a new version of a pool: a new one, or the old one grown or shrunk.
func (w *world) editPool(name string) Pool {
	old, ok := w.pools[name]
	if !ok || old.Addresses == nil || w.rng.IntN(3) == 0 {
		return w.randomPool(name)
	}
	var b netipx.IPSetBuilder
	b.AddSet(old.Addresses)
	uni := uni4
	if w.rng.IntN(2) == 0 {
		uni = uni6
	}
	if w.rng.IntN(2) == 0 {
		b.AddRange(w.randomRange(uni))
	} else {
		b.RemoveRange(w.randomRange(uni))
	}
	set, err := b.IPSet()
	if err != nil {
		w.fatalf("editing a pool: %v", err)
	}
	p := old
	p.Addresses = set
	if w.rng.IntN(4) == 0 {
		p.AvoidBuggyIPs = !p.AvoidBuggyIPs
	}
	return p
}

func (w *world) setPool(p Pool) {
	var ranges []string
	if p.Addresses != nil {
		for _, r := range p.Addresses.Ranges() {
			ranges = append(ranges, r.String())
		}
	}
	w.logf("SetPool(%s %v auto=%v buggy=%v prio=%v/%d ns=%v nsSel=%v svcSel=%v)", p.Name, ranges, p.AutoAssign,
		p.AvoidBuggyIPs, p.HasPriority, p.Priority, p.Namespaces, p.NamespaceSelector != nil, p.ServiceSelector != nil)
	w.a.SetPool(p)
	w.pools[p.Name] = p
}

func (w *world) randomRequest(key string) Request {
	pick := func(a, b string) string {
		if w.rng.IntN(2) == 0 {
			return a
		}
		return b
	}
	req := Request{
		Key:             key,
		Namespace:       pick("ns0", "ns1"),
		Labels:          map[string]string{"tier": pick("front", "back")},
		NamespaceLabels: map[string]string{"env": pick("prod", "dev")},
	}
	switch w.rng.IntN(8) {
	case 1:
		req.Families = []Family{IPv4}
	case 2:
		req.Families = v6only
	case 3:
		req.Families, req.Policy = dual, PreferDualStack
	case 4:
		req.Families, req.Policy = v6first, PreferDualStack
	case 5:
		req.Families, req.Policy = dual, RequireDualStack
	case 6:
		req.Families, req.Policy = v6first, RequireDualStack
	case 7:
		req.Families = dual // SingleStack with two families listed
	}
	if w.rng.IntN(4) == 0 {
		switch n := w.rng.IntN(5); {
		case n == 0 && len(w.held[key]) > 0:
			req.IPs = slices.Clone(w.held[key]) // status copied into the annotation
		case n == 1 && len(w.held) > 0:
			k, _ := w.randomHeld()
			req.IPs = slices.Clone(w.held[k]) // someone else's
		case n == 2:
			req.IPs = []netip.Addr{w.randomAddr(IPv4), w.randomAddr(IPv6)}
		default:
			req.IPs = []netip.Addr{w.randomAddr(Family(4 + 2*w.rng.IntN(2)))}
		}
	}
	if w.rng.IntN(10) == 0 {
		req.Pool = fmt.Sprintf("p%d", w.rng.IntN(propPools+1))
	}
	switch n := w.rng.IntN(10); {
	case n < 4:
		req.SharingKey = "k1"
	case n < 6:
		req.SharingKey = "k2"
	}
	for _, p := range propPorts {
		if w.rng.IntN(3) == 0 {
			req.Ports = append(req.Ports, p)
		}
	}
	if len(req.Ports) == 0 {
		req.Ports = []Port{propPorts[w.rng.IntN(len(propPorts))]}
	}
	req.LocalTraffic = w.rng.IntN(7) == 0
	return req
}

func describe(r Request) string {
	return fmt.Sprintf("%s ns=%s fam=%v pol=%d ips=%v pool=%q key=%q ports=%v local=%v",
		r.Key, r.Namespace, r.Families, r.Policy, r.IPs, r.Pool, r.SharingKey, r.Ports, r.LocalTraffic)
}

func (w *world) assign(req Request) {
	prev := w.held[req.Key]
	quarantined := w.quarantine()
	got, err := w.a.Assign(req)
	w.logf("Assign(%s) = %v, %v", describe(req), got.IPs, err)
	if err != nil {
		if ReasonOf(err) == 0 {
			w.fatalf("Assign(%s): error %v carries no reason", req.Key, err)
		}
		w.outcomes[ReasonOf(err).String()]++
		if !slices.Equal(got.IPs, prev) {
			w.fatalf("refused Assign(%s) returned %v; want the kept %v", req.Key, got.IPs, prev)
		}
		return
	}
	if w.orphans == RetainOrphans && slices.Equal(got.IPs, prev) && w.anyOrphan(prev) {
		// A retained orphan: kept as it was, for a request that still asks for it.
		w.outcomes["retained"]++
		for _, ip := range req.IPs {
			if !slices.Contains(prev, ip) {
				w.fatalf("Assign(%s) kept orphans %v though it requests %v", req.Key, prev, req.IPs)
			}
		}
	} else {
		w.checkFits(req, got.IPs)
		w.checkLowestFree(req, prev, got.IPs)
		w.checkSticky(req, prev, got.IPs)
		w.outcomes[fmt.Sprintf("ok/%d", len(got.IPs))]++
		if len(w.a.Holders(got.IPs[0])) > 1 {
			w.outcomes["shared"]++
		}
		if prev != nil && !slices.Equal(prev, got.IPs) {
			w.outcomes["moved"]++
		}
	}
	// Issue 9: an address new to the Service, held by nobody else, is not shown
	// by another Service's status.
	for _, ip := range got.IPs {
		if slices.Contains(prev, ip) || len(w.a.Holders(ip)) > 1 {
			continue
		}
		for _, k := range quarantined[ip] {
			if k != req.Key {
				w.fatalf("Assign(%s) = %v: %s is still shown by %s", req.Key, got.IPs, ip, k)
			}
		}
	}
	w.held[req.Key] = slices.Clone(got.IPs)
	w.addShown(req.Key, got.IPs)
	w.reqs[req.Key] = req
	w.fits[req.Key] = !w.anyOrphan(got.IPs)

	again, err := w.a.Assign(req)
	if err != nil || !slices.Equal(again.IPs, got.IPs) {
		w.fatalf("Assign(%s) again = %v, %v; want %v, nil", req.Key, again.IPs, err, got.IPs)
	}
}

func (w *world) release(key string) {
	_, want := w.held[key]
	got := w.a.Release(key)
	w.logf("Release(%s) = %v", key, got)
	if got != want {
		w.fatalf("Release(%s) = %v; want %v", key, got, want)
	}
	delete(w.held, key)
	delete(w.reqs, key)
	delete(w.fits, key)
}

func (w *world) restore() {
	key := w.randomKey()
	req := w.randomRequest(key)
	req.IPs, req.Pool = nil, ""
	var ips []netip.Addr
	switch w.rng.IntN(6) {
	case 0:
		ips = []netip.Addr{w.randomAddr(IPv4), w.randomAddr(IPv6)}
	case 1:
		ips = []netip.Addr{w.randomAddr(IPv4), w.randomAddr(IPv4)} // always refused
	default:
		ips = []netip.Addr{w.randomAddr(Family(4 + 2*w.rng.IntN(2)))}
	}
	before := w.quarantine()
	err := w.a.Restore(req, ips)
	w.logf("Restore(%s, %v) = %v", describe(req), ips, err)
	if err == nil {
		for _, ip := range ips {
			if len(w.a.Holders(ip)) > 1 {
				continue
			}
			for _, k := range before[ip] {
				if k != key {
					w.fatalf("Restore(%s, %v): %s is still shown by %s", key, ips, ip, k)
				}
			}
		}
	}
	if err != nil {
		if ReasonOf(err) == 0 {
			w.fatalf("Restore(%s): error %v carries no reason", key, err)
		}
		if w.rng.IntN(2) == 0 {
			// What the controller does at start with a status it cannot restore.
			w.a.Quarantine(key, ips)
			w.logf("Quarantine(%s, %v)", key, ips)
			w.addShown(key, ips)
		}
		return
	}
	if FamilyOf(ips[0]) == FamilyOf(ips[len(ips)-1]) && len(ips) > 1 {
		w.fatalf("Restore(%s, %v) accepted two addresses of one family", key, ips)
	}
	held := slices.Clone(ips)
	slices.SortFunc(held, netip.Addr.Compare)
	w.held[key] = held
	w.addShown(key, held)
	w.reqs[key] = req
	w.fits[key] = false
}

func (w *world) addShown(key string, ips []netip.Addr) {
	if w.shows[key] == nil {
		w.shows[key] = map[netip.Addr]bool{}
	}
	for _, ip := range ips {
		w.shows[key][ip] = true
	}
}

// land is a status write landing: the Service's status shows what it holds.
func (w *world) land() {
	keys := slices.Sorted(maps.Keys(w.shows))
	if len(keys) == 0 {
		return
	}
	key := keys[w.rng.IntN(len(keys))]
	before := w.quarantine()
	freed := w.a.Shown(key, w.held[key])
	w.logf("Shown(%s, %v) = %v", key, w.held[key], freed)
	delete(w.shows, key)
	w.addShown(key, w.held[key])
	after := w.quarantine()
	var want []netip.Addr
	for ip := range before {
		if _, still := after[ip]; !still && !w.heldNow(ip) {
			want = append(want, ip)
		}
	}
	slices.SortFunc(want, netip.Addr.Compare)
	if !slices.Equal(freed, want) {
		w.fatalf("Shown(%s) freed %v; want %v", key, freed, want)
	}
}

// quarantine returns, by the model, the Services whose status may show each
// address they do not hold (sorted).
func (w *world) quarantine() map[netip.Addr][]string {
	out := map[netip.Addr][]string{}
	for k, ips := range w.shows {
		for ip := range ips {
			if !slices.Contains(w.held[k], ip) {
				out[ip] = append(out[ip], k)
			}
		}
	}
	for ip := range out {
		slices.Sort(out[ip])
	}
	return out
}

// quarantinedNow reports whether, by the model, x is held by nobody and shown by
// some status.
func (w *world) quarantinedNow(x netip.Addr) bool {
	if w.heldNow(x) {
		return false
	}
	_, ok := w.quarantine()[x]
	return ok
}

func (w *world) anyOrphan(ips []netip.Addr) bool {
	for _, ip := range ips {
		in := false
		for _, p := range w.pools {
			if p.Addresses != nil && p.Addresses.Contains(ip) {
				in = true
			}
		}
		if !in {
			return true
		}
	}
	return false
}

// usable reports whether the request may be given ip from pool p.
func usable(p Pool, req Request, ip netip.Addr) bool {
	switch {
	case p.Addresses == nil || !p.Addresses.Contains(ip):
		return false
	case len(p.Namespaces) > 0 && !slices.Contains(p.Namespaces, req.Namespace):
		return false
	case p.NamespaceSelector != nil && !p.NamespaceSelector(req.NamespaceLabels):
		return false
	case p.ServiceSelector != nil && !p.ServiceSelector(req.Labels):
		return false
	case req.Pool != "" && p.Name != req.Pool:
		return false
	case req.Pool == "" && len(req.IPs) == 0 && !p.AutoAssign:
		return false
	case p.AvoidBuggyIPs && ip.Is4() && buggy(toU128(ip)):
		return false
	}
	return true
}

// checkFits checks the addresses a successful Assign gave: right families, the
// requested addresses if any, and all from one pool the request may use.
func (w *world) checkFits(req Request, ips []netip.Addr) {
	w.t.Helper()
	if len(ips) == 0 || len(ips) > 2 || (len(ips) == 2 && FamilyOf(ips[0]) == FamilyOf(ips[1])) ||
		!slices.IsSortedFunc(ips, netip.Addr.Compare) {
		w.fatalf("Assign(%s) = %v: want one address per family, IPv4 first", req.Key, ips)
	}
	fams := slices.Clone(req.Families)
	if len(fams) == 0 {
		for _, ip := range req.IPs {
			fams = append(fams, FamilyOf(ip))
		}
		if len(fams) == 0 {
			fams = []Family{IPv4}
		}
	}
	if req.Policy == SingleStack {
		fams = fams[:1]
	}
	var gotFams []Family
	for _, ip := range ips {
		gotFams = append(gotFams, FamilyOf(ip))
	}
	switch {
	case len(req.IPs) > 0:
		want := slices.Clone(req.IPs)
		slices.SortFunc(want, netip.Addr.Compare)
		if !slices.Equal(ips, want) {
			w.fatalf("Assign(%s) = %v; want the requested %v", req.Key, ips, want)
		}
	case req.Policy == PreferDualStack:
		for _, f := range gotFams {
			if !slices.Contains(fams, f) {
				w.fatalf("Assign(%s) = %v: family %v not in %v", req.Key, ips, f, fams)
			}
		}
	default:
		slices.Sort(fams)
		if !slices.Equal(gotFams, fams) {
			w.fatalf("Assign(%s) = %v: families %v; want %v", req.Key, ips, gotFams, fams)
		}
	}
	for _, p := range w.pools {
		ok := true
		for _, ip := range ips {
			ok = ok && usable(p, req, ip)
		}
		if ok {
			return
		}
	}
	w.fatalf("Assign(%s) = %v: no single pool the request may use holds them", req.Key, ips)
}

func (w *world) poolOrder() []Pool {
	ps := slices.Collect(maps.Values(w.pools))
	slices.SortFunc(ps, func(x, y Pool) int {
		kx, ky := 1, 1
		if x.HasPriority {
			kx = 0
		}
		if y.HasPriority {
			ky = 0
		}
		if kx != ky {
			return kx - ky
		}
		if x.HasPriority && x.Priority != y.Priority {
			return int(x.Priority) - int(y.Priority)
		}
		return strings.Compare(x.Name, y.Name)
	})
	return ps
}

// check checks every invariant against the model.
func (w *world) check() {
	w.t.Helper()
	a := w.a
	if got, want := a.Services(), slices.Sorted(maps.Keys(w.held)); !slices.Equal(got, want) {
		w.fatalf("Services() = %v; want %v", got, want)
	}
	order := w.poolOrder()
	holders := map[netip.Addr][]string{}
	for k, ips := range w.held {
		g, ok := a.Get(k)
		if !ok || !slices.Equal(g.IPs, ips) {
			w.fatalf("Get(%s) = %v, %v; want %v (what Assign returned)", k, g.IPs, ok, ips)
		}
		wantPool := ""
		for _, p := range order {
			all := p.Addresses != nil
			for _, ip := range ips {
				all = all && p.Addresses.Contains(ip)
			}
			if all {
				wantPool = p.Name
				break
			}
		}
		if g.Pool != wantPool {
			w.fatalf("Get(%s).Pool = %q; want %q", k, g.Pool, wantPool)
		}
		for _, ip := range ips {
			holders[ip] = append(holders[ip], k)
		}
	}

	// No address is held twice unless all holders share one key, one traffic policy
	// and no port.
	for ip, ks := range holders {
		slices.Sort(ks)
		if got := a.Holders(ip); !slices.Equal(got, ks) {
			w.fatalf("Holders(%s) = %v; want %v", ip, got, ks)
		}
		if len(ks) == 1 {
			continue
		}
		first := w.reqs[ks[0]]
		if first.SharingKey == "" {
			w.fatalf("%s is held by %v without a sharing key", ip, ks)
		}
		for i, k := range ks {
			r := w.reqs[k]
			if r.SharingKey != first.SharingKey || r.LocalTraffic != first.LocalTraffic {
				w.fatalf("%s is held by %v under keys/policies %q/%v and %q/%v", ip, ks,
					first.SharingKey, first.LocalTraffic, r.SharingKey, r.LocalTraffic)
			}
			for _, o := range ks[:i] {
				for _, port := range r.Ports {
					if slices.Contains(w.reqs[o].Ports, port) {
						w.fatalf("%s is held by %s and %s, which both use %v", ip, o, k, port)
					}
				}
			}
		}
	}

	// The allocator's own indexes agree with the model.
	if len(a.ips) != len(holders) {
		w.fatalf("allocator tracks %d addresses; want %d", len(a.ips), len(holders))
	}
	shared := map[string]map[netip.Addr]struct{}{}
	for ip, ks := range holders {
		if sk := w.reqs[ks[0]].SharingKey; sk != "" {
			if shared[sk] == nil {
				shared[sk] = map[netip.Addr]struct{}{}
			}
			shared[sk][ip] = struct{}{}
		}
	}
	if !maps.EqualFunc(a.shared, shared, func(x, y map[netip.Addr]struct{}) bool { return maps.Equal(x, y) }) {
		w.fatalf("sharing index %v; want %v", a.shared, shared)
	}

	q := w.quarantine()
	if len(a.quarantined) != len(q) {
		w.fatalf("allocator quarantines %d addresses; want %d (%v)", len(a.quarantined), len(q), q)
	}
	unheld := 0
	for ip, ks := range q {
		got := slices.Sorted(slices.Values(a.quarantined[ip]))
		if !slices.Equal(got, ks) {
			w.fatalf("quarantine of %s: %v; want %v", ip, got, ks)
		}
		for _, k := range ks {
			if !slices.Contains(a.QuarantinedBy(k), ip) {
				w.fatalf("QuarantinedBy(%s) = %v lacks %s", k, a.QuarantinedBy(k), ip)
			}
		}
		if _, held := holders[ip]; !held {
			unheld++
		}
	}
	if got := a.QuarantinedCount(); got != unheld {
		w.fatalf("QuarantinedCount() = %d; want %d", got, unheld)
	}
	for name, p := range w.pools {
		w.checkPool(name, p, holders, q)
	}
	for i := range propPools + 1 {
		name := fmt.Sprintf("p%d", i)
		if _, ok := w.pools[name]; !ok {
			if _, ok := a.PoolStats(name); ok {
				w.fatalf("PoolStats(%s) found a deleted pool", name)
			}
		}
	}
}

// checkPool checks a pool's counts, free list and overlaps by brute force over the
// universe.
func (w *world) checkPool(name string, p Pool, holders map[netip.Addr][]string, quarantined map[netip.Addr][]string) {
	w.t.Helper()
	st, ok := w.a.PoolStats(name)
	if !ok {
		w.fatalf("PoolStats(%s): not found", name)
	}
	ip := w.a.pools[name]
	for _, f := range []Family{IPv4, IPv6} {
		uni := uni4
		if f == IPv6 {
			uni = uni6
		}
		var size, capacity, used uint64
		for _, x := range uni {
			if p.Addresses == nil || !p.Addresses.Contains(x) {
				continue
			}
			size++
			if !(p.AvoidBuggyIPs && f == IPv4 && buggy(toU128(x))) {
				capacity++
			}
			_, held := holders[x]
			if _, q := quarantined[x]; held || q {
				used++
			}
		}
		s, has := st[f]
		if has != (size > 0) {
			w.fatalf("PoolStats(%s) has %v: %v; want %v", name, f, has, size > 0)
		}
		if size == 0 {
			continue
		}
		if s.Capacity.Cmp(bigU(capacity)) != 0 || s.Used != used {
			w.fatalf("PoolStats(%s)[%v] = capacity %s used %d; want %d, %d", name, f, s.Capacity, s.Used, capacity, used)
		}
		l := ip.free[f]
		runs := runsOf(l)
		var free uint64
		for i, r := range runs {
			if r.to.less(r.from) || (i > 0 && !runs[i-1].to.inc().less(r.from)) {
				w.fatalf("pool %s %v free runs not sorted, disjoint and merged: %v", name, f, runs)
			}
			for x := r.from; ; x = x.inc() {
				if a := x.addr(f); !p.Addresses.Contains(a) {
					w.fatalf("pool %s: free address %s is not in the pool", name, a)
				}
				free++
				if x == r.to {
					break
				}
			}
		}
		for _, x := range uni {
			if p.Addresses.Contains(x) {
				_, held := holders[x]
				_, q := quarantined[x]
				q = q && !held
				if l.isFree(toU128(x)) == (held || q) {
					w.fatalf("pool %s: %s free=%v but held=%v quarantined=%v", name, x, l.isFree(toU128(x)), held, q)
				}
			}
		}
		if free+used != size {
			w.fatalf("pool %s %v: %d free + %d used != %d addresses", name, f, free, used, size)
		}
	}

	var overlaps []string
	for o, op := range w.pools {
		if o != name && p.Addresses != nil && op.Addresses != nil && p.Addresses.Overlaps(op.Addresses) {
			overlaps = append(overlaps, o)
		}
	}
	slices.Sort(overlaps)
	if got := w.a.Overlaps(name); !slices.Equal(got, overlaps) {
		w.fatalf("Overlaps(%s) = %v; want %v", name, got, overlaps)
	}
}

func bigU(n uint64) *big.Int { return new(big.Int).SetUint64(n) }

// heldNow reports whether anyone holds x, by the model (before the current call
// updates it).
func (w *world) heldNow(x netip.Addr) bool {
	for _, ips := range w.held {
		if slices.Contains(ips, x) {
			return true
		}
	}
	return false
}

// checkLowestFree checks that a new single-stack Service with nothing requested and
// no sharing key gets the lowest free address of the first pool, in pool order, that
// has one.
func (w *world) checkLowestFree(req Request, prev, got []netip.Addr) {
	w.t.Helper()
	if prev != nil || len(req.IPs) > 0 || req.SharingKey != "" || req.Policy != SingleStack {
		return
	}
	f := IPv4
	if len(req.Families) > 0 {
		f = req.Families[0]
	}
	uni := uni4
	if f == IPv6 {
		uni = uni6
	}
	for _, p := range w.poolOrder() {
		for _, x := range uni {
			if usable(p, req, x) && !w.heldNow(x) && !w.quarantinedNow(x) {
				if got[0] != x {
					w.fatalf("Assign(%s) = %v; want %s, the lowest free address of pool %s", req.Key, got, x, p.Name)
				}
				return
			}
		}
	}
	w.fatalf("Assign(%s) = %v, but no pool had a free address", req.Key, got)
}

// checkSticky checks that a Service asking again for what it asked before keeps its
// addresses while one pool it may use still holds them all and it may still hold
// them. PreferDualStack may gain a family, but only around what it had: trading its
// address for a pair from another pool would cut its clients.
func (w *world) checkSticky(req Request, prev, got []netip.Addr) {
	w.t.Helper()
	if prev == nil || !w.fits[req.Key] || !sameRequest(req, w.reqs[req.Key]) {
		return
	}
	for _, ip := range prev {
		if hs := slices.DeleteFunc(slices.Clone(w.a.Holders(ip)), func(k string) bool { return k == req.Key }); len(hs) > 0 {
			// Sharers may have changed since; the allocator re-checks them.
			return
		}
	}
	for _, p := range w.pools {
		all := true
		for _, ip := range prev {
			all = all && usable(p, req, ip)
		}
		if !all {
			continue
		}
		for _, ip := range prev {
			if !slices.Contains(got, ip) {
				w.fatalf("Assign(%s) moved %v to %v though pool %s still holds them", req.Key, prev, got, p.Name)
			}
		}
		return
	}
}

func sameRequest(x, y Request) bool {
	return x.Key == y.Key && x.Namespace == y.Namespace && maps.Equal(x.Labels, y.Labels) &&
		maps.Equal(x.NamespaceLabels, y.NamespaceLabels) && slices.Equal(x.Families, y.Families) &&
		x.Policy == y.Policy && slices.Equal(x.IPs, y.IPs) && x.Pool == y.Pool && x.SharingKey == y.SharingKey &&
		slices.Equal(x.Ports, y.Ports) && x.LocalTraffic == y.LocalTraffic
}
