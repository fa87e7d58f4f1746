package app

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/speaker/bfd"
	"github.com/heraldlb/herald/speaker/bgp"
	"github.com/heraldlb/herald/speaker/plan"
)

// +kubebuilder:rbac:groups=herald.io,resources=bgppeers;bgpannouncements,verbs=get;list;watch
// +kubebuilder:rbac:groups=herald.io,resources=bgppeers/status,verbs=get;patch
// +kubebuilder:rbac:groups="",namespace=herald-system,resources=secrets,verbs=list;watch

// bgpState is the BGP side of the speaker: one embedded BGP speaker, created when
// the node first has a peer, and what was last reported about it.
type bgpState struct {
	log     logr.Logger
	speaker *bgp.Speaker
	// announced maps a Service key to the peers it was last reported announced to.
	announced map[string][]string
	// reported is the status entry last written to each BGPPeer.
	reported map[string]heraldv1.BGPPeerNodeStatus
	// problems is the last error reported by Event for each peer.
	problems map[string]string
	// established remembers which peers' sessions were up, for Events.
	established map[string]bool
	// updates are the UPDATE counts last added to the metrics, per peer.
	updates map[string][2]uint64
	status  *statusWriter
	// queuedAt is when each peer's entry was last queued for writing.
	queuedAt map[string]time.Time
	// lastGood is each peer's last configuration that could be used: a Secret
	// that cannot be read must not tear down a working session.
	lastGood map[string]bgp.Peer
	// primed is set once the first plan was taken in without Events.
	primed bool
	// nodeGone: this Node was deleted, and everything withdrawn.
	nodeGone bool
	// bfd runs the BFD sessions of peers that ask for them; made with the
	// first one. bfdState is each peer's last BFD state, for Events.
	bfd      *bfd.Manager
	bfdState map[string]string
	// pwNoted: a pending password change was reported by Event.
	pwNoted map[string]bool

	// The worker (runBGP) owns speaker and the report state above, but for
	// lastGood, which the speaker loop owns; job and kick pass it work.
	jobMu      sync.Mutex
	job        *bgpJob
	bfdNames   map[netip.Addr]string // BFD peer address → BGPPeer name, for resets
	resets     []string              // peers whose BFD session failed, to reset
	kick       chan struct{}
	workerDone chan struct{}
}

func newBGPState(log logr.Logger) *bgpState {
	return &bgpState{
		log:       log.WithName("bgp"),
		announced: map[string][]string{}, reported: map[string]heraldv1.BGPPeerNodeStatus{},
		problems: map[string]string{}, established: map[string]bool{}, updates: map[string][2]uint64{},
		queuedAt: map[string]time.Time{}, lastGood: map[string]bgp.Peer{}, bfdState: map[string]string{}, pwNoted: map[string]bool{},
		kick: make(chan struct{}, 1), workerDone: make(chan struct{}),
	}
}

// bgpInput is the cluster state BGP needs beyond the layer 2 snapshot.
type bgpInput struct {
	peers []heraldv1.BGPPeer
	anns  []plan.BGPAnnouncement
}

func snapshotBGP(ctx context.Context, c client.Reader) (bgpInput, error) {
	var in bgpInput
	var peers heraldv1.BGPPeerList
	if err := c.List(ctx, &peers); err != nil {
		return in, fmt.Errorf("listing BGPPeers: %w", err)
	}
	in.peers = peers.Items
	var anns heraldv1.BGPAnnouncementList
	if err := c.List(ctx, &anns, client.UnsafeDisableDeepCopy); err != nil {
		return in, fmt.Errorf("listing BGPAnnouncements: %w", err)
	}
	for i := range anns.Items {
		a, err := bgpAnnouncement(&anns.Items[i])
		if err != nil {
			continue // the controller reports it on the announcement's status
		}
		in.anns = append(in.anns, a)
	}
	return in, nil
}

