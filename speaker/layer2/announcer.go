package layer2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// defaultGratuitousSchedule is when gratuitous announcements go out after an
// address is taken, as offsets from the takeover. The first goes at once: clients
// that cached the old (maybe dead) owner keep sending there until they hear
// otherwise, and the failover budget is about a second. Two repeats follow,
// because one frame can be lost (a switch still learning the port, a full NIC
// queue, a link that just came up); three is RFC 4861's
// MAX_NEIGHBOR_ADVERTISEMENT. RFC 5227's two-second ANNOUNCE_INTERVAL is for hosts
// that just configured an address and would blow the budget: all three land within
// 300 ms.
var defaultGratuitousSchedule = []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond}

// Config configures an Announcer.
type Config struct {
	// Logger receives what the Announcer does; the zero Logger discards.
	Logger logr.Logger
	// GratuitousSchedule lists when gratuitous announcements are sent after an
	// address is taken, as offsets from the takeover. Offsets of zero or less
	// are sent by Set itself; the rest by a background goroutine. Nil means 0,
	// 100 ms and 300 ms; an empty, non-nil slice sends none.
	GratuitousSchedule []time.Duration
	// RefreshInterval is how often every announced address is announced again
	// (gratuitous ARP, unsolicited NA with override), each address at its own,
	// jittered time; zero or less disables the refresh. DefaultRefreshInterval
	// says why a minute is a good value.
	RefreshInterval time.Duration
	// Conflicts, when not nil, receives a Conflict whenever another host claims
	// an address being announced (at most one a second per address and
	// interface). Sends never block: a report that finds the channel full is
	// dropped and counted (Stats.ConflictReportsDropped), so give it room.
	// Claims from the interfaces this Announcer uses are never conflicts; the
	// owner must recognise those of the node's other interfaces itself.
	Conflicts chan<- Conflict
}

// An Announcer answers ARP and NDP for a desired set of addresses, each on its
// interface, opening and closing Responders as needed. Its methods are safe for
// concurrent use.
type Announcer struct {
	log       logr.Logger
	schedule  []time.Duration
	refresh   time.Duration // 0: no periodic refresh
	conflicts chan<- Conflict
	// ownMACs holds the hardware addresses of the links in use, as strings,
	// for Responders' serving loops to read without a.mu.
	ownMACs atomic.Pointer[map[string]bool]

	// Seams, replaced by tests.
	interfaceByName func(name string) (*net.Interface, error)
	dial            func(ifi *net.Interface, ipv6 bool) (*Responder, error)
	random          func() float64 // in [0, 1): jitter of the refresh

	// wg counts the goroutines that repeat gratuitous announcements.
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	mu sync.Mutex
	// mu guards the following fields.
	closed  bool
	links   map[string]*link
	addrs   map[netip.Addr]*announcement
	retired Stats // counts of closed Responders
	// refreshQ orders announcements by their next refresh; entries of withdrawn
	// announcements stay until they come up. refreshing reports whether the
	// refresh goroutine runs.
	refreshQ   refreshQueue
	refreshing bool
	// kick wakes the refresh goroutine (capacity 1); quit ends it.
	kick, quit chan struct{}
}

// link is one interface in use.
type link struct {
	ifi    *net.Interface
	v4, v6 *Responder // nil until an address of that family is announced
}

// slot returns where link keeps the Responder for addr's family.
func (l *link) slot(addr netip.Addr) **Responder {
	if addr.Is4() {
		return &l.v4
	}
	return &l.v6
}

// announcement is one announced address.
type announcement struct {
	iface  string
	cancel context.CancelFunc // stops repeating gratuitous announcements
	due    time.Time          // next periodic refresh; zero without refresh
}

// NewAnnouncer returns an Announcer that announces nothing yet.
func NewAnnouncer(cfg Config) *Announcer {
	schedule := cfg.GratuitousSchedule
	if schedule == nil {
		schedule = defaultGratuitousSchedule
	}
	return &Announcer{
		log:             cfg.Logger,
		schedule:        slices.Clone(schedule),
		refresh:         max(cfg.RefreshInterval, 0),
		conflicts:       cfg.Conflicts,
		random:          rand.Float64,
		kick:            make(chan struct{}, 1),
		quit:            make(chan struct{}),
		interfaceByName: net.InterfaceByName,
		dial: func(ifi *net.Interface, ipv6 bool) (*Responder, error) {
			if ipv6 {
				return DialNDP(ifi)
			}
			return DialARP(ifi)
		},
		links: make(map[string]*link),
		addrs: make(map[netip.Addr]*announcement),
	}
}

