package app

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
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
	"github.com/heraldlb/herald/internal/ipaddr"
	"github.com/heraldlb/herald/speaker/election"
	"github.com/heraldlb/herald/speaker/layer2"
	"github.com/heraldlb/herald/speaker/membership"
	"github.com/heraldlb/herald/speaker/plan"
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
	key      []byte
	log      logr.Logger

	// trigger (capacity 1) asks the loop to recompute.
	trigger chan struct{}
	members *membership.Members
	l2      *l2Announcer
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
	// ready is what /readyz reports; the loop updates it.
	ready *readyState
}

type ownedGroup struct {
	ips        []netip.Addr
	interfaces []string
	// warning is the text of the Warnings last sent for the group (outside
	// every pool, unreadable pool, Services it cannot serve), so each is sent
	// once per change.
	warning string
}

func newSpeaker(mgr manager.Manager, cs kubernetes.Interface, cfg Config, key []byte) *speaker {
	s := &speaker{
		client:   mgr.GetClient(),
		informer: mgr.GetCache().GetInformer,
		waitSync: mgr.GetCache().WaitForCacheSync,
		recorder: mgr.GetEventRecorderFor("herald-speaker"),
		cs:       cs,
		cfg:      cfg,
		key:      key,
		log:      cfg.Logger.WithName("speaker").WithValues("node", cfg.NodeName),
		trigger:  make(chan struct{}, 1),
		owned:    map[string]ownedGroup{},
		seen:     map[netip.Addr]bool{},
		ready:    &readyState{},
		claims:   newClaims(),
		yielded:  map[string]yielded{},
		keyOf:    map[netip.Addr]string{},
		refused:  map[string]string{},
		// Room for a burst: a report that does not fit is dropped and
		// counted by layer2, and the next one a second later will do.
		conflicts: make(chan layer2.Conflict, 64),
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

// Start runs until ctx ends, then leaves memberlist and hands over.
func (s *speaker) Start(ctx context.Context) error {
	for _, o := range []client.Object{&corev1.Service{}, &discoveryv1.EndpointSlice{}, &corev1.Node{}, &heraldv1.IPPool{}, &heraldv1.L2Announcement{},
		&heraldv1.BGPPeer{}, &heraldv1.BGPAnnouncement{}, &corev1.Secret{}} {
		inf, err := s.informer(ctx, o)
		if err != nil {
			return fmt.Errorf("watching %T: %w", o, err)
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(any) { s.poke() },
			UpdateFunc: func(old, cur any) {
				// Speakers write BGPPeer status; those writes change nothing
				// any speaker acts on.
				o, ok1 := old.(*heraldv1.BGPPeer)
				c, ok2 := cur.(*heraldv1.BGPPeer)
				if ok1 && ok2 && o.Generation == c.Generation {
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
	go s.bgp.status.run(ctx)
	go s.runBGP(ctx)
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
		Name: s.cfg.NodeName, BindAddr: bind, BindPort: s.cfg.MemberlistPort, Key: s.key,
		Meta: membership.Meta{MACs: s.macsToPublish()}, Logger: s.log.WithName("memberlist"),
	})
	if err != nil {
		_ = l2.Close()
		return err
	}
	metricMACsDropped.Set(float64(members.DroppedMACs()))
	s.members = members
	s.started = time.Now()
	s.linkWasUp = linkUp(s.bind)
	s.log.Info("Speaker started", "memberlist", hostPort(bind, s.cfg.MemberlistPort), "encrypted", s.key != nil)
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
			return nil
		case <-s.trigger:
			select {
			case joins <- struct{}{}:
			default:
			}
		case <-members.Changed():
		case <-recheckC():
			recheck = nil
		case c := <-s.conflicts:
			if !s.onConflict(ctx, c) {
				continue
			}
		case <-l2.Changed():
			// A node whose links all went down was cut off, whatever memberlist
			// has noticed yet: when a link comes back, it says it has returned.
			up := linkUp(s.bind)
			if up && !s.linkWasUp {
				// Cut off, this node saw itself alone and claimed everything.
				// Back, it drops those claims and announces nothing until it
				// hears the others again (as at start).
				s.log.Info("Network link is back; dropping what was claimed while cut off, silent until the other speakers are heard")
				s.claims.drop()
				s.joined, s.started = false, time.Now()
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

// joinInterval is how often a speaker tries the Ready nodes it does not see in
// memberlist: a healed partition or a restarted speaker is found within it.
const joinInterval = time.Second

// joinLoop contacts, in the background, the speakers of Ready Nodes this one
// does not see, every joinInterval and whenever poked, until ctx ends. It never
// holds up the speaker loop: a dead node costs a join one TCP timeout
// (memberlist's, a second), and all are tried at once.
func (s *speaker) joinLoop(ctx context.Context, poke <-chan struct{}) {
	t := time.NewTicker(joinInterval)
	defer t.Stop()
	for {
		s.joinOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-poke:
		}
	}
}

func (s *speaker) joinOnce(ctx context.Context) {
	var nodes corev1.NodeList
	if err := s.client.List(ctx, &nodes); err != nil {
		s.log.V(1).Info("Listing Nodes to join memberlist", "error", err.Error())
		return
	}
	alive := map[string]bool{}
	for _, m := range s.members.Alive() {
		alive[m.Name] = true
	}
	var wg sync.WaitGroup
	for i := range nodes.Items {
		n := &nodes.Items[i]
		a := nodeAddr(n)
		if n.Name == s.cfg.NodeName || alive[n.Name] || !nodeReady(n) || a == "" {
			continue
		}
		peer := hostPort(a, s.cfg.MemberlistPort)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.members.Join([]string{peer}); err != nil {
				s.log.V(1).Info("Joining memberlist", "peer", peer, "error", err.Error())
			}
		}()
	}
	wg.Wait()
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// sync recomputes what this node announces, applies it and publishes its
// claims. It returns when it must run again with no other change (this node
// settling, a yielded key's check), or zero.
func (s *speaker) sync(ctx context.Context) time.Time {
	svcs, nodes, pools, anns, err := snapshot(ctx, s.client, s.cfg.HandleClassless)
	if err != nil {
		s.log.Error(err, "Reading cluster state; keeping current announcements")
		return time.Time{}
	}
	s.syncBGP(ctx, svcs, nodes, pools)
	p := plan.Compute(svcs, nodes, pools, anns)
	s.reportNodeAddresses(ctx, p.NodeAddressConflicts)
	now := time.Now()
	alive := s.members.Alive()
	states := s.members.States()

	speakerMACs := map[string]bool{}
	for _, mac := range s.members.KnownMACs() {
		speakerMACs[strings.ToLower(mac)] = true
	}
	for _, mac := range localMACs() {
		speakerMACs[strings.ToLower(mac)] = true
	}
	// Until it has heard another speaker, a starting speaker announces nothing
	// (for at most a hold-down): alone, it would elect itself for every address
	// and pull traffic from the nodes serving it. Joining one speaker brings
	// every speaker's claims (memberlist's push-pull), so from then on it
	// takes nothing another holds. A lone node of a one-node cluster does not
	// wait.
	// memberlist reports a member alive before the State it pushed with its
	// join is merged: until every live member's State is known, claims may be
	// missing, so nothing new is taken (pending).
	pending := false
	for _, m := range alive {
		if _, ok := states[m.Name]; !ok && m.Name != s.cfg.NodeName {
			pending = true
		}
	}
	if len(alive) > 1 && !pending && !s.joined {
		s.joined, s.joinedAt = true, now
	}
	alone := !otherNodes(nodes, s.cfg.NodeName)
	s.ready.update(func(r *readiness) { r.Joined, r.Alone = s.joined, alone })
	if !s.joined && now.Sub(s.started) < s.cfg.HoldDown && !alone {
		s.log.V(1).Info("Not announcing until another speaker is heard", "waitUntil", s.started.Add(s.cfg.HoldDown))
		return s.started.Add(s.cfg.HoldDown)
	}
	// Settled: with the others (or alone for good) for a hold-down, by this
	// node's clock. Until then keys nobody holds go to settled nodes.
	settleAt := s.joinedAt.Add(s.cfg.HoldDown)
	if !s.joined {
		settleAt = s.started.Add(s.cfg.HoldDown)
	}
	settled := !now.Before(settleAt)

	// Keys this node could be elected for but cannot announce (no usable
	// interface) are refused, so the election passes them to another node.
	keyOf := make(map[netip.Addr]string, len(s.keyOf))
	refuses := map[string]bool{}
	var refusedList []string
	for _, g := range p.Groups {
		for _, ip := range g.IPs {
			keyOf[ip] = g.Key
		}
		if !slices.Contains(g.Nodes, s.cfg.NodeName) {
			continue
		}
		if why := s.l2.cannotAnnounce(g.IPs, g.Interfaces); why != "" {
			refuses[g.Key] = true
			refusedList = append(refusedList, g.Key)
			if s.refused[g.Key] != why {
				s.log.Info("Cannot announce; leaving the address to another node", "key", g.Key, "reason", why)
				for _, svc := range g.Services {
					if ref := s.serviceRef(ctx, svc); ref != nil {
						s.recorder.Eventf(ref, corev1.EventTypeWarning, "CannotAnnounce", "Node %s cannot announce %s: %s; another eligible node takes it", s.cfg.NodeName, ipaddr.Join(g.IPs), why)
					}
				}
			}
			s.refused[g.Key] = why
		}
	}
	for k := range s.refused {
		if !refuses[k] {
			delete(s.refused, k)
		}
	}
	s.keyOf = keyOf
	metricRefused.Set(float64(len(refusedList)))

	in := election.Input{Keys: make(map[string][]string, len(p.Groups))}
	for _, g := range p.Groups {
		in.Keys[g.Key] = g.Nodes
	}
	for _, m := range alive {
		if m.Name == s.cfg.NodeName {
			in.Nodes = append(in.Nodes, election.Node{Name: m.Name, Settled: settled, Claims: s.claims.weight, Refuses: refuses})
			continue
		}
		st := states[m.Name]
		n := election.Node{Name: m.Name, Settled: st.Settled, Claims: st.Claims}
		if len(st.Refuses) > 0 {
			n.Refuses = make(map[string]bool, len(st.Refuses))
			for _, k := range st.Refuses {
				n.Refuses[k] = true
			}
		}
		in.Nodes = append(in.Nodes, n)
	}
	res := election.Elect(in)

	// A yielded key is given back to the election when the speaker it
	// yielded to is seen in memberlist again: claims settle it from there.
	aliveNames := map[string]bool{}
	for _, m := range alive {
		aliveNames[m.Name] = true
	}
	next := time.Time{}
	for k, y := range s.yielded {
		if aliveNames[y.to] || res.Owner[k] != s.cfg.NodeName {
			delete(s.yielded, k)
		}
	}
	s.probeTakeovers(ctx, p.Groups, res.Owner)
	s.checkYielded(ctx, speakerMACs)
	for _, y := range s.yielded {
		if next.IsZero() || y.check.Before(next) {
			next = y.check
		}
	}
	metricYielded.Set(float64(len(s.yielded)))

	var desired []want
	mine := map[string]plan.Group{}
	seen := map[netip.Addr]bool{}
	for _, g := range p.Groups {
		for _, ip := range g.IPs {
			seen[ip] = true
		}
		if res.Owner[g.Key] != s.cfg.NodeName {
			continue
		}
		if _, ok := s.yielded[g.Key]; ok {
			continue
		}
		if _, held := s.claims.weight[g.Key]; pending && !held {
			continue
		}
		mine[g.Key] = g
		for _, ip := range g.IPs {
			desired = append(desired, want{addr: ip, interfaces: g.Interfaces, probe: !s.seen[ip]})
		}
	}
	s.seen = seen
	applied := s.l2.Set(ctx, desired, speakerMACs)
	s.ready.update(func(r *readiness) { r.Applied = true })
	s.report(ctx, mine, applied)

	// Claim what is announced now (a group counts when any of its addresses
	// is answered). Until settled, also say so, so that nobody gives this
	// node keys that settled nodes could take.
	var announced []string
	for k, g := range mine {
		for _, ip := range g.IPs {
			if applied[ip].iface != "" {
				announced = append(announced, k)
				break
			}
		}
	}
	slices.Sort(announced)
	slices.Sort(refusedList)
	s.members.SetState(settled, s.claims.update(announced, len(alive), now), refusedList)
	metricMembers.Set(float64(len(alive)))
	if !settled && (next.IsZero() || settleAt.Before(next)) {
		next = settleAt
	}
	if pending {
		// States arrive by push-pull and by each member's own sends; look
		// again soon rather than wait for the next change.
		if soon := now.Add(100 * time.Millisecond); next.IsZero() || soon.Before(next) {
			next = soon
		}
	}
	return next
}

// report sends Events for groups this node started or stopped announcing.
func (s *speaker) report(ctx context.Context, mine map[string]plan.Group, applied map[netip.Addr]appliedAddr) {
	next := map[string]ownedGroup{}
	for key, g := range mine {
		var ifs []string
		var conflicts []string
		var ips []netip.Addr
		for _, ip := range g.IPs {
			a := applied[ip]
			if a.conflict != "" {
				conflicts = append(conflicts, fmt.Sprintf("%s is already answered by %s, which is not a herald speaker", ip, a.conflict))
				continue
			}
			if a.iface != "" {
				ifs = append(ifs, a.iface)
				ips = append(ips, ip)
			}
		}
		slices.Sort(ifs)
		ifs = slices.Compact(ifs)
		og := ownedGroup{ips: ips, interfaces: ifs, warning: groupWarning(g, s.cfg.NodeName)}
		next[key] = og
		prev, had := s.owned[key]
		changed := !had || !slices.Equal(prev.ips, og.ips) || !slices.Equal(prev.interfaces, og.interfaces)
		unserved := g.Unserved[s.cfg.NodeName]
		for _, svc := range g.Services {
			ref := s.serviceRef(ctx, svc)
			if ref == nil {
				continue
			}
			if changed && len(ips) > 0 {
				s.recorder.Eventf(ref, corev1.EventTypeNormal, "Announcing", "Node %s announces %s on %s (layer 2)", s.cfg.NodeName, ipaddr.Join(ips), strings.Join(ifs, ", "))
			}
			if !had && len(conflicts) > 0 {
				s.recorder.Event(ref, corev1.EventTypeWarning, "IPConflict", "Node "+s.cfg.NodeName+" does not announce: "+strings.Join(conflicts, "; "))
			}
			if og.warning == "" || og.warning == prev.warning && had {
				continue
			}
			if len(g.OutsidePools) > 0 {
				s.recorder.Eventf(ref, corev1.EventTypeWarning, "OutsidePools", "%s is outside every IPPool; node %s keeps announcing it with the pool named by %s", ipaddr.Join(g.OutsidePools), s.cfg.NodeName, heraldv1.AnnotationAllocatedFromPool)
			}
			if len(g.UnreadablePools) > 0 {
				s.recorder.Eventf(ref, corev1.EventTypeWarning, "PoolUnreadable", "IPPool %s cannot be read; node %s keeps announcing %s from its last valid addresses", strings.Join(g.UnreadablePools, ", "), s.cfg.NodeName, ipaddr.Join(g.IPs))
			}
			if slices.Contains(unserved, svc) {
				s.recorder.Eventf(ref, corev1.EventTypeWarning, "Unreachable", "%s is shared with Services whose ready endpoints are on other nodes; node %s announces it and has no ready endpoint of this Service (externalTrafficPolicy Local), so it is unreachable through %s", ipaddr.Join(g.IPs), s.cfg.NodeName, ipaddr.Join(g.IPs))
			}
		}
	}
	s.owned = next
	s.ownedServices = make(map[string][]string, len(mine))
	for key, g := range mine {
		s.ownedServices[key] = g.Services
	}
}

// groupWarning is what a group's owner must warn about, as one comparable text.
func groupWarning(g plan.Group, self string) string {
	var parts []string
	if len(g.OutsidePools) > 0 {
		parts = append(parts, "outside:"+ipaddr.Join(g.OutsidePools))
	}
	if len(g.UnreadablePools) > 0 {
		parts = append(parts, "unreadable:"+strings.Join(g.UnreadablePools, ","))
	}
	if u := g.Unserved[self]; len(u) > 0 {
		parts = append(parts, "unserved:"+strings.Join(u, ","))
	}
	return strings.Join(parts, ";")
}

// reportNodeAddresses warns, from the node that holds it, about each Service
// address that is a node's own: no speaker announces it. Every speaker computes
// the same list; only the holder speaks, once per change.
func (s *speaker) reportNodeAddresses(ctx context.Context, conflicts []plan.NodeAddressConflict) {
	var mine []plan.NodeAddressConflict
	for _, c := range conflicts {
		if c.Node == s.cfg.NodeName {
			mine = append(mine, c)
		}
	}
	metricNodeAddressConflicts.Set(float64(len(mine)))
	next := make(map[string]bool, len(mine))
	for _, c := range mine {
		k := c.Service + "|" + c.Addr.String()
		next[k] = true
		if s.nodeAddrWarned[k] {
			continue
		}
		if ref := s.serviceRef(ctx, c.Service); ref != nil {
			s.recorder.Eventf(ref, corev1.EventTypeWarning, "NodeAddress", "%s is node %s's own address; no speaker announces it (give the Service another address)", c.Addr, c.Node)
		}
	}
	s.nodeAddrWarned = next
}

func (s *speaker) serviceRef(ctx context.Context, key string) *corev1.Service {
	ns, name, ok := strings.Cut(key, "/")
	if !ok {
		return nil
	}
	var svc corev1.Service
	if err := s.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &svc); err != nil {
		return nil
	}
	return &svc
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

// otherNodes reports whether the cluster has a Ready node besides this one.
func otherNodes(nodes []plan.Node, self string) bool {
	for _, n := range nodes {
		if n.Name != self && n.Ready {
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