// bgpAnnouncement turns a BGPAnnouncement into the plan's form.
func bgpAnnouncement(a *heraldv1.BGPAnnouncement) (plan.BGPAnnouncement, error) {
	out := plan.BGPAnnouncement{Name: a.Name, Pools: a.Spec.IPPools, Peers: a.Spec.Peers}
	var err error
	if out.PoolSelector, err = selector(a.Spec.IPPoolSelector); err != nil {
		return out, err
	}
	if out.NodeSelector, err = selector(a.Spec.NodeSelector); err != nil {
		return out, err
	}
	if out.ServiceSelector, err = selector(a.Spec.ServiceSelector); err != nil {
		return out, err
	}
	for _, c := range a.Spec.Communities {
		v, err := ParseCommunity(c)
		if err != nil {
			return out, err
		}
		out.Communities = append(out.Communities, v)
	}
	for _, c := range a.Spec.LargeCommunities {
		v, err := ParseLargeCommunity(c)
		if err != nil {
			return out, err
		}
		out.LargeCommunities = append(out.LargeCommunities, v)
	}
	if lp := a.Spec.LocalPreference; lp != nil && *lp >= 0 && *lp <= 1<<32-1 {
		out.LocalPref, out.HasLocalPref = uint32(*lp), true
	}
	if l := a.Spec.AggregationLength; l != nil {
		out.AggregationV4 = int(*l)
	}
	if l := a.Spec.AggregationLengthV6; l != nil {
		out.AggregationV6 = int(*l)
	}
	return out, nil
}

// wellKnownCommunities are the RFC 1997 and RFC 3765 names the API accepts.
var wellKnownCommunities = map[string]uint32{
	"no-export":           0xFFFFFF01,
	"no-advertise":        0xFFFFFF02,
	"no-export-subconfed": 0xFFFFFF03,
	"no-peer":             0xFFFFFF04,
}

// ParseCommunity parses "ASN:value" or a well-known community name.
func ParseCommunity(s string) (uint32, error) {
	if v, ok := wellKnownCommunities[s]; ok {
		return v, nil
	}
	hi, lo, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("community %q: want ASN:value", s)
	}
	h, err1 := strconv.ParseUint(hi, 10, 16)
	l, err2 := strconv.ParseUint(lo, 10, 16)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("community %q: both parts must be 0-65535", s)
	}
	return uint32(h)<<16 | uint32(l), nil
}

// ParseLargeCommunity parses "global:local1:local2".
func ParseLargeCommunity(s string) (plan.LargeCommunity, error) {
	parts := strings.Split(s, ":")
	var out plan.LargeCommunity
	if len(parts) != 3 {
		return out, fmt.Errorf("large community %q: want global:local1:local2", s)
	}
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return out, fmt.Errorf("large community %q: each part must be 0-4294967295", s)
		}
		out[i] = uint32(v)
	}
	return out, nil
}

