package layer2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/mdlayher/packet"
)

const (
	// DefaultProbeWait is how long a probe waits for an answer when
	// ProbeOptions.Wait is zero. Hosts on a LAN answer ARP and Neighbor
	// Solicitations from the kernel within a millisecond or so; 100 ms leaves two
	// orders of magnitude for busy hosts and software switches while keeping the
	// first announcement inside the 200 ms "IP assigned → ARP answered" budget
	// together with the rest of the pipeline. RFC 5227's PROBE_WAIT of 1-3 s is
	// for hosts choosing their own address, not for a LoadBalancer taking one.
	DefaultProbeWait = 100 * time.Millisecond

	// DefaultProbeCount is how many probes are sent, spread over the wait, when
	// ProbeOptions.Count is zero: one lost frame must not make a speaker steal an
	// address, and the second probe still leaves half the wait for its answer.
	DefaultProbeCount = 2

	// readErrorBackoff is the pause after a failed read. A packet socket reports
	// ENETDOWN once when its interface goes down and works again when it comes up;
	// the pause keeps a socket stuck in error from spinning a CPU.
	readErrorBackoff = 100 * time.Millisecond
)

var (
	// zeroMAC is the all-zeroes hardware address ARP probes and announcements
	// carry as their target (RFC 5227, section 2.1.1).
	zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

	// broadcastMAC is the Ethernet broadcast address.
	broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

// A Responder answers ARP or NDP requests on one interface for a set of announced
// addresses, none of which needs to be configured on the interface. It also sends
// gratuitous announcements and probes. Create one with NewARP, NewNDP, DialARP or
// DialNDP, call Start, and Close it when done. Its methods are safe for concurrent
// use.
type Responder struct {
	ifi   *net.Interface
	conn  net.PacketConn
	proto protocol
	stats counters

	// log receives read and write failures of the serving loop. The zero Logger
	// discards; the Announcer sets one before Start.
	log logr.Logger
	// conflicts, when not nil, receives Conflicts: other hosts claiming an
	// announced address. ownMAC, when not nil, reports whether a hardware address
	// is this node's, so that frames from its other interfaces are no claim. The
	// Announcer sets both before Start.
	conflicts chan<- Conflict
	ownMAC    func(net.HardwareAddr) bool

	mu sync.Mutex
	// mu guards the following fields, and the protocol's join/leave state.
	addrs  map[netip.Addr]struct{}
	probes map[netip.Addr]map[*probeWaiter]struct{}
	closed bool
	// lastReport is when a Conflict was last reported for an announced address.
	lastReport map[netip.Addr]time.Time

	started   atomic.Bool
	closeOnce sync.Once
	done      chan struct{}
	wg        sync.WaitGroup
}

// protocol is what differs between ARP and NDP.
type protocol interface {
	// family names the address family, for errors.
	family() string
	// valid reports whether addr can be announced by this protocol.
	valid(addr netip.Addr) bool
	// handle processes one received frame and says why it was not answered.
	handle(r *Responder, frame []byte) (dropReason, error)
	// gratuitous sends one round of unsolicited announcements of addr and
	// returns how many frames it sent.
	gratuitous(r *Responder, addr netip.Addr) (int, error)
	// probe sends one probe for addr.
	probe(r *Responder, addr netip.Addr) error
	// join and leave are called with r.mu held when addr enters or leaves the
	// announced set.
	join(addr netip.Addr) error
	leave(addr netip.Addr) error
	// close releases what the protocol holds besides the packet socket.
	close() error
}

func newResponder(ifi *net.Interface, conn net.PacketConn, p protocol) (*Responder, error) {
	if ifi == nil {
		return nil, errors.New("layer2: nil interface")
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("layer2: interface %q has no Ethernet hardware address", ifi.Name)
	}
	return &Responder{
		ifi:        ifi,
		conn:       conn,
		proto:      p,
		addrs:      make(map[netip.Addr]struct{}),
		probes:     make(map[netip.Addr]map[*probeWaiter]struct{}),
		lastReport: make(map[netip.Addr]time.Time),
		done:       make(chan struct{}),
	}, nil
}

// Interface returns the interface the Responder serves.
func (r *Responder) Interface() *net.Interface { return r.ifi }

// Start starts answering requests. Calls after the first do nothing.
func (r *Responder) Start() {
	if r.started.Swap(true) {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.serve()
	}()
}

// Close stops answering, closes the socket and waits for the serving goroutine.
// It is safe to call more than once; later calls return nil.
func (r *Responder) Close() error {
	err := net.ErrClosed
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		close(r.done)
		err = errors.Join(r.conn.Close(), r.proto.close())
		r.wg.Wait()
	})
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("close %s responder on %s: %w", r.proto.family(), r.ifi.Name, err)
	}
	return nil
}

