package bfd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Peer is a BFD session the Manager should run.
type Peer struct {
	// Address is the peer's address, the key of the session; IPv4-mapped
	// IPv6 addresses are taken as IPv4.
	Address netip.Addr
	// Local is the source address; the zero Addr lets the kernel choose.
	// Changing it replaces the session.
	Local netip.Addr
	// MinRx is the fastest we accept the peer's packets (RequiredMinRx);
	// MinTx how often we would like to send (DesiredMinTx). Zero means 300 ms.
	MinRx, MinTx time.Duration
	// Multiplier is how many of our intervals the peer waits before it
	// declares us down. Zero means 3.
	Multiplier uint8
}

// Defaults for Peer's zero fields: with them a dead peer is noticed within
// 900 ms, the figure herald is built around.
const (
	DefaultInterval   = 300 * time.Millisecond
	DefaultMultiplier = 3
)

// PeerStatus is a snapshot of one session.
type PeerStatus struct {
	Address, Local netip.Addr
	State          State // local state
	RemoteState    State
	// Since is when State last changed (or the session was created).
	Since time.Time
	// LastDiag is why the session last went down (DiagNone if never);
	// RemoteDiag the diagnostic in the peer's last packet.
	LastDiag, RemoteDiag Diag
	// The discriminators; RemoteDiscriminator is zero until the peer is heard.
	LocalDiscriminator, RemoteDiscriminator uint32
	// TxInterval is the negotiated transmit interval (before jitter),
	// DetectionTime how long silence takes to bring the session down.
	TxInterval, DetectionTime time.Duration
	PacketsIn, PacketsOut     uint64
	// Polling reports whether a Poll Sequence of ours (a timer change) is
	// under way.
	Polling bool
	// Removing reports whether the session was removed and is telling the
	// peer AdminDown before it is forgotten.
	Removing bool
}

// Config configures a Manager.
type Config struct {
	// Logger receives state changes (Info) and dropped packets (Debug);
	// nil discards.
	Logger *slog.Logger
	// OnChange is told when a session comes Up (up=true) and when a session
	// that was Up fails (up=false): its Detection Time expired or the peer
	// signalled Down. A peer that goes AdminDown is not a failure (RFC 5882
	// §3.2): no call, and the next Up may repeat up=true. Removed sessions
	// report nothing. Calls come in order from one goroutine of the
	// Manager's, never from the caller's; it must not block for long nor
	// call Close or Stop (they wait for it). None come after Stop returns.
	OnChange func(peer netip.Addr, up bool)
	// Conn is the network; nil opens NewUDP(UDP). The Manager owns it and
	// closes it.
	Conn Conn
	// UDP configures the UDP Conn when Conn is nil.
	UDP UDPConfig
}

// Manager runs BFD sessions: one receive goroutine, one timer loop and one
// notifier, all ended by Close or Stop.
type Manager struct {
	log      *slog.Logger
	conn     Conn
	onChange func(netip.Addr, bool)
	now      func() time.Time

	kick     chan struct{} // wakes the loop when a deadline may be earlier
	stop     chan struct{} // closed by shutdown
	stopOnce sync.Once
	wg       sync.WaitGroup
	notes    notifier

	// mu guards the following fields.
	mu        sync.Mutex
	byAddr    map[netip.Addr]*session // configured sessions
	byDisc    map[uint32]*session     // those and removed ones still sending AdminDown
	armed     time.Time               // the deadline the loop's timer is set to
	closing   bool
	drained   chan struct{} // closed when closing and byDisc is empty
	isDrained bool
	rxDrops   [dropReasonEnd]uint64
	closeErr  error
}

// session is the Manager's record of one Session.
type session struct {
	peer      Peer
	s         *Session
	tx        Sender
	next      time.Time
	since     time.Time
	in, out   uint64
	adminLeft int  // >0: removed; AdminDown packets still to send
	up        bool // what OnChange last said
	buf       [PacketLen]byte
}

// New starts a Manager with no sessions.
func New(cfg Config) (*Manager, error) {
	m, err := newManager(cfg, time.Now)
	if err != nil {
		return nil, err
	}
	m.wg.Add(3)
	go m.recvLoop()
	go m.timerLoop()
	go m.notes.run(&m.wg, m.stop, m.onChange)
	return m, nil
}

// newManager builds a Manager without starting its goroutines: unit tests
// drive it with a fake Conn and clock.
func newManager(cfg Config, now func() time.Time) (*Manager, error) {
	conn := cfg.Conn
	if conn == nil {
		u, err := NewUDP(cfg.UDP)
		if err != nil {
			return nil, err
		}
		conn = u
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{
		log:      log,
		conn:     conn,
		onChange: cfg.OnChange,
		now:      now,
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		byAddr:   map[netip.Addr]*session{},
		byDisc:   map[uint32]*session{},
		drained:  make(chan struct{}),
	}
	m.notes.init()
	return m, nil
}

// normalize fills a Peer's defaults and checks it.
func normalize(p Peer) (Peer, error) {
	p.Address, p.Local = p.Address.Unmap(), p.Local.Unmap()
	if !p.Address.IsValid() || p.Address.IsUnspecified() || p.Address.IsMulticast() {
		return p, fmt.Errorf("bfd: peer address %v is not a unicast address", p.Address)
	}
	if p.Local.IsValid() && p.Local.Is4() != p.Address.Is4() {
		return p, fmt.Errorf("bfd: peer %s: local address %s is of the other family", p.Address, p.Local)
	}
	if p.MinRx == 0 {
		p.MinRx = DefaultInterval
	}
	if p.MinTx == 0 {
		p.MinTx = DefaultInterval
	}
	if p.Multiplier == 0 {
		p.Multiplier = DefaultMultiplier
	}
	if p.MinRx < time.Microsecond || p.MinTx < time.Microsecond {
		return p, fmt.Errorf("bfd: peer %s: intervals must be at least 1µs (rx %v, tx %v)", p.Address, p.MinRx, p.MinTx)
	}
	return p, nil
}

func (p Peer) timers() Timers {
	return Timers{DesiredMinTx: p.MinTx, RequiredMinRx: p.MinRx, DetectMult: p.Multiplier}
}

// key is the map key of a peer address: zones are not part of it, as
// received link-local sources carry the zone of the receiving interface.
func key(a netip.Addr) netip.Addr { return a.WithZone("") }

// Set makes the sessions those of peers: new peers get a session that starts
// sending at once; peers whose timers changed keep their session (a Poll
// Sequence when Up); peers no longer listed are told AdminDown for about a
// Detection Time and then forgotten. An invalid or repeated peer makes Set
// change nothing; a peer whose socket cannot be opened is left out and
// reported in the error while the others are applied.
func (m *Manager) Set(ctx context.Context, peers []Peer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	want := make(map[netip.Addr]Peer, len(peers))
	var errs []error
	for _, p := range peers {
		p, err := normalize(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := want[key(p.Address)]; dup {
			errs = append(errs, fmt.Errorf("bfd: peer %s listed twice", p.Address))
			continue
		}
		want[key(p.Address)] = p
	}
	if len(errs) > 0 {
		// A list with a mistake changes nothing: dropping the sessions of
		// the peers it got wrong would tear down their clients.
		return errors.Join(errs...)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return errors.New("bfd: Set after Close")
	}
	now := m.now()
	for k, ss := range m.byAddr {
		if p, ok := want[k]; !ok || p.Local != ss.peer.Local {
			m.removeLocked(now, ss)
		}
	}
	for k, p := range want {
		if ss := m.byAddr[k]; ss != nil {
			if ss.peer != p {
				ss.peer = p
				m.applyLocked(now, ss, ss.s.SetTimers(now, p.timers()))
			}
			continue
		}
		if err := m.addLocked(now, p); err != nil {
			errs = append(errs, err)
		}
	}
	m.kickLocked()
	return errors.Join(errs...)
}

func (m *Manager) addLocked(now time.Time, p Peer) error {
	tx, err := m.conn.Dial(p.Local, p.Address)
	if err != nil {
		return fmt.Errorf("bfd: peer %s: %w", p.Address, err)
	}
	disc := rand.Uint32()
	for disc == 0 || m.byDisc[disc] != nil {
		disc = rand.Uint32()
	}
	ss := &session{peer: p, s: NewSession(disc, p.timers(), now), tx: tx, since: now}
	m.byAddr[key(p.Address)] = ss
	m.byDisc[disc] = ss
	m.log.Info("bfd session added", "peer", p.Address, "discriminator", disc,
		"minRx", p.MinRx, "minTx", p.MinTx, "multiplier", p.Multiplier)
	m.applyLocked(now, ss, ss.s.Advance(now))
	return nil
}

// removeLocked takes a session out of the configuration: AdminDown is sent
// for about a Detection Time (Detect Mult packets at the negotiated pace,
// RFC 5880 §6.8.16), unless the peer never heard of us.
func (m *Manager) removeLocked(now time.Time, ss *session) {
	if m.byAddr[key(ss.peer.Address)] == ss {
		delete(m.byAddr, key(ss.peer.Address))
	}
	if ss.adminLeft > 0 {
		return
	}
	if ss.s.RemoteDiscriminator() == 0 {
		m.forgetLocked(ss)
		return
	}
	ss.adminLeft = max(int(ss.peer.Multiplier), 1)
	m.applyLocked(now, ss, ss.s.SetAdminDown(now, DiagAdminDown))
}

func (m *Manager) forgetLocked(ss *session) {
	delete(m.byDisc, ss.s.LocalDiscriminator())
	if err := ss.tx.Close(); err != nil {
		m.log.Warn("bfd: closing a session's socket", "peer", ss.peer.Address, "err", err)
	}
	m.log.Info("bfd session removed", "peer", ss.peer.Address)
	m.checkDrainedLocked()
}

// checkDrainedLocked tells Close when the last AdminDown went out.
func (m *Manager) checkDrainedLocked() {
	if m.closing && len(m.byDisc) == 0 && !m.isDrained {
		m.isDrained = true
		close(m.drained)
	}
}

// Status returns a snapshot of every session, by address.
func (m *Manager) Status() []PeerStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]PeerStatus, 0, len(m.byDisc))
	for _, ss := range m.byDisc {
		s := ss.s
		out = append(out, PeerStatus{
			Address: ss.peer.Address, Local: ss.peer.Local,
			State: s.State(), RemoteState: s.RemoteState(), Since: ss.since,
			LastDiag: s.LastDownDiag(), RemoteDiag: s.RemoteDiag(),
			LocalDiscriminator: s.LocalDiscriminator(), RemoteDiscriminator: s.RemoteDiscriminator(),
			TxInterval: s.TxInterval(), DetectionTime: s.DetectionTime(),
			PacketsIn: ss.in, PacketsOut: ss.out, Polling: s.Polling(), Removing: ss.adminLeft > 0,
		})
	}
	slices.SortFunc(out, func(a, b PeerStatus) int {
		return cmp.Or(a.Address.Compare(b.Address), cmp.Compare(a.LocalDiscriminator, b.LocalDiscriminator))
	})
	return out
}

