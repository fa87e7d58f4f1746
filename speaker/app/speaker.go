package app

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/speaker/flows"
	"github.com/heraldlb/herald/speaker/layer2"
	"github.com/heraldlb/herald/speaker/membership"
)

// +kubebuilder:rbac:groups="",resources=services;nodes;endpoints,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups=herald.io,resources=ippools;l2announcements,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",namespace=herald-system,resources=secrets,verbs=get

// speaker is the speaker's one long-lived loop, run by the manager on every replica
// (no leader election: every node has its own speaker).
type speaker struct {
	client   client.Client
	informer func(context.Context, client.Object, ...crcache.InformerGetOption) (crcache.Informer, error)
	waitSync func(context.Context) bool
	recorder record.EventRecorder
	cs       kubernetes.Interface
	cfg      Config
	// keys reads the memberlist keys and rolls new ones in (keyring.go).
	keys *keySource
	log  logr.Logger

	// trigger (capacity 1) asks the loop to recompute.
	trigger chan struct{}
	members memberView
	l2      l2Sink
	// now, hostMACs (every MAC of this node's interfaces) and linkState (see
	// linkUp) stand in for the clock and the host in tests.
	now       func() time.Time
	hostMACs  func() []string
	linkState func(netip.Addr) bool
	// owned maps each group key this node announces to what was announced, so
	// Events are sent on changes only.
	owned map[string]ownedGroup
	// started is when the loop began (or the node's link came back); joined
	// is set once another speaker was seen since, at joinedAt.
	started  time.Time
	joined   bool
	joinedAt time.Time
	// claims is what this node tells the others it announces.
	claims *claims
	// yielded holds keys this node stopped announcing because a speaker it
	// cannot reach through memberlist answers for them (split brain).
	yielded map[string]yielded
	// keyOf maps each address of the last plan to its group key.
	keyOf map[netip.Addr]string
	// refused holds the keys this node was elected for and cannot announce,
	// with why, so an Event is sent once.
	refused map[string]string
	// ownedServices lists, for each group key this node announces, its
	// Services.
	ownedServices map[string][]string
	// applyFailed holds, for groups this node failed to answer for, when it
	// first failed (see applyRetry).
	applyFailed map[string]time.Time
	// ipvsWarned is the last IPVS-without-strictARP finding warned about.
	ipvsWarned string
	// nodeAddrWarned holds "service|address" pairs already warned about.
	nodeAddrWarned map[string]bool
	// conflicts carries other hosts' claims on the addresses this node
	// announces, from the layer 2 responders.
	conflicts chan layer2.Conflict
	// linkWasUp is whether the node's link was up at the last netlink change.
	linkWasUp bool
	// bind is the address memberlist binds: its link is the node's link to the
	// other speakers.
	bind netip.Addr
	// seen holds every address of the last plan, whoever owned it: an address
	// not in it is new to the cluster and is probed before it is announced; one
	// in it is a takeover, which must not wait for a probe.
	seen map[netip.Addr]bool
	bgp  *bgpState
	// announced writes the Services' herald.io/Announced condition; nil
	// (tests) writes none.
	announced *announcedWriter
	// ready is what /readyz reports; the loop updates it.
	ready *readyState
	// flows deletes the connections to new addresses that reached this node
	// before kube-proxy had rules for them; nil (tests) deletes none.
	flows *flows.Sweeper
}

type ownedGroup struct {
	ips        []netip.Addr
	interfaces []string
	// warning is the text of the Warnings last sent for the group (outside
	// every pool, unreadable pool, Services it cannot serve), so each is sent
	// once per change.
	warning string
}

func newSpeaker(mgr manager.Manager, cs kubernetes.Interface, cfg Config) *speaker {
	s := newSpeakerWith(cfg, mgr.GetClient(), mgr.GetEventRecorderFor("herald-speaker"))
	s.informer = mgr.GetCache().GetInformer
	s.waitSync = mgr.GetCache().WaitForCacheSync
	s.cs = cs
	s.announced = newAnnouncedWriter(s.log.WithName("announced"), mgr.GetClient(), s.recorder, cfg.StatusQPS, cfg.StatusBurst, s.applyAnnounced)
	s.keys = newKeySource(mgr.GetClient(), cfg, s.log, s.ready.alone)
	s.flows = flows.NewSweeper(flows.Conntrack{}, s.log.WithName("flows"))
	s.flows.Deleted = func(_ netip.Addr, n int) { metricUntranslatedFlows.Add(float64(n)) }
	return s
}

// newSpeakerWith returns a speaker reading and writing through c and rec, with
// no cache, memberlist or layer 2 yet: Start adds them (tests set fakes).
func newSpeakerWith(cfg Config, c client.Client, rec record.EventRecorder) *speaker {
	s := &speaker{
		client:      c,
		recorder:    rec,
		cfg:         cfg,
		log:         cfg.Logger.WithName("speaker").WithValues("node", cfg.NodeName),
		trigger:     make(chan struct{}, 1),
		owned:       map[string]ownedGroup{},
		seen:        map[netip.Addr]bool{},
		ready:       &readyState{},
		claims:      newClaims(),
		yielded:     map[string]yielded{},
		keyOf:       map[netip.Addr]string{},
		refused:     map[string]string{},
		applyFailed: map[string]time.Time{},
		// Room for a burst: a report that does not fit is dropped and
		// counted by layer2, and the next one a second later will do.
		conflicts: make(chan layer2.Conflict, 64),
		now:       time.Now,
		hostMACs:  localMACs,
		linkState: linkUp,
	}
	s.bgp = newBGPState(s.log)
	s.bgp.status = newStatusWriter(s.log.WithName("bgp"), s.applyPeerStatus)
	return s
}

