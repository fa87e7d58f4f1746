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
// that dial us (Passive) live on a second gobgp server that is started only
// while at least one passive peer is wanted. Nothing listens otherwise.
//
// Received routes: a default import policy rejects every route a router sends,
// so none reaches gobgp's RIB or the VRFs (gobgp still keeps what it received in
// its Adj-RIB-In; see README for the measured cost).
//
// Graceful restart (RFC 4724): a peer with GracefulRestart negotiates it, and
// every session's first OPEN after the process started says "restarting, with
// forwarding state kept", so a router that kept our routes while we restarted
// keeps them until our End-of-RIB. Routes are in place before a neighbor is
// created, so that End-of-RIB never comes before them. Close withdraws first
// (a real shutdown); Restart leaves the sessions for the kernel to close when
// the process exits, without a NOTIFICATION, which is what makes a router keep
// the routes.
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
	// GracefulRestart is the restart time offered to the router (RFC 4724):
	// how long it keeps our routes after the session ends without a
	// NOTIFICATION. 0 turns graceful restart off.
	GracefulRestart time.Duration
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
	PrefixesReceived             int       // prefixes the router sends us (all rejected by the import policy)
	LastError                    string    // last problem with this session; cleared when Established
	// PasswordPending says the password changed while the session was up: the
	// session keeps its connection (TCP MD5 keys belong to it) and the new
	// password is used from its next connection on.
	PasswordPending bool
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
	passive *instance // made with the first passive peer, started while one is wanted
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

// instance is one gobgp server. gobgp's Serve never returns, so servers are
// made once and started and stopped as needed (StopBgp keeps Serve for the
// next StartBgp).
type instance struct {
	srv     *server.BgpServer
	cancel  context.CancelFunc // stops its event watch; nil while stopped
	started bool
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
	// opened is set once a neighbor was made for this peer: only the first
	// session of the process says it is restarting (RFC 4724 R and F bits).
	opened bool
	// heldUntil: the session is kept down until then (see holdDown).
	heldUntil time.Time
	// running is the configuration gobgp's neighbor was made with; it differs
	// from cfg only in a password not yet in use (see Set).
	running Peer

	// Guarded by Speaker.mu.
	pwPending bool // running.Password != cfg.Password
	name      string
	addr      netip.Addr
	state     string
	since     time.Time
	lastErr   string
	sent      int // routes in the VRF, sent while Established
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
	d := s.newInstance()
	if err := s.startInstance(ctx, d, -1); err != nil {
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
		if p.configured && p.running != want {
			if s.passwordOnly(p, want) {
				// TCP MD5 keys belong to the connection: an established
				// session keeps working with the old one, and resetting
				// it now would only cut it until the router has the new
				// password too. The new password is used when the
				// session next connects (redial re-creates the neighbor).
				if want.Password != p.cfg.Password {
					s.log.Info("BGP password changed; the established session keeps its connection, the next one uses the new password", "peer", want.Name)
				}
			} else {
				// Any other change resets only this session: gobgp's
				// UpdatePeer would too for most fields and cannot move
				// a peer between the dialing and the listening server.
				s.removeNeighbor(ctx, p)
			}
		}
		p.cfg = want
		s.mu.Lock()
		p.pwPending = p.configured && p.running.Password != want.Password
		s.mu.Unlock()
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
	if s.passive != nil && s.passive.started && !s.anyPassive() {
		s.stopInstance(ctx, s.passive)
	}

	// Routes go into a peer's VRF before its neighbor is made: gobgp sends
	// End-of-RIB right after the routes it has when the session comes up, and
	// a router that kept our routes through a graceful restart drops those
	// not sent by then.
	for i := range d.Peers {
		p := s.peers[d.Peers[i].Name]
		if p == nil || p.bad {
			continue
		}
		if err := s.ensureVRF(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("adding peer %s: %w", p.cfg.Name, err))
			s.setError(p, err.Error())
			continue
		}
		if err := s.syncRoutes(ctx, p, d.Routes[p.cfg.Name]); err != nil {
			errs = append(errs, err)
		}
		if !p.configured && !time.Now().Before(p.heldUntil) {
			if err := s.addNeighbor(ctx, p); err != nil {
				errs = append(errs, fmt.Errorf("adding peer %s: %w", p.cfg.Name, err))
				s.setError(p, err.Error())
			}
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
var passiveRetry = time.Minute // a variable for tests

// passwordOnly says whether want differs from p's configuration only in its
// password while p's session is up.
func (s *Speaker) passwordOnly(p *peer, want Peer) bool {
	old := p.running
	old.Password = want.Password
	s.mu.Lock()
	up := p.state == StateEstablished
	s.mu.Unlock()
	return up && old == want
}

// listener returns the started listening server, starting it if needed.
func (s *Speaker) listener(ctx context.Context) (*instance, error) {
	if s.passive != nil && s.passive.started {
		return s.passive, nil
	}
	if time.Since(s.passiveFailed) < passiveRetry {
		return nil, fmt.Errorf("starting listener on port %d: %w (retrying every %v)", s.cfg.ListenPort, s.passiveErr, passiveRetry)
	}
	fail := func(err error) (*instance, error) {
		s.passiveFailed, s.passiveErr = time.Now(), err
		return nil, fmt.Errorf("starting listener on port %d: %w", s.cfg.ListenPort, err)
	}
	if err := probeListen(s.cfg.ListenPort); err != nil {
		return fail(err)
	}
	if s.passive == nil {
		in := s.newInstance()
		s.mu.Lock() // Status reads it under mu
		s.passive = in
		s.mu.Unlock()
	}
	if err := s.startInstance(ctx, s.passive, s.cfg.ListenPort); err != nil {
		// Another process took the port since the probe. The server may
		// hold a listener it opened before failing: it is given up (its
		// Serve goroutine stays, once per such race).
		s.mu.Lock()
		s.passive = nil
		s.mu.Unlock()
		return fail(err)
	}
	return s.passive, nil
}

// ensureVRF gives p a VRF on the server its mode needs.
func (s *Speaker) ensureVRF(ctx context.Context, p *peer) error {
	inst := s.dialer
	if p.cfg.Passive {
		var err error
		if inst, err = s.listener(ctx); err != nil {
			return err
		}
	}
	if p.inst != inst {
		if p.configured {
			s.removeNeighbor(ctx, p)
		}
		s.dropVRF(ctx, p)
	}
	if p.vrf != "" {
		return nil
	}
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
	return nil
}

// addNeighbor creates p's neighbor in its VRF (see ensureVRF).
func (s *Speaker) addNeighbor(ctx context.Context, p *peer) error {
	if p.vrf == "" {
		return fmt.Errorf("peer %s has no VRF", p.cfg.Name)
	}
	key := p.cfg.Address.String()
	s.mu.Lock()
	other := s.byAddr[key]
	s.mu.Unlock()
	if other != nil && other != p {
		return fmt.Errorf("address %s is already used by peer %s", key, other.name)
	}
	s.mu.Lock()
	s.byAddr[key] = p
	p.addr = p.cfg.Address
	s.mu.Unlock()
	if err := p.inst.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p.cfg, p.vrf, !p.opened)}); err != nil {
		s.mu.Lock()
		delete(s.byAddr, key)
		s.mu.Unlock()
		return err
	}
	p.configured, p.opened, p.running = true, true, p.cfg
	p.added = time.Now()
	s.mu.Lock()
	p.pwPending = false
	s.mu.Unlock()
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
	type counters struct {
		sent, recv uint64
		prefixes   int
	}
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
			c := counters{sent: m.GetSent().GetUpdate(), recv: m.GetReceived().GetUpdate()}
			for _, af := range ap.AfiSafis {
				c.prefixes += int(af.GetState().GetReceived())
			}
			byAddr[ap.Conf.NeighborAddress] = c
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
			st.UpdatesSent, st.UpdatesReceived, st.PrefixesReceived = c.sent, c.recv, c.prefixes
		}
		if p.state == StateEstablished {
			st.PrefixesSent = p.sent
		}
		st.PasswordPending = p.pwPending
		out = append(out, st)
	}
	return out
}

