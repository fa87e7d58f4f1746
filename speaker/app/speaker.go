package app

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
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
	// started is when the loop began; joined is set once another speaker was
	// seen.
	started time.Time
	joined  bool
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
		ready:    &readyState{r: readiness{HoldDown: cfg.HoldDown}},
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
	l2, err := newL2Announcer(s.log, s.cfg.ProbeTimeout)
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
	s.join(ctx)

	rejoin := time.NewTicker(5 * time.Second)
	defer rejoin.Stop()
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
		case <-members.Changed():
		case <-recheckC():
			recheck = nil
		case <-l2.Changed():
			// A node whose links all went down was cut off, whatever memberlist
			// has noticed yet: when a link comes back, it says it has returned.
			up := linkUp(s.bind)
			if up && !s.linkWasUp {
				// Cut off, this node saw itself alone and elected itself
				// for everything. Back, it announces nothing until it hears
				// the others again (as at start), and they hold it down.
				s.log.Info("Network link is back; silent until the other speakers are heard, then held down")
				members.MarkReturned()
				s.joined, s.started = false, time.Now()
				s.ready.update(func(r *readiness) { r.Joined, r.Applied = false, false })
			}
			s.linkWasUp = up
		case <-rejoin.C:
			s.join(ctx)
			continue
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

// join contacts the speakers of every other Node this one does not yet see.
func (s *speaker) join(ctx context.Context) {
	var nodes corev1.NodeList
	if err := s.client.List(ctx, &nodes); err != nil {
		s.log.Error(err, "Listing Nodes to join memberlist")
		return
	}
	alive := map[string]bool{}
	for _, m := range s.members.Alive() {
		alive[m.Name] = true
	}
	var peers []string
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if n.Name == s.cfg.NodeName || alive[n.Name] {
			continue
		}
		if a := nodeAddr(n); a != "" {
			peers = append(peers, hostPort(a, s.cfg.MemberlistPort))
		}
	}
	if len(peers) == 0 {
		return
	}
	if n, err := s.members.Join(peers); err != nil {
		s.log.V(1).Info("Joining memberlist", "peers", peers, "error", err.Error())
	} else {
		s.log.V(1).Info("Joined memberlist", "peers", peers, "answered", n)
	}
}

// sync recomputes what this node announces and applies it. It returns when the
// election may change by itself (a hold-down ending), or zero.
func (s *speaker) sync(ctx context.Context) time.Time {
	svcs, nodes, pools, anns, err := snapshot(ctx, s.client)
	if err != nil {
		s.log.Error(err, "Reading cluster state; keeping current announcements")
		return time.Time{}
	}
	s.syncBGP(ctx, svcs, nodes, pools)
	p := plan.Compute(svcs, nodes, pools, anns)
	in := election.Input{Keys: map[string][]string{}, Now: time.Now(), HoldDown: s.cfg.HoldDown}
	for _, g := range p.Groups {
		in.Keys[g.Key] = g.Nodes
	}
	alive := s.members.Alive()
	for _, m := range alive {
		in.Nodes = append(in.Nodes, election.Node{Name: m.Name, Since: m.Since})
	}
	res := election.Elect(in)

	speakerMACs := map[string]bool{}
	for _, mac := range s.members.KnownMACs() {
		speakerMACs[strings.ToLower(mac)] = true
	}
	for _, mac := range localMACs() {
		speakerMACs[strings.ToLower(mac)] = true
	}
	// Until it has heard another speaker, a starting speaker announces nothing
	// (for at most a hold-down): alone, it would elect itself for every address
	// and pull traffic from the nodes serving it. A lone node of a one-node
	// cluster does not wait.
	if len(alive) > 1 {
		s.joined = true
	}
	alone := !otherNodes(nodes, s.cfg.NodeName)
	s.ready.setMembers(s.cfg.NodeName, alive)
	s.ready.update(func(r *readiness) { r.Joined, r.Alone = s.joined, alone })
	if !s.joined && time.Since(s.started) < s.cfg.HoldDown && !alone {
		s.log.V(1).Info("Not announcing until another speaker is heard", "waitUntil", s.started.Add(s.cfg.HoldDown))
		return s.started.Add(s.cfg.HoldDown)
	}
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
		mine[g.Key] = g
		for _, ip := range g.IPs {
			desired = append(desired, want{addr: ip, interfaces: g.Interfaces, probe: !s.seen[ip]})
		}
	}
	s.seen = seen
	applied := s.l2.Set(ctx, desired, speakerMACs)
	s.ready.update(func(r *readiness) { r.Applied = true })
	s.report(ctx, mine, applied)
	metricMembers.Set(float64(len(alive)))
	return res.Recheck
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
		og := ownedGroup{ips: ips, interfaces: ifs}
		next[key] = og
		prev, had := s.owned[key]
		changed := !had || !slices.Equal(prev.ips, og.ips) || !slices.Equal(prev.interfaces, og.interfaces)
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
		}
	}
	s.owned = next
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
	time.Sleep(s.cfg.HandOver)
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