// NeedLeaderElection: every speaker runs.
func (s *speaker) NeedLeaderElection() bool { return false }

func (s *speaker) poke() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// informerWhenReachable gets o's informer, waiting for the API server as long
// as it takes. Right after a node boots the API server's Service address
// (10.96.0.1 on kind) answers only once kube-proxy has programmed it; before
// that, the first discovery request times out. Exiting there put the speaker
// into CrashLoopBackOff on every node restart, and its back-off delayed the
// node's return to announcing. Waiting keeps /healthz answering and /readyz
// saying "caches not synced".
func (s *speaker) informerWhenReachable(ctx context.Context, o client.Object) (crcache.Informer, error) {
	delay := 500 * time.Millisecond
	for {
		inf, err := s.informer(ctx, o)
		if err == nil {
			return inf, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("watching %T: %w", o, err)
		}
		s.log.Info("Waiting for the API server", "watching", fmt.Sprintf("%T", o), "error", err.Error(), "retryIn", delay.String())
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("watching %T: %w", o, err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 8*time.Second)
	}
}

// Start runs until ctx ends, then leaves memberlist and hands over.
func (s *speaker) Start(ctx context.Context) error {
	for _, o := range []client.Object{&corev1.Service{}, &discoveryv1.EndpointSlice{}, &corev1.Node{}, &heraldv1.IPPool{}, &heraldv1.L2Announcement{},
		&heraldv1.BGPPeer{}, &heraldv1.BGPAnnouncement{}, &corev1.Secret{}} {
		inf, err := s.informerWhenReachable(ctx, o)
		if err != nil {
			return err
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(any) { s.poke() },
			UpdateFunc: func(old, cur any) {
				// Speakers write BGPPeer status; those writes change nothing
				// any speaker acts on.
				if o, ok := old.(*corev1.Service); ok {
					if c, ok := cur.(*corev1.Service); ok && announcedOnly(o, c) {
						return
					}
				}
				// Only which sessions are Established matters, to the
				// Services' Announced condition.
				o, ok1 := old.(*heraldv1.BGPPeer)
				c, ok2 := cur.(*heraldv1.BGPPeer)
				if ok1 && ok2 && o.Generation == c.Generation && establishedSet(o) == establishedSet(c) {
					return
				}
				s.poke()
			},
			DeleteFunc: func(any) { s.poke() },
		}); err != nil {
			return fmt.Errorf("watching %T: %w", o, err)
		}
	}
	if !s.waitSync(ctx) {
		return fmt.Errorf("the cache did not sync")
	}
	s.ready.update(func(r *readiness) { r.Synced = true })
	// Waiting here, inside the manager, keeps /healthz answering: a speaker
	// waiting for its key is not killed by its liveness probe.
	key, oldKeys, err := s.keys.load(ctx)
	if err != nil {
		return err
	}
	go s.bgp.status.run(ctx)
	if s.announced != nil {
		go s.announced.run(ctx)
	}
	go s.runBGP(ctx)
	if s.flows != nil {
		go s.flows.Run(ctx)
	}
	var node corev1.Node
	if err := s.client.Get(ctx, types.NamespacedName{Name: s.cfg.NodeName}, &node); err != nil {
		return fmt.Errorf("reading this speaker's Node %s: %w", s.cfg.NodeName, err)
	}
	bind := s.cfg.BindAddr
	if bind == "" {
		bind = nodeAddr(&node)
	}
	if bind == "" {
		return fmt.Errorf("node %s has no InternalIP to bind memberlist to; set --bind-addr", s.cfg.NodeName)
	}
	l2, err := newL2Announcer(s.log, s.cfg.ProbeTimeout, s.cfg.RefreshInterval, s.conflicts)
	if err != nil {
		return err
	}
	s.l2 = l2
	s.bind, _ = netip.ParseAddr(bind)
	members, err := membership.New(membership.Config{
		Name: s.cfg.NodeName, BindAddr: bind, BindPort: s.cfg.MemberlistPort, Key: key, OldKeys: oldKeys,
		Meta: membership.Meta{MACs: s.macsToPublish()}, Logger: s.log.WithName("memberlist"),
	})
	if err != nil {
		_ = l2.Close()
		return err
	}
	metricMACsDropped.Set(float64(members.DroppedMACs()))
	s.members = members
	s.log.Info("Speaker started", "memberlist", hostPort(bind, s.cfg.MemberlistPort), "encrypted", key != nil, "keys", members.KeyFingerprints())
	defer s.keys.rotate(ctx, members)()
	s.run(ctx)
	return nil
}

