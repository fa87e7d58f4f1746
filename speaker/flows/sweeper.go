package flows

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
)

// Table deletes conntrack entries: the kernel's (Conntrack) or a test's.
type Table interface {
	// DeleteUntranslated deletes the entries of TCP flows to one of addrs
	// that are waiting for their first answer (SYN_SENT) and whose reply
	// would come from the address itself (no DNAT), and returns how many
	// there were for each address.
	DeleteUntranslated(addrs []netip.Addr) (map[netip.Addr]int, error)
}

// Sweeper deletes the untranslated flows to every address for Window after the
// speaker first sees it. Observe tells it the addresses; Run sweeps.
type Sweeper struct {
	table Table
	log   logr.Logger
	now   func() time.Time
	// Deleted, when set, is called with each sweep's deletions (metrics).
	Deleted func(addr netip.Addr, n int)

	mu        sync.Mutex
	firstSeen map[netip.Addr]time.Time
	kick      chan struct{}
}

// NewSweeper returns a Sweeper deleting from table.
func NewSweeper(table Table, log logr.Logger) *Sweeper {
	return &Sweeper{table: table, log: log, now: time.Now, firstSeen: map[netip.Addr]time.Time{}, kick: make(chan struct{}, 1)}
}

// Observe records the addresses of every LoadBalancer Service: one not seen
// before is young from now; one no longer listed is forgotten (it is young
// again if it comes back).
func (s *Sweeper) Observe(addrs []netip.Addr) {
	now := s.now()
	s.mu.Lock()
	added := false
	listed := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		listed[a] = true
		if _, ok := s.firstSeen[a]; !ok {
			s.firstSeen[a] = now
			added = true
		}
	}
	for a := range s.firstSeen {
		if !listed[a] {
			delete(s.firstSeen, a)
		}
	}
	s.mu.Unlock()
	if added {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// Run sweeps as Due says until ctx ends. Without the permission to change
// conntrack (CAP_NET_ADMIN) it says so once and stops: the speaker works
// without it, as it did before.
func (s *Sweeper) Run(ctx context.Context) {
	var last time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		young, next := Due(s.firstSeen, last, s.now())
		s.mu.Unlock()
		if len(young) > 0 {
			last = s.now()
			deleted, err := s.table.DeleteUntranslated(young)
			for a, n := range deleted {
				if n == 0 {
					continue
				}
				s.log.Info("Deleted connections to a new address that kube-proxy had not yet translated; their next packets reach the Service", "address", a.String(), "connections", n)
				if s.Deleted != nil {
					s.Deleted(a, n)
				}
			}
			if errors.Is(err, errors.ErrUnsupported) {
				s.log.Info("No connection tracking to clean on this system")
				return
			}
			if errors.Is(err, syscall.EPERM) {
				s.log.Error(err, "Cannot delete untranslated conntrack entries (the speaker needs CAP_NET_ADMIN); a client connecting in a new address's first seconds, before kube-proxy has its rules, may time out for up to 2 minutes")
				return
			}
			if err != nil {
				s.log.Error(err, "Deleting untranslated conntrack entries; trying again at the next sweep")
			}
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(s.now()), 0)
		}
		timer.Reset(wait) // since Go 1.23 a Reset timer delivers no stale tick
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-timer.C:
		}
	}
}
