package layer2

import (
	"container/heap"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

const (
	// DefaultRefreshInterval is a good Config.RefreshInterval, for callers that
	// offer the refresh as an option. The refresh exists for switches whose
	// MAC tables age out before hosts' and routers' ARP caches do: 300 s is the
	// usual switch default (IEEE 802.1D's recommended ageing time, Linux
	// bridges, most vendors), while routers keep ARP entries for minutes to
	// hours, so once a quiet address's entry ages out of the switch its traffic
	// is flooded to every port. A minute keeps the entry alive with four
	// frames in five to spare, and also bounds how long a host whose cache
	// missed a takeover (or learnt the losing side of a split brain) keeps the
	// wrong owner. It is cheap: one round (two ARP frames, or one NA) per
	// address per minute, so 1,000 addresses cost about 33 small frames a
	// second, spread evenly.
	DefaultRefreshInterval = time.Minute

	// refreshJitter is how far, as a fraction of the interval, each refresh
	// of an address strays from the interval at random. An address's first
	// refresh comes at a uniformly random point of its first interval, so
	// addresses taken together (a speaker starting with 1,000 of them), and
	// speakers started together, spread over the interval rather than burst;
	// the jitter keeps them from drifting back into step.
	refreshJitter = 0.1

	// refreshBatch is the most addresses refreshed in one go, and refreshGap
	// the least time between two goes when a batch was full. Jitter spreads
	// refreshes already; these bound the bursts when many fall due at once
	// anyway (a process that was stopped, a clock jump): at most 32 rounds
	// every 10 ms, 3,200 addresses a second, which still refreshes 190,000
	// addresses a minute.
	refreshBatch = 32
	refreshGap   = 10 * time.Millisecond
)

// refreshItem is one due refresh in the queue.
type refreshItem struct {
	due  time.Time
	addr netip.Addr
	ann  *announcement // stale once a.addrs[addr] != ann or ann.due != due
}

// refreshQueue is a min-heap of refreshes by due time.
type refreshQueue []refreshItem

func (q refreshQueue) Len() int           { return len(q) }
func (q refreshQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q refreshQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *refreshQueue) Push(x any)        { *q = append(*q, x.(refreshItem)) }
func (q *refreshQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}

// scheduleRefreshLocked sets when ann (announcing addr) is refreshed next: at a
// random point of the first interval after from when first is true, else one
// interval (± jitter) after from. It starts the refresh goroutine if needed.
func (a *Announcer) scheduleRefreshLocked(addr netip.Addr, ann *announcement, from time.Time, first bool) {
	if a.refresh <= 0 || a.closed {
		return
	}
	var d time.Duration
	if first {
		d = time.Duration((1 - a.random()) * float64(a.refresh)) // (0, interval]
	} else {
		d = time.Duration((1 + refreshJitter*(2*a.random()-1)) * float64(a.refresh))
	}
	ann.due = from.Add(max(d, time.Millisecond))
	wake := a.refreshQ.Len() == 0 || ann.due.Before(a.refreshQ[0].due)
	heap.Push(&a.refreshQ, refreshItem{due: ann.due, addr: addr, ann: ann})
	if !a.refreshing {
		a.refreshing = true
		a.wg.Go(a.refreshLoop)
	} else if wake {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
}

// refreshTask is one refresh to send.
type refreshTask struct {
	r    *Responder
	addr netip.Addr
	ann  *announcement
}

// dueRefreshesLocked pops up to refreshBatch refreshes due at now, schedules
// their next ones, and returns them with the time the next one falls due (zero
// if none).
func (a *Announcer) dueRefreshesLocked(now time.Time) ([]refreshTask, time.Time) {
	var tasks []refreshTask
	for a.refreshQ.Len() > 0 && len(tasks) < refreshBatch {
		it := a.refreshQ[0]
		if it.due.After(now) {
			break
		}
		heap.Pop(&a.refreshQ)
		if a.addrs[it.addr] != it.ann || !it.ann.due.Equal(it.due) {
			continue // withdrawn, or taken again
		}
		l := a.links[it.ann.iface]
		if l == nil || *l.slot(it.addr) == nil {
			continue
		}
		tasks = append(tasks, refreshTask{r: *l.slot(it.addr), addr: it.addr, ann: it.ann})
		a.scheduleRefreshLocked(it.addr, it.ann, now, false)
	}
	var next time.Time
	if a.refreshQ.Len() > 0 {
		next = a.refreshQ[0].due
	}
	return tasks, next
}

// refreshLoop sends periodic refreshes until the Announcer is closed. Frames go
// out without a.mu held, so Set never waits for a batch.
func (a *Announcer) refreshLoop() {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-a.quit:
			return
		case <-a.kick:
		case <-t.C:
		}
		a.mu.Lock()
		tasks, next := a.dueRefreshesLocked(time.Now())
		a.mu.Unlock()
		for _, task := range tasks {
			if err := task.r.gratuitous(task.addr, &task.r.stats.refresh); err != nil && a.current(task.addr, task.ann) {
				a.log.Error(err, "Refreshing announcement failed", "addr", task.addr, "interface", task.ann.iface)
			}
		}
		wait := a.refresh // nothing queued: a kick comes first
		if !next.IsZero() {
			wait = time.Until(next)
		}
		if len(tasks) == refreshBatch {
			wait = max(wait, refreshGap)
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(wait)
	}
}

// current reports whether ann still announces addr.
func (a *Announcer) current(addr netip.Addr, ann *announcement) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addrs[addr] == ann
}

// Reannounce sends one round of gratuitous announcements of addr now, from the
// interface it is announced on: for a speaker that keeps an address another host
// also claims, so that caches and the other host hear it again.
func (a *Announcer) Reannounce(addr netip.Addr) error {
	addr = normalize(addr)
	a.mu.Lock()
	ann := a.addrs[addr]
	var r *Responder
	if ann != nil {
		if l := a.links[ann.iface]; l != nil {
			r = *l.slot(addr)
		}
	}
	closed := a.closed
	a.mu.Unlock()
	switch {
	case closed:
		return fmt.Errorf("reannounce %s: %w", addr, net.ErrClosed)
	case r == nil:
		return fmt.Errorf("reannounce %s: %w", addr, errNotAnnounced)
	}
	return r.Gratuitous(addr)
}

// errNotAnnounced: the address is not announced.
var errNotAnnounced = errors.New("address not announced")

// updateOwnMACsLocked publishes the hardware addresses of the links in use.
func (a *Announcer) updateOwnMACsLocked() {
	m := make(map[string]bool, len(a.links))
	for _, l := range a.links {
		m[string(l.ifi.HardwareAddr)] = true
	}
	a.ownMACs.Store(&m)
}

// isOwnMAC reports whether mac belongs to a link the Announcer uses.
func (a *Announcer) isOwnMAC(mac net.HardwareAddr) bool {
	m := a.ownMACs.Load()
	return m != nil && (*m)[string(mac)]
}
