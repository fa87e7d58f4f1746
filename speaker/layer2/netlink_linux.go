//go:build linux

package layer2

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	// resubscribeBackoff is the pause before renewing netlink subscriptions after
	// one failed (usually ENOBUFS: the kernel dropped events because the reader
	// fell behind). Renewing at once could fail the same way in a storm.
	resubscribeBackoff = 250 * time.Millisecond

	// subscribeBufferSize is the receive buffer asked for each subscription.
	// Nodes create and delete a veth per pod; a burst of those must not overflow
	// the kernel's default of about 200 KiB before we read it.
	subscribeBufferSize = 1 << 20
)

// ReadTopology reads links, addresses and the main table's default routes from
// the kernel, in the network namespace of the calling thread.
func ReadTopology() (Topology, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return Topology{}, fmt.Errorf("list links: %w", err)
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return Topology{}, fmt.Errorf("list addresses: %w", err)
	}
	var t Topology
	byIndex := make(map[int]int, len(links)) // link index → position in t.Links
	for _, l := range links {
		a := l.Attrs()
		byIndex[a.Index] = len(t.Links)
		t.Links = append(t.Links, Link{
			Name:         a.Name,
			Index:        a.Index,
			HardwareAddr: a.HardwareAddr,
			Kind:         l.Type(),
			Up: a.Flags&net.FlagUp != 0 &&
				a.OperState != netlink.OperDown && a.OperState != netlink.OperLowerLayerDown,
			Loopback: a.Flags&net.FlagLoopback != 0,
		})
	}
	for _, a := range addrs {
		i, ok := byIndex[a.LinkIndex]
		if !ok || a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		ip = ip.Unmap()
		if p := netip.PrefixFrom(ip, ones); p.IsValid() {
			t.Links[i].Prefixes = append(t.Links[i].Prefixes, p)
		}
	}
	for _, fam := range []struct {
		family int
		name   *string
	}{{netlink.FAMILY_V4, &t.DefaultIPv4}, {netlink.FAMILY_V6, &t.DefaultIPv6}} {
		idx, err := defaultRouteLink(fam.family)
		if err != nil {
			return Topology{}, err
		}
		if i, ok := byIndex[idx]; ok {
			*fam.name = t.Links[i].Name
		}
	}
	return t, nil
}

// defaultRouteLink returns the link index of the main table's preferred (lowest
// metric) default route of family, or 0.
func defaultRouteLink(family int) (int, error) {
	routes, err := netlink.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return 0, fmt.Errorf("list routes: %w", err)
	}
	best, bestPrio := 0, 0
	for _, r := range routes {
		if !isDefault(r.Dst) {
			continue
		}
		idx := r.LinkIndex
		if idx == 0 && len(r.MultiPath) > 0 {
			idx = r.MultiPath[0].LinkIndex
		}
		if idx == 0 {
			continue
		}
		if best == 0 || r.Priority < bestPrio || (r.Priority == bestPrio && idx < best) {
			best, bestPrio = idx, r.Priority
		}
	}
	return best, nil
}

// isDefault reports whether dst is a default route's destination.
func isDefault(dst *net.IPNet) bool {
	if dst == nil {
		return true
	}
	ones, _ := dst.Mask.Size()
	return ones == 0
}

// Watch reports changes to links, addresses and default routes in the network
// namespace of the calling thread, through netlink subscriptions. The channel
// receives one value at once, when the subscriptions are in place, so a caller
// that reads the Topology on every value misses nothing; then one after changes.
// Values coalesce: a slow reader gets one value for many changes. When a
// subscription fails (the kernel dropped events for a slow reader) all are
// renewed after a short pause, and a value is sent since changes may have been
// missed. The channel is closed once ctx is done and every goroutine has ended.
func Watch(ctx context.Context) (<-chan struct{}, error) {
	ns, err := threadNetns()
	if err != nil {
		return nil, fmt.Errorf("watch netlink: %w", err)
	}
	out := make(chan struct{}, 1)
	notify := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	s, err := subscribe(ns, notify)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("watch netlink: %w", err)
	}
	notify()
	go func() {
		defer close(out)
		defer ns.Close()
		for {
			select {
			case <-ctx.Done():
				s.stop()
				return
			case <-s.failed:
			}
			// One subscription ended: stop the rest, then renew all of them.
			s.stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(resubscribeBackoff):
				}
				// A failure here is retried until ctx ends: the caller keeps its last
				// Topology meanwhile, which is what fail-static asks for.
				if next, err := subscribe(ns, notify); err == nil {
					s = next
					break
				}
			}
			notify()
		}
	}()
	return out, nil
}