// syncBGP computes this node's routes and applies them. BGP has no election: it
// does not wait for memberlist, and every eligible node announces.
func (s *speaker) syncBGP(ctx context.Context, svcs []plan.Service, nodes []plan.Node, pools []plan.Pool) {
	in, err := snapshotBGP(ctx, s.client)
	if err != nil {
		s.log.Error(err, "Reading BGP configuration; keeping current announcements")
		return
	}
	b := s.bgp
	var self corev1.Node
	if err := s.client.Get(ctx, types.NamespacedName{Name: s.cfg.NodeName}, &self); err != nil {
		if apierrors.IsNotFound(err) {
			// The Node was deleted: it is no longer part of the cluster, and
			// nothing may be routed to it. (Its speaker goes on until killed.)
			if !b.nodeGone {
				s.log.Info("This Node was deleted; withdrawing every BGP route and closing the sessions")
			}
			b.nodeGone = true
			b.submit(&bgpJob{peers: in.peers, plan: plan.BGPPlan{}, peerErrs: map[string]string{}, desired: bgp.Desired{Routes: map[string][]bgp.Route{}}})
			return
		}
		s.log.Error(err, "Reading this node; keeping current BGP announcements")
		return
	}
	b.nodeGone = false
	bp := plan.ComputeBGP(s.cfg.NodeName, svcs, nodes, pools, planBGPPeers(in.peers), in.anns)

	v4, v6 := nodeAddrs(&self)
	job := &bgpJob{peers: in.peers, plan: bp, peerErrs: map[string]string{}, routerID: routerID(v4, s.cfg.NodeName),
		desired: bgp.Desired{Routes: map[string][]bgp.Route{}}, bfdNames: map[netip.Addr]string{}}
	for name := range b.lastGood {
		if !slices.Contains(bp.Peers, name) {
			delete(b.lastGood, name)
		}
	}
	for i := range in.peers {
		p := &in.peers[i]
		if !slices.Contains(bp.Peers, p.Name) {
			continue
		}
		bpeer, err := s.bgpPeer(ctx, p)
		if err != nil {
			job.peerErrs[p.Name] = err.Error()
			good, ok := b.lastGood[p.Name]
			if !ok {
				continue
			}
			bpeer = good // keep the session up until the problem is fixed
		} else {
			b.lastGood[p.Name] = bpeer
		}
		job.desired.Peers = append(job.desired.Peers, bpeer)
		if f := p.Spec.BFD; f != nil {
			job.bfd = append(job.bfd, bfd.Peer{
				Address: bpeer.Address, Local: bpeer.SourceAddress,
				MinRx: time.Duration(f.ReceiveIntervalMilliseconds) * time.Millisecond,
				MinTx: time.Duration(f.TransmitIntervalMilliseconds) * time.Millisecond,
				// The API allows 2-255 (0: the default).
				Multiplier: uint8(min(max(f.DetectMultiplier, 0), 255)),
			})
			job.bfdNames[bpeer.Address] = p.Name
		}
		for _, r := range bp.Routes[p.Name] {
			nh := v4
			if r.Prefix.Addr().Is6() {
				nh = v6
			}
			// Traffic comes in where the session runs: a session from
			// another interface's address announces that address.
			if src := bpeer.SourceAddress; src.IsValid() && src.Is6() == r.Prefix.Addr().Is6() {
				nh = src
			}
			if !nh.IsValid() {
				job.peerErrs[p.Name] = fmt.Sprintf("node has no InternalIP of the family of %s to use as next hop", r.Prefix)
				continue
			}
			route := bgp.Route{Prefix: r.Prefix, NextHop: nh, Communities: r.Communities}
			for _, lc := range r.LargeCommunities {
				route.LargeCommunities = append(route.LargeCommunities, bgp.LargeCommunity{GlobalAdmin: lc[0], LocalData1: lc[1], LocalData2: lc[2]})
			}
			route.LocalPref, route.HasLocalPref = r.LocalPref, r.HasLocalPref
			job.desired.Routes[p.Name] = append(job.desired.Routes[p.Name], route)
		}
	}
	b.submit(job)
}

// bgpJob is one computed BGP state for the worker to apply and report.
type bgpJob struct {
	desired  bgp.Desired
	peers    []heraldv1.BGPPeer
	plan     plan.BGPPlan
	peerErrs map[string]string
	routerID netip.Addr
	bfd      []bfd.Peer
	bfdNames map[netip.Addr]string
}

// submit hands the worker the latest job; an older one not yet taken is dropped.
func (b *bgpState) submit(j *bgpJob) {
	b.jobMu.Lock()
	b.job = j
	b.jobMu.Unlock()
	b.kickWorker()
}