// Add starts answering for addr. Adding an announced address does nothing.
func (r *Responder) Add(addr netip.Addr) error {
	addr = normalize(addr)
	if !r.proto.valid(addr) {
		return fmt.Errorf("add %s: not an %s unicast address", addr, r.proto.family())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("add %s: %w", addr, net.ErrClosed)
	}
	if _, ok := r.addrs[addr]; ok {
		return nil
	}
	if err := r.proto.join(addr); err != nil {
		return fmt.Errorf("add %s: %w", addr, err)
	}
	r.addrs[addr] = struct{}{}
	return nil
}

// Remove stops answering for addr. The address stops being answered even when
// Remove returns an error (from leaving its multicast group).
func (r *Responder) Remove(addr netip.Addr) error {
	addr = normalize(addr)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.addrs[addr]; !ok {
		return nil
	}
	delete(r.addrs, addr)
	delete(r.lastReport, addr)
	if r.closed {
		return nil
	}
	if err := r.proto.leave(addr); err != nil {
		return fmt.Errorf("remove %s: %w", addr, err)
	}
	return nil
}

// Announced returns the announced addresses, sorted.
func (r *Responder) Announced() []netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]netip.Addr, 0, len(r.addrs))
	for a := range r.addrs {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// announced reports whether addr is in the announced set.
func (r *Responder) announced(addr netip.Addr) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.addrs[addr]
	return ok
}

// Gratuitous sends one round of unsolicited announcements of addr, which must be
// announced: for IPv4 an ARP announcement in request form and one in reply form,
// for IPv6 an unsolicited Neighbor Advertisement with the override flag to the
// all-nodes group.
func (r *Responder) Gratuitous(addr netip.Addr) error {
	return r.gratuitous(addr, &r.stats.gratuitous)
}

// gratuitous sends one round of unsolicited announcements of addr and adds the
// frames sent to counter.
func (r *Responder) gratuitous(addr netip.Addr, counter *atomic.Uint64) error {
	addr = normalize(addr)
	if !r.announced(addr) {
		return fmt.Errorf("gratuitous announcement of %s: address not announced", addr)
	}
	n, err := r.proto.gratuitous(r, addr)
	counter.Add(uint64(n))
	if err != nil {
		return fmt.Errorf("gratuitous announcement of %s on %s: %w", addr, r.ifi.Name, err)
	}
	return nil
}

// Stats returns a snapshot of the Responder's counters.
func (r *Responder) Stats() Stats {
	s := r.stats.snapshot()
	if claims := r.stats.claims.Load(); r.proto.family() == "IPv4" {
		s.ForeignClaimsIPv4 = claims
	} else {
		s.ForeignClaimsIPv6 = claims
	}
	return s
}

// ProbeOptions tune a probe.
type ProbeOptions struct {
	// Wait is how long to wait for an answer after the first probe is sent.
	// Zero means DefaultProbeWait.
	Wait time.Duration
	// Count is how many probes to send, spread evenly over Wait. Zero means
	// DefaultProbeCount.
	Count int
	// Ignore lists hardware addresses whose answers are no conflict: those of
	// the other speakers, which may still announce an address being handed over.
	Ignore []net.HardwareAddr
}

// probeWaiter is one running probe, waiting for some other host to claim addr.
type probeWaiter struct {
	ignore map[string]bool
	found  chan net.HardwareAddr // capacity 1; the first claimant wins
}