// run is the speaker loop, once s.members and s.l2 are set: it joins the other
// speakers in the background and recomputes on every change until ctx ends,
// then hands over.
func (s *speaker) run(ctx context.Context) {
	s.started = s.now()
	s.linkWasUp = s.linkState(s.bind)
	joins := make(chan struct{}, 1)
	joinDone := make(chan struct{})
	go func() {
		defer close(joinDone)
		s.joinLoop(ctx, joins)
	}()
	defer func() { <-joinDone }()

	var recheck *time.Timer
	recheckC := func() <-chan time.Time {
		if recheck == nil {
			return nil
		}
		return recheck.C
	}
	for {
		select {
		case <-ctx.Done():
			// Not ready from the first moment of the hand-over.
			s.ready.update(func(r *readiness) { r.Stopping = true })
			s.handOver()
			return
		case <-s.trigger:
			select {
			case joins <- struct{}{}:
			default:
			}
		case <-s.members.Changed():
		case <-recheckC():
			recheck = nil
		case c := <-s.conflicts:
			if !s.onConflict(ctx, c) {
				continue
			}
		case <-s.l2.Changed():
			// A node whose links all went down was cut off, whatever memberlist
			// has noticed yet: when a link comes back, it says it has returned.
			up := s.linkState(s.bind)
			if up && !s.linkWasUp {
				// Cut off, this node saw itself alone and claimed everything.
				// Back, it drops those claims and announces nothing until it
				// hears the others again (as at start).
				s.log.Info("Network link is back; dropping what was claimed while cut off, silent until the other speakers are heard")
				s.claims.drop()
				s.joined, s.started = false, s.now()
				s.ready.update(func(r *readiness) { r.Joined, r.Applied = false, false })
			}
			s.linkWasUp = up
		}
		next := s.sync(ctx)
		if recheck != nil {
			recheck.Stop()
			recheck = nil
		}
		if !next.IsZero() {
			recheck = time.NewTimer(time.Until(next) + 10*time.Millisecond)
		}
	}
}

// handOver leaves memberlist first, so the others elect new owners at once, and
// keeps answering for a short bound so the new owners' gratuitous announcements
// land before this node goes quiet: no request fails in a rolling restart.
func (s *speaker) handOver() {
	start := time.Now()
	// Routers learn of a withdrawal in one UPDATE; do it first, while this node
	// still forwards, so flows move before anything stops.
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HandOver)
	s.closeBGP(ctx)
	cancel()
	if err := s.members.Leave(time.Second); err != nil {
		s.log.Error(err, "Leaving memberlist")
	}
	// Keep answering until the hand-over time is up, except for addresses a
	// new owner has announced already: answering those too could turn a
	// client back to this node, and move its flows twice.
	deadline := time.NewTimer(s.cfg.HandOver)
	defer deadline.Stop()
	withdrawn := 0
wait:
	for {
		select {
		case <-deadline.C:
			break wait
		case c := <-s.conflicts:
			if other, ok := s.members.MemberOfMAC(strings.ToLower(c.HardwareAddr.String())); ok && other != s.cfg.NodeName {
				s.l2.withdraw(c.Addr)
				withdrawn++
			}
		}
	}
	s.log.Info("Hand-over time is up", "withdrawnOnNewOwnersAnnouncement", withdrawn)
	if err := s.l2.Close(); err != nil {
		s.log.Error(err, "Stopping layer 2 announcements")
	}
	if err := s.members.Shutdown(); err != nil {
		s.log.Error(err, "Stopping memberlist")
	}
	s.log.Info("Handed over", "took", time.Since(start).String())
}

// linkUp reports whether the link holding addr (the node's address) is up; with
// no such link, whether some non-loopback link with an address is up. Other
// links (a pod bridge, say) stay up when the node is cut off.
func linkUp(addr netip.Addr) bool {
	topo, err := layer2.ReadTopology()
	if err != nil {
		return true // unknown: do not claim a return that did not happen
	}
	for _, l := range topo.Links {
		for _, p := range l.Prefixes {
			if p.Addr() == addr {
				return l.Up
			}
		}
	}
	for _, l := range topo.Links {
		if l.Up && !l.Loopback && len(l.Prefixes) > 0 {
			return true
		}
	}
	return false
}

// macsToPublish returns the MACs this speaker publishes to the others (see
// publishedMACs).
func (s *speaker) macsToPublish() []string {
	topo, err := layer2.ReadTopology()
	if err != nil {
		// Without them a fellow speaker's probe answer may read as a conflict
		// (and be retried later); that is no reason not to start.
		s.log.Error(err, "Reading network interfaces; publishing no MACs")
		return nil
	}
	macs := publishedMACs(topo, s.bind)
	s.log.V(1).Info("Publishing MACs", "macs", macs)
	return macs
}

// localMACs returns the MACs of every interface of this node: an answer from
// any of them is this node's own.
func localMACs() []string {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []string
	for _, i := range ifs {
		if len(i.HardwareAddr) == 6 {
			out = append(out, i.HardwareAddr.String())
		}
	}
	return out
}