func (b *bgpState) kickWorker() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// runBGP applies jobs until ctx ends. It runs apart from the speaker loop: gobgp's
// calls can wait on a dying session for up to a hold time whatever their context
// says, and the loop must keep layer 2 failover going meanwhile. A session change
// (OnChange) and a 5 s tick re-run the last job, which costs little when nothing
// changed, to report the current state.
func (s *speaker) runBGP(ctx context.Context) {
	b := s.bgp
	defer close(b.workerDone)
	// Counters (prefixes sent) and errors change without a session or cluster
	// event; status should still show them.
	refresh := time.NewTicker(5 * time.Second)
	defer refresh.Stop()
	var last *bgpJob
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		case <-refresh.C:
		}
		b.jobMu.Lock()
		if b.job != nil {
			last, b.job = b.job, nil
			b.bfdNames = last.bfdNames
		}
		resets := b.resets
		b.resets = nil
		b.jobMu.Unlock()
		for _, name := range resets {
			if b.speaker != nil {
				s.log.Info("BFD session down; resetting the BGP session", "peer", name)
				b.speaker.ResetPeer(ctx, name)
			}
		}
		if last == nil {
			continue
		}
		if b.speaker == nil && len(last.desired.Peers) > 0 {
			sp, err := bgp.New(ctx, bgp.Config{RouterID: last.routerID, Logger: slog.New(logr.ToSlogHandler(b.log)), OnChange: b.kickWorker})
			if err != nil {
				s.log.Error(err, "Starting BGP")
				continue
			}
			b.speaker = sp
		}
		var status []bgp.PeerStatus
		if b.speaker != nil {
			if err := b.speaker.Set(ctx, last.desired); err != nil {
				s.log.Error(err, "Applying BGP announcements; will retry at the next change")
			}
			status = b.speaker.Status()
		}
		bfdStates := b.applyBFD(ctx, last)
		s.reportBGP(ctx, last.peers, last.plan, status, last.peerErrs, bfdStates)
	}
}

// applyBFD makes the BFD sessions those of the job, starting BFD with the first
// one, and returns each peer's BFD state by BGPPeer name.
func (b *bgpState) applyBFD(ctx context.Context, j *bgpJob) map[string]string {
	if b.bfd == nil && len(j.bfd) == 0 {
		return nil
	}
	if b.bfd == nil {
		m, err := bfd.New(bfd.Config{Logger: slog.New(logr.ToSlogHandler(b.log.WithName("bfd"))), OnChange: b.onBFD})
		if err != nil {
			for _, p := range j.bfd {
				j.peerErrs[j.bfdNames[p.Address]] = fmt.Sprintf("starting BFD: %v", err)
			}
			return nil
		}
		b.bfd = m
	}
	if err := b.bfd.Set(ctx, j.bfd); err != nil {
		b.log.Error(err, "Applying BFD sessions")
		for _, p := range j.bfd {
			if name := j.bfdNames[p.Address]; j.peerErrs[name] == "" {
				j.peerErrs[name] = fmt.Sprintf("BFD: %v", err)
			}
		}
	}
	out := map[string]string{}
	for _, st := range b.bfd.Status() {
		if name, ok := j.bfdNames[st.Address]; ok && !st.Removing {
			out[name] = st.State.String()
		}
	}
	return out
}

// onBFD is told by BFD when a session comes up or fails. A failed session
// means the router is gone: its BGP session is reset at once rather than at the
// end of the hold time.
func (b *bgpState) onBFD(addr netip.Addr, up bool) {
	if !up {
		b.jobMu.Lock()
		if name, ok := b.bfdNames[addr]; ok {
			b.resets = append(b.resets, name)
		}
		b.jobMu.Unlock()
	}
	b.kickWorker()
}

