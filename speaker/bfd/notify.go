package bfd

import (
	"net/netip"
	"sync"
)

// notifier delivers OnChange calls in order from its own goroutine, so the
// loop never waits for the caller.
type notifier struct {
	mu    sync.Mutex
	queue []note
	wake  chan struct{}
}

type note struct {
	peer netip.Addr
	up   bool
}

func (n *notifier) init() { n.wake = make(chan struct{}, 1) }

func (n *notifier) push(peer netip.Addr, up bool) {
	n.mu.Lock()
	n.queue = append(n.queue, note{peer, up})
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// run delivers notes until stop; notes queued by then are delivered first.
func (n *notifier) run(wg *sync.WaitGroup, stop <-chan struct{}, f func(netip.Addr, bool)) {
	defer wg.Done()
	for {
		n.mu.Lock()
		q := n.queue
		n.queue = nil
		n.mu.Unlock()
		for _, e := range q {
			if f != nil {
				f(e.peer, e.up)
			}
		}
		if len(q) > 0 {
			continue
		}
		select {
		case <-stop:
			return
		case <-n.wake:
		}
	}
}