// Close withdraws every route, waits (bounded by ctx) until the withdrawals
// are on the wire, closes the sessions with a Cease and stops gobgp.
func (s *Speaker) Close(ctx context.Context) error { return s.close(ctx, false) }

// Restart stops the speaker for a restart of its process: sessions with
// graceful restart stay up with their routes until the process exits and the
// kernel closes the connections, without a NOTIFICATION, so the routers keep
// the routes for the restart time; the others are closed as by Close. Nothing
// may be called after it.
func (s *Speaker) Restart(ctx context.Context) error { return s.close(ctx, true) }

func (s *Speaker) close(ctx context.Context, restart bool) error {
	s.setMu.Lock()
	defer s.setMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true

	var errs []error
	var up []*peer
	kept := false
	for _, p := range s.peers {
		if !p.configured {
			continue
		}
		if restart && p.cfg.GracefulRestart > 0 {
			kept = true
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

	if !kept {
		// StopBgp would send a Cease on the kept sessions.
		for _, in := range []*instance{s.dialer, s.passive} {
			if in != nil {
				s.stopInstance(context.WithoutCancel(ctx), in)
			}
		}
	}
	s.cancel()
	s.done.Wait()
	return errors.Join(errs...)
}

// ResetPeer closes the session with peer name at once and dials it again (or
// waits for it, if passive) as after any failure: BFD found the path to the
// router gone, long before the hold timer would.
func (s *Speaker) ResetPeer(ctx context.Context, name string) {
	s.setMu.Lock()
	defer s.setMu.Unlock()
	p := s.peers[name]
	if s.closed || p == nil || !p.configured {
		return
	}
	s.removeNeighbor(ctx, p)
	if err := s.addNeighbor(ctx, p); err != nil {
		s.setError(p, fmt.Sprintf("re-adding peer: %v", err))
	}
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