// Set makes the announced addresses equal desired, which maps each address to
// the name of the interface to announce it on. Addresses that leave desired, or
// move to another interface, stop being answered first; then new addresses are
// answered and announced gratuitously; Responders left with nothing to answer are
// closed. An interface that was recreated (new index or hardware address) gets
// new sockets and its addresses are announced again.
//
// Set records an address as announced only once it is answered and its first
// gratuitous announcement went out, so after an error calling Set again with the
// same desired set retries what failed. The error joins one error per failure.
// Set does not probe: call Probe first for addresses that must not be stolen.
func (a *Announcer) Set(desired map[netip.Addr]string) error {
	var errs []error
	want := make(map[netip.Addr]string, len(desired))
	for addr, name := range desired {
		n := normalize(addr)
		if !n.IsValid() || name == "" {
			errs = append(errs, fmt.Errorf("announce %v on %q: invalid address or interface", addr, name))
			continue
		}
		want[n] = name
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return fmt.Errorf("set announcements: %w", net.ErrClosed)
	}

	// 1. Withdraw first, so an address moving between interfaces is never
	// answered on both.
	for _, addr := range sortedAddrs(a.addrs) {
		if want[addr] != a.addrs[addr].iface {
			if err := a.withdrawLocked(addr); err != nil {
				errs = append(errs, err)
			}
		}
	}

	// 2. Look up the interfaces in use; renew the sockets of recreated ones.
	failed := make(map[string]bool)
	for _, name := range slices.Compact(slices.Sorted(maps.Values(want))) {
		ifi, err := a.interfaceByName(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("look up interface %q: %w", name, err))
			failed[name] = true
			if err := a.closeLinkLocked(name); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if l := a.links[name]; l != nil && (l.ifi.Index != ifi.Index || !bytes.Equal(l.ifi.HardwareAddr, ifi.HardwareAddr)) {
			a.log.Info("Interface changed; reopening sockets", "interface", name)
			if err := a.closeLinkLocked(name); err != nil {
				errs = append(errs, err)
			}
		}
		if a.links[name] == nil {
			a.links[name] = &link{ifi: ifi}
		}
	}
	a.updateOwnMACsLocked()

	// 3. Take new addresses.
	for _, addr := range sortedAddrs(want) {
		name := want[addr]
		if failed[name] || a.addrs[addr] != nil {
			continue
		}
		if err := a.takeLocked(addr, a.links[name]); err != nil {
			errs = append(errs, fmt.Errorf("announce %s on %s: %w", addr, name, err))
		}
	}

	// 4. Close what answers nothing.
	if err := a.pruneLocked(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// takeLocked starts answering for addr on l and sends its first gratuitous
// announcements; the rest are scheduled.
func (a *Announcer) takeLocked(addr netip.Addr, l *link) error {
	slot := l.slot(addr)
	if *slot == nil {
		r, err := a.dial(l.ifi, addr.Is6())
		if err != nil {
			return fmt.Errorf("open responder: %w", err)
		}
		r.log = a.log
		r.conflicts = a.conflicts
		r.ownMAC = a.isOwnMAC
		r.Start()
		*slot = r
	}
	r := *slot
	if err := r.Add(addr); err != nil {
		return err
	}
	start := time.Now()
	sched := a.schedule
	for len(sched) > 0 && sched[0] <= 0 {
		if err := r.Gratuitous(addr); err != nil {
			// A link that cannot send one frame is no place to announce from;
			// leave the address unrecorded so the next Set retries it.
			return errors.Join(err, r.Remove(addr))
		}
		sched = sched[1:]
	}
	ctx, cancel := context.WithCancel(context.Background())
	ann := &announcement{iface: l.ifi.Name, cancel: cancel}
	a.addrs[addr] = ann
	a.scheduleRefreshLocked(addr, ann, start, true)
	if len(sched) > 0 {
		a.wg.Go(func() { a.repeat(ctx, r, addr, start, sched) })
	}
	a.log.Info("Announcing address", "addr", addr, "interface", l.ifi.Name)
	return nil
}

// repeat sends the remaining gratuitous announcements of addr at their offsets
// from start, until ctx is done.
func (a *Announcer) repeat(ctx context.Context, r *Responder, addr netip.Addr, start time.Time, offsets []time.Duration) {
	t := time.NewTimer(0)
	defer t.Stop()
	for _, off := range offsets {
		t.Reset(time.Until(start.Add(off)))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.Gratuitous(addr); err != nil {
			if ctx.Err() != nil {
				return // withdrawn meanwhile
			}
			a.log.Error(err, "Repeating gratuitous announcement failed", "addr", addr, "interface", r.ifi.Name)
		}
	}
}

// withdrawLocked stops answering for addr.
func (a *Announcer) withdrawLocked(addr netip.Addr) error {
	st := a.addrs[addr]
	st.cancel()
	delete(a.addrs, addr)
	a.log.Info("Withdrawing address", "addr", addr, "interface", st.iface)
	l := a.links[st.iface]
	if l == nil || *l.slot(addr) == nil {
		return nil
	}
	if err := (*l.slot(addr)).Remove(addr); err != nil {
		return fmt.Errorf("withdraw %s from %s: %w", addr, st.iface, err)
	}
	return nil
}

// closeLinkLocked closes the Responders of interface name; its addresses are no
// longer announced.
func (a *Announcer) closeLinkLocked(name string) error {
	l := a.links[name]
	if l == nil {
		return nil
	}
	for addr, st := range a.addrs {
		if st.iface == name {
			st.cancel()
			delete(a.addrs, addr)
		}
	}
	delete(a.links, name)
	return errors.Join(a.closeResponderLocked(&l.v4), a.closeResponderLocked(&l.v6))
}

// closeResponderLocked closes *rp, keeps its counts and clears *rp.
func (a *Announcer) closeResponderLocked(rp **Responder) error {
	r := *rp
	if r == nil {
		return nil
	}
	*rp = nil
	err := r.Close()
	a.retired = a.retired.add(r.Stats())
	return err
}

// pruneLocked closes Responders with no announced address, and links with no
// Responder.
func (a *Announcer) pruneLocked() error {
	inUse := make(map[string][2]bool) // interface → has IPv4, has IPv6
	for addr, st := range a.addrs {
		u := inUse[st.iface]
		if addr.Is4() {
			u[0] = true
		} else {
			u[1] = true
		}
		inUse[st.iface] = u
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(a.links)) {
		l, u := a.links[name], inUse[name]
		if !u[0] {
			errs = append(errs, a.closeResponderLocked(&l.v4))
		}
		if !u[1] {
			errs = append(errs, a.closeResponderLocked(&l.v6))
		}
		if l.v4 == nil && l.v6 == nil {
			delete(a.links, name)
		}
	}
	return errors.Join(errs...)
}

// Probe asks the link of interface iface whether another host uses addr (see
// Responder.Probe) and returns the hardware address of the first one that is not
// in opts.Ignore, or nil. It uses the interface's open Responder when there is
// one and a short-lived one otherwise. Probes may run concurrently with each
// other and with Set; a probe whose Responder Set closes fails with an error
// rather than report the address free.
func (a *Announcer) Probe(ctx context.Context, addr netip.Addr, iface string, opts ProbeOptions) (net.HardwareAddr, error) {
	addr = normalize(addr)
	if !addr.IsValid() {
		return nil, fmt.Errorf("probe on %s: invalid address", iface)
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, fmt.Errorf("probe %s on %s: %w", addr, iface, net.ErrClosed)
	}
	var r *Responder
	if l := a.links[iface]; l != nil {
		r = *l.slot(addr)
	}
	a.mu.Unlock()

	if r == nil {
		ifi, err := a.interfaceByName(iface)
		if err != nil {
			return nil, fmt.Errorf("probe %s: look up interface %q: %w", addr, iface, err)
		}
		if r, err = a.dial(ifi, addr.Is6()); err != nil {
			return nil, fmt.Errorf("probe %s on %s: open responder: %w", addr, iface, err)
		}
		r.log = a.log
		r.Start()
		defer func() {
			if err := r.Close(); err != nil {
				a.log.Error(err, "Closing probe responder failed", "interface", iface)
			}
			a.mu.Lock()
			a.retired = a.retired.add(r.Stats())
			a.mu.Unlock()
		}()
	}
	mac, err := r.Probe(ctx, addr, opts)
	if err != nil {
		return nil, fmt.Errorf("on %s: %w", iface, err)
	}
	if mac != nil {
		a.log.Info("Address in use by another host", "addr", addr, "interface", iface, "hardwareAddr", mac.String())
	}
	return mac, nil
}

// Announced returns the announced addresses and their interfaces.
func (a *Announcer) Announced() map[netip.Addr]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[netip.Addr]string, len(a.addrs))
	for addr, st := range a.addrs {
		out[addr] = st.iface
	}
	return out
}

// Stats returns the sum of the counters of all Responders the Announcer has
// opened, closed ones included.
func (a *Announcer) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.retired
	for _, l := range a.links {
		for _, r := range []*Responder{l.v4, l.v6} {
			if r != nil {
				s = s.add(r.Stats())
			}
		}
	}
	return s
}

// Close stops answering for every address, closes every Responder and waits for
// the Announcer's goroutines. It is safe to call more than once; later calls
// return what the first returned.
func (a *Announcer) Close() error {
	a.closeOnce.Do(func() {
		a.mu.Lock()
		a.closed = true
		close(a.quit)
		var errs []error
		for _, name := range slices.Sorted(maps.Keys(a.links)) {
			errs = append(errs, a.closeLinkLocked(name))
		}
		a.mu.Unlock()
		a.wg.Wait()
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}

// sortedAddrs returns m's keys in order, so that work and errors come out in
// the same order every time.
func sortedAddrs[V any](m map[netip.Addr]V) []netip.Addr {
	return slices.SortedFunc(maps.Keys(m), netip.Addr.Compare)
}