// bgpPeer turns a BGPPeer into a session, reading its password Secret.
func (s *speaker) bgpPeer(ctx context.Context, p *heraldv1.BGPPeer) (bgp.Peer, error) {
	addr, err := netip.ParseAddr(p.Spec.PeerAddress)
	if err != nil {
		return bgp.Peer{}, fmt.Errorf("peerAddress %q: %w", p.Spec.PeerAddress, err)
	}
	out := bgp.Peer{
		Name: p.Name, Address: addr.Unmap(), Port: uint16(p.Spec.Port),
		ASN: uint32(p.Spec.PeerASN), LocalASN: uint32(p.Spec.LocalASN), Passive: p.Spec.Passive,
		HoldTime: seconds(p.Spec.HoldTimeSeconds), KeepaliveTime: seconds(p.Spec.KeepaliveTimeSeconds),
		ConnectRetry: seconds(p.Spec.ConnectRetrySeconds),
	}
	if p.Spec.EBGPMultihop != nil && *p.Spec.EBGPMultihop {
		out.EBGPMultihopTTL = 255
	}
	if gr := p.Spec.GracefulRestart; gr != nil {
		out.GracefulRestart = 120 * time.Second
		if gr.RestartTimeSeconds > 0 {
			out.GracefulRestart = time.Duration(gr.RestartTimeSeconds) * time.Second
		}
	}
	if p.Spec.SourceAddress != "" {
		if out.SourceAddress, err = netip.ParseAddr(p.Spec.SourceAddress); err != nil {
			return bgp.Peer{}, fmt.Errorf("sourceAddress %q: %w", p.Spec.SourceAddress, err)
		}
	}
	if ref := p.Spec.PasswordSecretRef; ref != nil {
		var sec corev1.Secret
		if err := s.client.Get(ctx, types.NamespacedName{Namespace: s.cfg.Namespace, Name: ref.Name}, &sec); err != nil {
			return bgp.Peer{}, fmt.Errorf("reading the password Secret %s/%s: %w", s.cfg.Namespace, ref.Name, err)
		}
		key := ref.Key
		if key == "" {
			key = "password"
		}
		pw, ok := sec.Data[key]
		if !ok || len(pw) == 0 {
			return bgp.Peer{}, fmt.Errorf("the password Secret %s/%s has no key %q", s.cfg.Namespace, ref.Name, key)
		}
		if len(pw) > 80 {
			return bgp.Peer{}, fmt.Errorf("the password in Secret %s/%s is %d bytes; TCP MD5 allows at most 80", s.cfg.Namespace, ref.Name, len(pw))
		}
		out.Password = string(pw)
	}
	return out, nil
}

// routerID is the node's IPv4 address, or, on an IPv6-only node, a stable 32-bit
// number made from its name (BGP router IDs are 32 bits whatever the family).
func routerID(v4 netip.Addr, node string) netip.Addr {
	if v4.IsValid() {
		return v4
	}
	h := fnv.New32a()
	h.Write([]byte(node))
	id := h.Sum32() | 1 // never 0.0.0.0
	return netip.AddrFrom4([4]byte{byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)})
}

func seconds(v *int32) time.Duration {
	if v == nil {
		return 0
	}
	return time.Duration(*v) * time.Second
}

// nodeAddrs returns a Node's first IPv4 and IPv6 InternalIPs: its next hops.
func nodeAddrs(n *corev1.Node) (v4, v6 netip.Addr) {
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		if err != nil {
			continue
		}
		ip = ip.Unmap()
		switch {
		case ip.Is4() && !v4.IsValid():
			v4 = ip
		case ip.Is6() && !v6.IsValid():
			v6 = ip
		}
	}
	return v4, v6
}

// reportBGP writes this node's entry of each BGPPeer's status when it changed, and
// sends Events: on Services when the peers they are announced to change, on
// BGPPeers when a session comes up or a new problem appears.
func (s *speaker) reportBGP(ctx context.Context, peers []heraldv1.BGPPeer, bp plan.BGPPlan, status []bgp.PeerStatus, peerErrs map[string]string, bfdStates map[string]string) {
	b := s.bgp
	byName := map[string]bgp.PeerStatus{}
	for _, st := range status {
		byName[st.Name] = st
		b.countUpdates(st)
	}
	for i := range peers {
		p := &peers[i]
		selected := slices.Contains(bp.Peers, p.Name)
		st, running := byName[p.Name]
		entry := heraldv1.BGPPeerNodeStatus{Node: s.cfg.NodeName, State: heraldv1.BGPSessionIdle}
		if running {
			entry.State = heraldv1.BGPSessionState(st.State)
			entry.PrefixesSent = int32(st.PrefixesSent)
			entry.LastError = st.LastError
			if !st.Since.IsZero() {
				entry.Since = metav1.NewTime(st.Since.Truncate(time.Second))
			}
		}
		if e := peerErrs[p.Name]; e != "" {
			entry.LastError = e
		}
		entry.BFD = bfdStates[p.Name]
		if was := b.bfdState[p.Name]; selected && was == "Up" && entry.BFD != "" && entry.BFD != "Up" {
			s.recorder.Eventf(p, corev1.EventTypeWarning, "BFDDown", "Node %s: BFD session with %s went %s; unless the router said it went down on purpose, the path to it failed and the BGP session was reset", s.cfg.NodeName, p.Spec.PeerAddress, entry.BFD)
		}
		b.bfdState[p.Name] = entry.BFD
		if entry.BFD != "" {
			metricBFDUp.WithLabelValues(p.Name).Set(boolGauge(entry.BFD == "Up"))
		} else {
			metricBFDUp.DeleteLabelValues(p.Name)
		}
		if running && st.PasswordPending && !b.pwNoted[p.Name] {
			s.recorder.Eventf(p, corev1.EventTypeNormal, "PasswordPending", "Node %s: the new password is used when the session next connects; the established session keeps its connection (change the router's password now: it resets the session, which reconnects with the new one)", s.cfg.NodeName)
		}
		if running {
			b.pwNoted[p.Name] = st.PasswordPending
		}
		// What the API server holds heals what memory misses: an entry left by
		// an earlier run of this speaker, or one lost with a re-created peer.
		cur, inStatus := ownEntry(p, s.cfg.NodeName)
		prev, had := b.reported[p.Name]
		switch {
		case !selected:
			if had || inStatus {
				b.status.queue(p.Name, nil)
			}
			b.forget(p.Name)
			continue
		case !had || prev != entry:
			b.status.queue(p.Name, &entry)
			b.reported[p.Name] = entry
		case !inStatus || !sameEntry(cur, entry):
			// Written but not (yet) seen in the cache: write again, now and then.
			if time.Since(b.queuedAt[p.Name]) > 10*time.Second {
				b.status.queue(p.Name, &entry)
				b.queuedAt[p.Name] = time.Now()
			}
		}
		if !had || prev != entry {
			b.queuedAt[p.Name] = time.Now()
		}
		up := entry.State == heraldv1.BGPSessionEstablished
		metricBGPUp.WithLabelValues(p.Name).Set(boolGauge(up))
		metricBGPPrefixes.WithLabelValues(p.Name).Set(float64(entry.PrefixesSent))
		if up && !b.established[p.Name] {
			s.recorder.Eventf(p, corev1.EventTypeNormal, "SessionEstablished", "Node %s: BGP session with %s (AS %d) established", s.cfg.NodeName, p.Spec.PeerAddress, p.Spec.PeerASN)
			delete(b.problems, p.Name)
		}
		b.established[p.Name] = up
		if !up && entry.LastError != "" && b.problems[p.Name] != entry.LastError {
			s.recorder.Eventf(p, corev1.EventTypeWarning, "SessionDown", "Node %s: BGP session with %s is %s: %s", s.cfg.NodeName, p.Spec.PeerAddress, entry.State, entry.LastError)
			b.problems[p.Name] = entry.LastError
		}
	}
	for name := range b.reported {
		if !slices.ContainsFunc(peers, func(p heraldv1.BGPPeer) bool { return p.Name == name }) {
			b.forget(name) // the BGPPeer is gone, and its status with it
		}
	}

	if !b.primed {
		// A restarted speaker announces what it announced before: saying so
		// again for every Service would flood Events in a rolling update.
		b.announced, b.primed = bp.Announced, true
		return
	}
	for key, to := range bp.Announced {
		if slices.Equal(b.announced[key], to) {
			continue
		}
		if ref := s.serviceRef(ctx, key); ref != nil {
			s.recorder.Eventf(ref, corev1.EventTypeNormal, "AnnouncingBGP", "Node %s announces %s over BGP to %s", s.cfg.NodeName, ingressIPs(ref), strings.Join(peerNames(peers, to), ", "))
		}
	}
	for key := range b.announced {
		if _, still := bp.Announced[key]; !still {
			if ref := s.serviceRef(ctx, key); ref != nil {
				s.recorder.Eventf(ref, corev1.EventTypeNormal, "WithdrawnBGP", "Node %s no longer announces %s over BGP", s.cfg.NodeName, ingressIPs(ref))
			}
		}
	}
	b.announced = bp.Announced
}