// Probe asks the link whether another host uses addr: for IPv4 with ARP probes
// (RFC 5227: sender address 0.0.0.0), for IPv6 with duplicate address detection
// Neighbor Solicitations (RFC 4862: source ::, to the solicited-node group). It
// returns the hardware address of the first host, other than this interface and
// those in opts.Ignore, that answered or otherwise claimed the address within the
// wait, or nil if none did. The Responder must have been started.
func (r *Responder) Probe(ctx context.Context, addr netip.Addr, opts ProbeOptions) (net.HardwareAddr, error) {
	addr = normalize(addr)
	if !r.proto.valid(addr) {
		return nil, fmt.Errorf("probe %s: not an %s unicast address", addr, r.proto.family())
	}
	if !r.started.Load() {
		// Without the serving loop no answer would ever be seen, and the probe
		// would wrongly report the address free.
		return nil, fmt.Errorf("probe %s: responder not started", addr)
	}
	wait, count := opts.Wait, opts.Count
	if wait <= 0 {
		wait = DefaultProbeWait
	}
	if count <= 0 {
		count = DefaultProbeCount
	}
	w := &probeWaiter{ignore: make(map[string]bool), found: make(chan net.HardwareAddr, 1)}
	for _, mac := range opts.Ignore {
		w.ignore[string(mac)] = true
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, fmt.Errorf("probe %s: %w", addr, net.ErrClosed)
	}
	// Another host's probe or DAD for addr goes to its solicited-node group:
	// without joining it, a NIC or switch filtering multicast hides the answer.
	if err := r.proto.join(addr); err != nil {
		r.mu.Unlock()
		return nil, fmt.Errorf("probe %s: %w", addr, err)
	}
	if r.probes[addr] == nil {
		r.probes[addr] = make(map[*probeWaiter]struct{})
	}
	r.probes[addr][w] = struct{}{}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.probes[addr], w)
		if len(r.probes[addr]) == 0 {
			delete(r.probes, addr)
		}
		if !r.closed {
			_ = r.proto.leave(addr) // counted: an announced addr stays joined
		}
		r.mu.Unlock()
	}()

	send := func() error {
		if err := r.proto.probe(r, addr); err != nil {
			return fmt.Errorf("probe %s on %s: %w", addr, r.ifi.Name, err)
		}
		r.stats.probes.Add(1)
		return nil
	}
	if err := send(); err != nil {
		return nil, err
	}
	end := time.NewTimer(wait)
	defer end.Stop()
	tick := time.NewTicker(max(wait/time.Duration(count), time.Millisecond))
	defer tick.Stop()
	found := func(mac net.HardwareAddr) (net.HardwareAddr, error) {
		r.stats.conflicts.Add(1)
		return mac, nil
	}
	for sent := 1; ; {
		select {
		case mac := <-w.found:
			return found(mac)
		case <-tick.C:
			if sent < count {
				if err := send(); err != nil {
					return nil, err
				}
				sent++
			}
		case <-end.C:
			select {
			case mac := <-w.found:
				return found(mac)
			default:
				return nil, nil
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("probe %s: %w", addr, ctx.Err())
		case <-r.done:
			return nil, fmt.Errorf("probe %s: %w", addr, net.ErrClosed)
		}
	}
}

// observe tells running probes that the host with hardware address mac claims
// addr: it answered for it, announced it, or probes for it too.
func (r *Responder) observe(addr netip.Addr, mac net.HardwareAddr) {
	if bytes.Equal(mac, r.ifi.HardwareAddr) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for w := range r.probes[addr] {
		if w.ignore[string(mac)] {
			continue
		}
		select {
		case w.found <- slices.Clone(mac):
		default:
		}
	}
}

// serve reads and handles frames until the Responder is closed.
func (r *Responder) serve() {
	// Room for a full standard frame plus a VLAN tag; ARP and NDP requests are
	// far smaller, and anything longer is truncated, not misread.
	buf := make([]byte, max(r.ifi.MTU, 1500)+18)
	for {
		n, _, err := r.conn.ReadFrom(buf)
		if err != nil {
			select {
			case <-r.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.stats.errors.Add(1)
			r.log.Error(err, "Reading from packet socket failed", "interface", r.ifi.Name, "family", r.proto.family())
			select {
			case <-r.done:
				return
			case <-time.After(readErrorBackoff):
			}
			continue
		}
		if _, err := r.handle(buf[:n]); err != nil {
			r.log.Error(err, "Answering request failed", "interface", r.ifi.Name)
		}
	}
}

// handle processes one received frame, counts the outcome and says why the
// frame was not answered (dropNone when it was).
func (r *Responder) handle(frame []byte) (dropReason, error) {
	reason, err := r.proto.handle(r, frame)
	if reason != dropNone {
		r.stats.drops[reason].Add(1)
	}
	return reason, err
}

// send writes one Ethernet frame to dst, counting failures.
func (r *Responder) send(frame []byte, dst net.HardwareAddr) error {
	if _, err := r.conn.WriteTo(frame, &packet.Addr{HardwareAddr: dst}); err != nil {
		r.stats.errors.Add(1)
		return err
	}
	return nil
}

// normalize puts an address in the one form used as a map key: IPv4 addresses
// unmapped, no zone.
func normalize(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }
