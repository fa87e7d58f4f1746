// Package bgp announces LoadBalancer addresses to BGP routers. It is the only
// package that knows about gobgp: it runs gobgp as a library behind a small
// declarative API (Set the wanted peers and routes; read Status).
//
// Per-peer routes: gobgp v3 only allows per-neighbor export policies for
// route-server clients, and route-server clients never receive locally
// originated paths. So every peer is enslaved to its own VRF (unique route
// distinguisher and route target) and its routes are added to that VRF with
// their own attributes; gobgp sends a VRF's paths, converted back to plain
// unicast, only to the neighbors of that VRF.
//
// Listening: gobgp only opens its listener when the server starts, so peers
// that dial us (Passive) live on a second gobgp server that exists only while
// at least one passive peer is wanted. Nothing listens otherwise.
package bgp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
)

// Peer is one BGP session this node keeps (from a BGPPeer object).
type Peer struct {
	Name            string        // unique key (the BGPPeer object's name)
	Address         netip.Addr    // peer address (IPv4 or IPv6)
	Port            uint16        // 0 → 179
	ASN             uint32        // the peer's AS
	LocalASN        uint32        // our AS for this session (iBGP when equal to ASN)
	HoldTime        time.Duration // 0 → 90 s
	KeepaliveTime   time.Duration // 0 → HoldTime/3
	ConnectRetry    time.Duration // 0 → 1 s (gobgp works in whole seconds, minimum 1)
	Password        string        // TCP MD5 (RFC 2385); "" none
	EBGPMultihopTTL uint8         // 0 → not multihop
	SourceAddress   netip.Addr    // zero → the kernel chooses
	Passive         bool          // do not dial; wait for the peer (only then do we listen)
}

// LargeCommunity is an RFC 8092 large community.
type LargeCommunity struct{ GlobalAdmin, LocalData1, LocalData2 uint32 }

// Route is one prefix sent to a peer, with its attributes.
type Route struct {
	Prefix           netip.Prefix
	NextHop          netip.Addr // this node's address of the prefix's family
	Communities      []uint32   // standard communities (ASN<<16 | value)
	LargeCommunities []LargeCommunity
	LocalPref        uint32 // sent when HasLocalPref or not 0 (only meaningful for iBGP)
	HasLocalPref     bool   // send LocalPref even when it is 0
}

// Desired is the whole wanted state; Set makes it so with minimal changes.
type Desired struct {
	Peers  []Peer
	Routes map[string][]Route // peer name → the routes that peer (and only that peer) is sent
}

// Config configures a Speaker.
type Config struct {
	RouterID   netip.Addr   // IPv4 router ID (the node's IPv4); required
	ListenPort int32        // port for passive peers; 0 → 179. Nothing listens unless a Peer is Passive.
	Logger     *slog.Logger // nil → discard
	OnChange   func()       // called, never blocking the caller, when any session's state changes
}

// PeerStatus is what Status reports about one desired peer.
type PeerStatus struct {
	Name                         string
	Address                      netip.Addr
	State                        string    // "Idle","Connect","Active","OpenSent","OpenConfirm","Established"
	Since                        time.Time // when State was entered
	PrefixesSent                 int       // prefixes currently advertised to this peer
	UpdatesSent, UpdatesReceived uint64    // since the current gobgp neighbor was configured
	LastError                    string    // last problem with this session; cleared when Established
}

// Session states as reported in PeerStatus.State.
const (
	StateIdle        = "Idle"
	StateConnect     = "Connect"
	StateActive      = "Active"
	StateOpenSent    = "OpenSent"
	StateOpenConfirm = "OpenConfirm"
	StateEstablished = "Established"
)

// Speaker keeps BGP sessions and the routes sent on them.
type Speaker struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context // lives until Close; background work stops with it
	cancel context.CancelFunc
	notify chan struct{} // coalesces OnChange calls
	done   sync.WaitGroup

	// setMu serialises changes to gobgp: Set, redials and Close.
	setMu   sync.Mutex
	dialer  *instance // never listens
	passive *instance // nil unless a passive peer is wanted
	// passiveFailed and passiveErr record the last failure to start the
	// listening server.
	passiveFailed time.Time
	passiveErr    error
	peers         map[string]*peer
	gen           uint64 // Set generation, marks what the current Set still wants
	nextVRF       uint32
	closed        bool

	// mu guards session state read by Status and written by gobgp's
	// callbacks, and byAddr, which maps gobgp's neighbor keys to peers.
	mu     sync.Mutex
	byAddr map[string]*peer
	order  []*peer // desired peers sorted by name
}

// instance is one gobgp server.
type instance struct {
	srv    *server.BgpServer
	cancel context.CancelFunc // stops its event watch
}

type peer struct {
	// Owned by setMu.
	cfg        Peer // normalised, valid when configured
	inst       *instance
	vrf        string
	vrfID      uint32
	configured bool // the gobgp neighbor exists
	bad        bool // cfg is invalid
	seen       uint64
	routes     map[netip.Prefix]*installed
	added      time.Time // when the gobgp neighbor was last (re)created

	// Guarded by Speaker.mu.
	name    string
	addr    netip.Addr
	state   string
	since   time.Time
	lastErr string
	sent    int // routes in the VRF, sent while Established
}

type installed struct {
	route Route
	path  *api.Path
	seen  uint64
}

// New starts a Speaker with no peers.
func New(ctx context.Context, cfg Config) (*Speaker, error) {
	if !cfg.RouterID.Is4() {
		return nil, fmt.Errorf("starting BGP speaker: router ID %v is not an IPv4 address", cfg.RouterID)
	}
	if cfg.ListenPort < 0 || cfg.ListenPort > 65535 {
		return nil, fmt.Errorf("starting BGP speaker: listen port %d out of range", cfg.ListenPort)
	}
	if cfg.ListenPort == 0 {
		cfg.ListenPort = 179
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Speaker{
		cfg:    cfg,
		log:    lg,
		ctx:    bg,
		cancel: cancel,
		notify: make(chan struct{}, 1),
		peers:  map[string]*peer{},
		byAddr: map[string]*peer{},
	}
	d, err := s.startInstance(ctx, -1)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("starting BGP speaker: %w", err)
	}
	s.dialer = d
	s.done.Add(1)
	go s.notifier()
	return s, nil
}

func (s *Speaker) notifier() {
	defer s.done.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.notify:
			if s.cfg.OnChange != nil {
				s.cfg.OnChange()
			}
		}
	}
}

func (s *Speaker) changed() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Set makes the sessions and routes what d says, touching only what differs.
// Problems with one peer or route do not stop the others; they are all
// returned together.
func (s *Speaker) Set(ctx context.Context, d Desired) error {
	s.setMu.Lock()
	defer s.setMu.Unlock()
	if s.closed {
		return errors.New("BGP speaker is closed")
	}
	s.gen++
	var errs []error

	// Which peers are wanted, with what configuration.
	orderChanged := false
	for i := range d.Peers {
		if d.Peers[i].Name == "" {
			errs = append(errs, errors.New("a peer has no name"))
			continue
		}
		want, err := normalise(d.Peers[i])
		p := s.peers[d.Peers[i].Name]
		if p != nil && p.seen == s.gen {
			errs = append(errs, fmt.Errorf("peer %q is listed twice", d.Peers[i].Name))
			continue
		}
		if p == nil {
			p = &peer{name: want.Name, state: StateIdle, since: time.Now()}
			s.peers[want.Name] = p
			orderChanged = true
		}
		p.seen = s.gen
		p.bad = err != nil
		if err != nil {
			errs = append(errs, err)
			if p.configured {
				s.removeNeighbor(ctx, p)
			}
			s.setError(p, err.Error())
			p.cfg = want
			continue
		}
		if p.configured && p.cfg != want {
			// Any change resets only this session: gobgp's UpdatePeer
			// would too for most fields and cannot move a peer between
			// the dialing and the listening server.
			s.removeNeighbor(ctx, p)
		}
		p.cfg = want
	}

	// Forget peers that are no longer wanted. Deleting the neighbor closes
	// its session, which withdraws its routes at the router.
	for name, p := range s.peers {
		if p.seen != s.gen {
			s.removeNeighbor(ctx, p)
			s.dropVRF(ctx, p)
			delete(s.peers, name)
			orderChanged = true
		}
	}
	if s.passive != nil && !s.anyPassive() {
		s.stopInstance(ctx, s.passive)
		s.mu.Lock() // Status reads it under mu
		s.passive = nil
		s.mu.Unlock()
	}

	for i := range d.Peers {
		p := s.peers[d.Peers[i].Name]
		if p == nil || p.bad {
			continue
		}
		if !p.configured {
			if err := s.addNeighbor(ctx, p); err != nil {
				errs = append(errs, fmt.Errorf("adding peer %s: %w", p.cfg.Name, err))
				s.setError(p, err.Error())
				continue
			}
		}
		if err := s.syncRoutes(ctx, p, d.Routes[p.cfg.Name]); err != nil {
			errs = append(errs, err)
		}
	}

	if orderChanged {
		s.mu.Lock()
		s.order = s.order[:0]
		for _, p := range s.peers {
			s.order = append(s.order, p)
		}
		slices.SortFunc(s.order, func(a, b *peer) int { return cmp.Compare(a.name, b.name) })
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}

func (s *Speaker) anyPassive() bool {
	for _, p := range s.peers {
		if p.cfg.Passive && p.seen == s.gen {
			return true
		}
	}
	return false
}

// passiveRetry spaces attempts to listen after one failed.
const passiveRetry = time.Minute

// addNeighbor creates p's VRF (on the server its mode needs) and neighbor.
func (s *Speaker) addNeighbor(ctx context.Context, p *peer) error {
	inst := s.dialer
	if p.cfg.Passive {
		if s.passive == nil {
			// Each failed start leaves gobgp's Serve goroutine behind (it
			// cannot be ended), so a port held by another daemon is retried
			// only every passiveRetry, not at every Set.
			if time.Since(s.passiveFailed) < passiveRetry {
				return fmt.Errorf("starting listener on port %d: %w (retrying every %v)", s.cfg.ListenPort, s.passiveErr, passiveRetry)
			}
			in, err := s.startInstance(ctx, s.cfg.ListenPort)
			if err != nil {
				s.passiveFailed, s.passiveErr = time.Now(), err
				return fmt.Errorf("starting listener on port %d: %w", s.cfg.ListenPort, err)
			}
			s.mu.Lock() // Status reads it under mu
			s.passive = in
			s.mu.Unlock()
		}
		inst = s.passive
	}
	key := p.cfg.Address.String()
	s.mu.Lock()
	other := s.byAddr[key]
	s.mu.Unlock()
	if other != nil && other != p {
		return fmt.Errorf("address %s is already used by peer %s", key, other.name)
	}
	if p.inst != inst {
		s.dropVRF(ctx, p)
	}
	if p.vrf == "" {
		s.nextVRF++
		id := s.nextVRF
		v, err := vrf(id)
		if err != nil {
			return err
		}
		if err := inst.srv.AddVrf(ctx, &api.AddVrfRequest{Vrf: v}); err != nil {
			return fmt.Errorf("adding VRF: %w", err)
		}
		p.inst, p.vrf, p.vrfID = inst, v.Name, id
	}
	s.mu.Lock()
	s.byAddr[key] = p
	p.addr = p.cfg.Address
	s.mu.Unlock()
	if err := inst.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p.cfg, p.vrf)}); err != nil {
		s.mu.Lock()
		delete(s.byAddr, key)
		s.mu.Unlock()
		return err
	}
	p.configured = true
	p.added = time.Now()
	return nil
}

// removeNeighbor deletes p's gobgp neighbor (sending a Cease if the session
// is up) but keeps its VRF and routes.
func (s *Speaker) removeNeighbor(ctx context.Context, p *peer) {
	if !p.configured {
		return
	}
	addr := p.cfg.Address.String()
	if err := p.inst.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr}); err != nil {
		s.log.Warn("deleting BGP peer", "peer", p.cfg.Name, "error", err)
	}
	p.configured = false
	s.mu.Lock()
	if s.byAddr[addr] == p {
		delete(s.byAddr, addr)
	}
	s.setStateLocked(p, StateIdle)
	s.mu.Unlock()
}

// dropVRF deletes p's VRF and with it p's routes.
func (s *Speaker) dropVRF(ctx context.Context, p *peer) {
	if p.vrf == "" {
		return
	}
	if err := p.inst.srv.DeleteVrf(ctx, &api.DeleteVrfRequest{Name: p.vrf}); err != nil {
		s.log.Warn("deleting BGP VRF", "peer", p.cfg.Name, "error", err)
	}
	p.vrf, p.inst = "", nil
	clear(p.routes)
	s.mu.Lock()
	p.sent = 0
	s.mu.Unlock()
}

// syncRoutes adds, replaces and withdraws p's routes to match want. With
// nothing to do it neither allocates nor calls gobgp.
func (s *Speaker) syncRoutes(ctx context.Context, p *peer, want []Route) error {
	if p.routes == nil {
		p.routes = make(map[netip.Prefix]*installed, len(want))
	}
	var errs []error
	kept := 0
	for i := range want {
		r := &want[i]
		key := r.Prefix.Masked()
		in := p.routes[key]
		if in != nil && in.seen == s.gen {
			errs = append(errs, fmt.Errorf("peer %s: route %v listed twice", p.cfg.Name, key))
			continue
		}
		if in != nil && sameRoute(&in.route, r) {
			in.seen = s.gen
			kept++
			continue
		}
		path, err := apiPath(r)
		if err == nil {
			_, err = p.inst.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_VRF, VrfId: p.vrf, Path: path})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("announcing %v to peer %s: %w", r.Prefix, p.cfg.Name, err))
			continue
		}
		p.routes[key] = &installed{route: cloneRoute(r), path: path, seen: s.gen}
		kept++
	}
	if kept != len(p.routes) {
		for key, in := range p.routes {
			if in.seen == s.gen {
				continue
			}
			err := p.inst.srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_VRF, VrfId: p.vrf, Family: in.path.Family, Path: in.path})
			if err != nil {
				errs = append(errs, fmt.Errorf("withdrawing %v from peer %s: %w", key, p.cfg.Name, err))
				continue
			}
			delete(p.routes, key)
		}
	}
	s.mu.Lock()
	p.sent = len(p.routes)
	s.mu.Unlock()
	return errors.Join(errs...)
}

// Status reports every desired peer, sorted by name.
func (s *Speaker) Status() []PeerStatus {
	type counters struct{ sent, recv uint64 }
	byAddr := map[string]counters{}
	s.mu.Lock()
	insts := []*instance{s.dialer, s.passive}
	s.mu.Unlock()
	for _, in := range insts {
		if in == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
		_ = in.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(ap *api.Peer) {
			if ap.State == nil || ap.State.Messages == nil || ap.Conf == nil {
				return
			}
			m := ap.State.Messages
			byAddr[ap.Conf.NeighborAddress] = counters{m.GetSent().GetUpdate(), m.GetReceived().GetUpdate()}
		})
		cancel()
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PeerStatus, 0, len(s.order))
	for _, p := range s.order {
		st := PeerStatus{Name: p.name, Address: p.addr, State: p.state, Since: p.since, LastError: p.lastErr}
		if s.byAddr[p.addr.String()] == p {
			c := byAddr[p.addr.String()]
			st.UpdatesSent, st.UpdatesReceived = c.sent, c.recv
		}
		if p.state == StateEstablished {
			st.PrefixesSent = p.sent
		}
		out = append(out, st)
	}
	return out
}

// Close withdraws every route, waits (bounded by ctx) until the withdrawals
// are on the wire, closes the sessions with a Cease and stops gobgp.
func (s *Speaker) Close(ctx context.Context) error {
	s.setMu.Lock()
	defer s.setMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true

	var errs []error
	var up []*peer
	for _, p := range s.peers {
		if !p.configured {
			continue
		}
		for key, in := range p.routes {
			err := p.inst.srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_VRF, VrfId: p.vrf, Family: in.path.Family, Path: in.path})
			if err != nil {
				errs = append(errs, fmt.Errorf("withdrawing %v from peer %s: %w", key, p.cfg.Name, err))
			}
		}
		// gobgp queues this Cease behind the withdrawals on the session's
		// outgoing queue, so once the session is down they have been sent.
		// (DeletePeer would write its Cease at once and drop the queue.)
		err := p.inst.srv.ShutdownPeer(ctx, &api.ShutdownPeerRequest{Address: p.cfg.Address.String(), Communication: "speaker shutting down"})
		if err != nil {
			errs = append(errs, fmt.Errorf("closing session with peer %s: %w", p.cfg.Name, err))
			continue
		}
		up = append(up, p)
	}
	s.waitDown(ctx, up)

	for _, in := range []*instance{s.dialer, s.passive} {
		if in != nil {
			s.stopInstance(context.WithoutCancel(ctx), in)
		}
	}
	s.cancel()
	s.done.Wait()
	return errors.Join(errs...)
}

// waitDown waits until none of ps is Established any more, or ctx ends.
func (s *Speaker) waitDown(ctx context.Context, ps []*peer) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		up := false
		for _, p := range ps {
			up = up || p.state == StateEstablished
		}
		s.mu.Unlock()
		if !up {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