// threadNetns returns the calling thread's network namespace when it differs
// from the process's (a test that locked its thread into a namespace), or
// netns.None() when they are the same. Subscriptions are then opened where they
// stand, without setns(2): that needs CAP_SYS_ADMIN, which the speaker's pod does
// not have (it crash-looped on kind with "failed to set into network namespace").
func threadNetns() (netns.NsHandle, error) {
	thread, err := netns.Get()
	if err != nil {
		return netns.None(), fmt.Errorf("get the thread's network namespace: %w", err)
	}
	process, err := netns.GetFromPath("/proc/self/ns/net")
	if err != nil {
		thread.Close()
		return netns.None(), fmt.Errorf("get the process's network namespace: %w", err)
	}
	defer process.Close()
	if thread.Equal(process) {
		thread.Close()
		return netns.None(), nil
	}
	return thread, nil
}

// subscription is one set of link, address and route subscriptions.
type subscription struct {
	done     chan struct{} // closed to end the subscriptions
	failed   chan struct{} // closed when any of them ends
	failOnce sync.Once
	wg       sync.WaitGroup // the goroutines draining the update channels
}

// stop ends the subscriptions and waits until their channels are drained and
// closed.
func (s *subscription) stop() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.wg.Wait()
}

// subscribe subscribes to link, address and route changes in ns; notify is
// called for each change that can alter a Topology.
func subscribe(ns netns.NsHandle, notify func()) (*subscription, error) {
	s := &subscription{done: make(chan struct{}), failed: make(chan struct{})}
	var nsp *netns.NsHandle // nil: the process's own namespace, no setns
	if ns.IsOpen() {
		nsp = &ns
	}

	links := make(chan netlink.LinkUpdate)
	if err := netlink.LinkSubscribeWithOptions(links, s.done, netlink.LinkSubscribeOptions{
		Namespace: nsp, ReceiveBufferSize: subscribeBufferSize,
	}); err != nil {
		close(s.done)
		return nil, fmt.Errorf("subscribe to links: %w", err)
	}
	drain(s, links, func(netlink.LinkUpdate) bool { return true }, notify)

	addrs := make(chan netlink.AddrUpdate)
	if err := netlink.AddrSubscribeWithOptions(addrs, s.done, netlink.AddrSubscribeOptions{
		Namespace: nsp, ReceiveBufferSize: subscribeBufferSize,
	}); err != nil {
		s.stop()
		return nil, fmt.Errorf("subscribe to addresses: %w", err)
	}
	drain(s, addrs, func(netlink.AddrUpdate) bool { return true }, notify)

	routes := make(chan netlink.RouteUpdate)
	if err := netlink.RouteSubscribeWithOptions(routes, s.done, netlink.RouteSubscribeOptions{
		Namespace: nsp, ReceiveBufferSize: subscribeBufferSize,
	}); err != nil {
		s.stop()
		return nil, fmt.Errorf("subscribe to routes: %w", err)
	}
	// Only default routes feed a Topology; pod routes come and go all the time.
	drain(s, routes, func(u netlink.RouteUpdate) bool { return isDefault(u.Dst) }, notify)
	return s, nil
}

// drain reads ch until netlink closes it (after s.done, or when the subscription
// fails), so the library's reader never blocks on a send, and calls notify for
// relevant updates.
func drain[T any](s *subscription, ch <-chan T, relevant func(T) bool, notify func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.failOnce.Do(func() { close(s.failed) })
		for u := range ch {
			if relevant(u) {
				notify()
			}
		}
	}()
}