// forget drops what is remembered about a peer this node no longer has, metrics
// included, so a peer selected again starts afresh.
func (b *bgpState) forget(name string) {
	delete(b.reported, name)
	delete(b.queuedAt, name)
	delete(b.established, name)
	delete(b.problems, name)
	delete(b.updates, name)
	delete(b.bfdState, name)
	delete(b.pwNoted, name)
	metricBGPUp.DeleteLabelValues(name)
	metricBFDUp.DeleteLabelValues(name)
	metricBGPPrefixes.DeleteLabelValues(name)
	metricBGPUpdates.DeleteLabelValues(name, "sent")
	metricBGPUpdates.DeleteLabelValues(name, "received")
}

// ownEntry returns this node's entry of a BGPPeer's status.
func ownEntry(p *heraldv1.BGPPeer, node string) (heraldv1.BGPPeerNodeStatus, bool) {
	for _, e := range p.Status.Nodes {
		if e.Node == node {
			return e, true
		}
	}
	return heraldv1.BGPPeerNodeStatus{}, false
}

func sameEntry(a, b heraldv1.BGPPeerNodeStatus) bool {
	return a.Node == b.Node && a.State == b.State && a.PrefixesSent == b.PrefixesSent && a.LastError == b.LastError && a.BFD == b.BFD && a.Since.Equal(&b.Since)
}

// countUpdates adds the UPDATEs exchanged since the last call to the metrics. The
// embedded speaker's counts restart with a session, so a count lower than the last
// one is all new.
func (b *bgpState) countUpdates(st bgp.PeerStatus) {
	last := b.updates[st.Name]
	for i, cur := range [2]uint64{st.UpdatesSent, st.UpdatesReceived} {
		d := cur
		if cur >= last[i] {
			d = cur - last[i]
		}
		metricBGPUpdates.WithLabelValues(st.Name, [2]string{"sent", "received"}[i]).Add(float64(d))
	}
	b.updates[st.Name] = [2]uint64{st.UpdatesSent, st.UpdatesReceived}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// peerNames describes peers for an Event: "frr (10.77.0.1)".
func peerNames(peers []heraldv1.BGPPeer, names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		d := n
		for i := range peers {
			if peers[i].Name == n {
				d = fmt.Sprintf("%s (%s)", n, peers[i].Spec.PeerAddress)
			}
		}
		out = append(out, d)
	}
	return out
}

func ingressIPs(svc *corev1.Service) string {
	var ips []string
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP != "" {
			ips = append(ips, ing.IP)
		}
	}
	return strings.Join(ips, ", ")
}

// statusWriter writes this node's BGPPeer status entries in the background: the
// speaker loop must not wait on the API server (it may be gone, and the loop keeps
// layer 2 and BGP going meanwhile). Only the latest entry per peer is written.
type statusWriter struct {
	apply   func(ctx context.Context, peer string, entry *heraldv1.BGPPeerNodeStatus) error
	log     logr.Logger
	mu      sync.Mutex
	pending map[string]*heraldv1.BGPPeerNodeStatus // nil value: remove the entry
	kick    chan struct{}
}

func newStatusWriter(log logr.Logger, apply func(context.Context, string, *heraldv1.BGPPeerNodeStatus) error) *statusWriter {
	return &statusWriter{apply: apply, log: log, pending: map[string]*heraldv1.BGPPeerNodeStatus{}, kick: make(chan struct{}, 1)}
}

func (w *statusWriter) queue(peer string, entry *heraldv1.BGPPeerNodeStatus) {
	w.mu.Lock()
	if entry != nil {
		e := *entry
		entry = &e
	}
	w.pending[peer] = entry
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// run writes queued entries until ctx ends, retrying failed writes every 2 s
// unless a newer entry replaced them.
func (w *statusWriter) run(ctx context.Context) {
	var retry <-chan time.Time
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-retry:
		}
		retry = nil
		// At most one round of writes a second: a session cycling through
		// states must not turn into a stream of writes (each one wakes every
		// speaker's and the controller's watch).
		if wait := time.Second - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		last = time.Now()
		w.mu.Lock()
		batch := w.pending
		w.pending = map[string]*heraldv1.BGPPeerNodeStatus{}
		w.mu.Unlock()
		for peer, entry := range batch {
			err := w.apply(ctx, peer, entry)
			if err == nil || apierrors.IsNotFound(err) {
				continue
			}
			w.log.Error(err, "Writing BGPPeer status; will retry", "peer", peer)
			w.mu.Lock()
			if _, newer := w.pending[peer]; !newer {
				w.pending[peer] = entry
			}
			w.mu.Unlock()
			retry = time.After(2 * time.Second)
		}
	}
}

// applyPeerStatus writes this node's entry of a BGPPeer's status.nodes with
// server-side apply under a field manager of its own, so speakers never overwrite
// each other's entries; nil removes the entry.
func (s *speaker) applyPeerStatus(ctx context.Context, peer string, entry *heraldv1.BGPPeerNodeStatus) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return s.client.Status().Patch(ctx, heraldv1.BGPPeerNodeStatusApply(peer, entry), client.Apply, client.FieldOwner(heraldv1.SpeakerFieldManagerPrefix+s.cfg.NodeName), client.ForceOwnership)
}

// closeBGP ends BGP as the stop asks. A rollout replacing this speaker leaves
// the sessions with graceful restart up (the routers keep their routes until the
// new speaker sends them again; see restarting). Any other stop withdraws every
// route and closes the sessions, so the routers move traffic to the other nodes
// before this one stops, and marks this node's status entries Idle, so a node
// drained for good does not look established. BFD says AdminDown either way,
// which routers do not take for a failure (RFC 5882).
func (s *speaker) closeBGP(ctx context.Context) {
	// The worker stops with the speaker's context, which has ended.
	select {
	case <-s.bgp.workerDone:
	case <-ctx.Done():
		s.log.Error(ctx.Err(), "BGP is still busy; stopping it anyway")
		return
	}
	if s.bgp.speaker == nil {
		return
	}
	restart, why := restarting(s.shutdownFacts(ctx))
	start := time.Now()
	if restart {
		s.log.Info("Restarting: BGP sessions with graceful restart stay up until the process exits; the routers keep their routes", "why", why)
		if err := s.bgp.speaker.Restart(ctx); err != nil {
			s.log.Error(err, "Stopping BGP")
		}
	} else {
		s.log.Info("Stopping: withdrawing BGP routes", "why", why)
		if err := s.bgp.speaker.Close(ctx); err != nil {
			s.log.Error(err, "Stopping BGP")
		}
	}
	if s.bgp.bfd != nil {
		if err := s.bgp.bfd.Close(ctx); err != nil {
			s.log.Error(err, "Stopping BFD")
		}
	}
	if restart {
		s.log.Info("BGP left to the routers' graceful restart", "took", time.Since(start).String())
		return // the new speaker writes its own entries
	}
	s.log.Info("BGP routes withdrawn and sessions closed", "took", time.Since(start).String())
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	for name, e := range s.bgp.reported {
		e.State, e.Since, e.PrefixesSent, e.LastError, e.BFD = heraldv1.BGPSessionIdle, now, 0, "the speaker stopped", ""
		if err := s.applyPeerStatus(ctx, name, &e); err != nil {
			s.log.Error(err, "Marking BGPPeer status stopped", "peer", name)
		}
	}
}