// Close ends the Manager gracefully: every session is set AdminDown and told
// to the peer for about a Detection Time (Detect Mult packets, 2 × 300 ms
// with the defaults), so peers go Down with "Neighbor Signaled Session Down"
// and their clients keep routing through us (RFC 5882 §3.2) — what a node
// shutting down on purpose, or restarting gracefully, wants. It returns when
// those packets are sent, or early when ctx ends (the rest are not sent),
// and then stops like Stop. Safe to call twice.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if !m.closing {
		m.closing = true
		now := m.now()
		for _, ss := range m.byAddr {
			m.removeLocked(now, ss)
		}
		m.checkDrainedLocked()
		m.kickLocked()
	}
	m.mu.Unlock()
	var err error
	select {
	case <-m.drained:
	case <-ctx.Done():
		err = fmt.Errorf("bfd: close: AdminDown not fully sent: %w", ctx.Err())
	}
	return errors.Join(err, m.Stop())
}

// Stop ends the Manager at once without telling the peers: to them it is as
// if this node died, and they declare "Control Detection Time Expired" within
// their Detection Time and tear down what depends on it. Use it when the
// node is not expected back soon, or in tests of failure; use Close
// otherwise. Safe to call twice, and after Close.
func (m *Manager) Stop() error {
	m.stopOnce.Do(func() {
		close(m.stop)
		err := m.conn.Close()
		m.wg.Wait()
		m.mu.Lock()
		defer m.mu.Unlock()
		m.closing = true
		for _, ss := range m.byDisc {
			err = errors.Join(err, ss.tx.Close())
		}
		clear(m.byDisc)
		clear(m.byAddr)
		m.checkDrainedLocked() // a Close waiting, or coming, need not wait
		m.closeErr = err
	})
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closeErr
}
