package app

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/speaker/announced"
	"github.com/heraldlb/herald/speaker/election"
	"github.com/heraldlb/herald/speaker/plan"
)

// +kubebuilder:rbac:groups="",resources=services/status,verbs=patch

// reportAnnounced works out the herald.io/Announced condition of every Service
// this node reports (see announced.Reporter) and hands the writer the whole set:
// Services it no longer reports are dropped from its queue, whoever reports
// them now writes them.
func (s *speaker) reportAnnounced(ctx context.Context, in announced.Input, ein election.Input, mine map[string]plan.Group, applied map[netip.Addr]appliedAddr) {
	if s.announced == nil {
		return
	}
	for _, m := range ein.Nodes {
		for k := range m.Refuses {
			if in.Refuses == nil {
				in.Refuses = map[string][]string{}
			}
			in.Refuses[k] = append(in.Refuses[k], m.Name)
		}
	}
	in.Local = announced.Local{Interfaces: map[netip.Addr]string{}, Conflicts: map[netip.Addr]string{}, Refused: s.refused, Unsettled: map[string]bool{}}
	for ip, a := range applied {
		if a.iface != "" {
			in.Local.Interfaces[ip] = a.iface
		}
		if a.conflict != "" {
			in.Local.Conflicts[ip] = a.conflict
		}
	}
	for key, owner := range in.Owner {
		if _, ok := mine[key]; owner == s.cfg.NodeName && !ok && s.refused[key] == "" {
			in.Local.Unsettled[key] = true
		}
	}
	bin, err := snapshotBGP(ctx, s.client)
	if err != nil {
		s.log.Error(err, "Reading BGP configuration for the Services' Announced condition; trying again at the next change")
		return
	}
	in.BGP = announced.BGP{Peers: planBGPPeers(bin.peers), Anns: bin.anns, Sessions: sessions(bin.peers)}
	want := map[string]*announced.Verdict{}
	up, down := 0, 0
	for key, v := range announced.Decide(in) {
		want[key] = &v
		if v.Announced {
			up++
		} else {
			down++
		}
	}
	metricAnnouncedReported.WithLabelValues("true").Set(float64(up))
	metricAnnouncedReported.WithLabelValues("false").Set(float64(down))
	// A Service that shows the condition but is no longer announced at all
	// (no address any more, another class, not a LoadBalancer) loses it,
	// written by the speaker the hash picks.
	var svcs corev1.ServiceList
	if err := s.client.List(ctx, &svcs, client.UnsafeDisableDeepCopy); err == nil {
		planned := make(map[string]bool, len(in.Services))
		for _, ps := range in.Services {
			planned[ps.Key] = true
		}
		for i := range svcs.Items {
			svc := &svcs.Items[i]
			key := svc.Namespace + "/" + svc.Name
			if planned[key] || meta.FindStatusCondition(svc.Status.Conditions, heraldv1.ConditionAnnounced) == nil {
				continue
			}
			if announced.Reporter(key, "", in.Alive) == s.cfg.NodeName {
				want[key] = nil
			}
		}
	}
	s.announced.set(want)
}

// planBGPPeers turns BGPPeers into the plan's form, leaving out those the
// controller reports as invalid.
func planBGPPeers(peers []heraldv1.BGPPeer) []plan.BGPPeer {
	out := make([]plan.BGPPeer, 0, len(peers))
	for i := range peers {
		p := &peers[i]
		sel, err := selector(p.Spec.NodeSelector)
		if err != nil {
			continue
		}
		addr, err := netip.ParseAddr(p.Spec.PeerAddress)
		if err != nil {
			continue
		}
		out = append(out, plan.BGPPeer{Name: p.Name, NodeSelector: sel, IPv6: addr.Unmap().Is6()})
	}
	return out
}

// sessions reads every node's BGP sessions from the BGPPeers' status.
func sessions(peers []heraldv1.BGPPeer) map[string]map[string]announced.Session {
	out := map[string]map[string]announced.Session{}
	for i := range peers {
		p := &peers[i]
		for _, e := range p.Status.Nodes {
			if out[e.Node] == nil {
				out[e.Node] = map[string]announced.Session{}
			}
			out[e.Node][p.Name] = announced.Session{Established: e.State == heraldv1.BGPSessionEstablished, State: string(e.State), LastError: e.LastError}
		}
	}
	return out
}

// establishedSet is which node/peer sessions a BGPPeer shows Established, as
// one comparable text: a change must recompute the Announced conditions.
func establishedSet(p *heraldv1.BGPPeer) string {
	var up []string
	for _, e := range p.Status.Nodes {
		if e.State == heraldv1.BGPSessionEstablished {
			up = append(up, e.Node)
		}
	}
	slices.Sort(up)
	return strings.Join(up, ",")
}

// announcedWriter writes the herald.io/Announced condition of the Services this
// node reports, in the background (the speaker loop must not wait on the API
// server) and at a bounded rate: a node failure moves hundreds of Services at
// once, and every write wakes every watcher of Services (kube-proxy on each
// node among them). Only the latest verdict per Service is written, and nothing
// is written when the Service already shows it.
type announcedWriter struct {
	log      logr.Logger
	reader   client.Reader
	recorder record.EventRecorder
	apply    func(ctx context.Context, svc *corev1.Service, cond *metav1.Condition) error
	limiter  *rate.Limiter
	now      func() time.Time

	mu sync.Mutex
	// want maps the key of each Service this node reports to its verdict;
	// nil removes the condition.
	want map[string]*announced.Verdict
	// sent maps a Service's key to the resourceVersion it had when this
	// writer last wrote it: until the cache shows another, it has not seen
	// that write, and comparing with it would write again.
	sent map[string]string
	kick chan struct{}
}

func newAnnouncedWriter(log logr.Logger, reader client.Reader, rec record.EventRecorder, qps float64, burst int,
	apply func(context.Context, *corev1.Service, *metav1.Condition) error) *announcedWriter {
	return &announcedWriter{log: log, reader: reader, recorder: rec, apply: apply,
		limiter: rate.NewLimiter(rate.Limit(qps), max(burst, 1)), now: time.Now,
		want: map[string]*announced.Verdict{}, sent: map[string]string{}, kick: make(chan struct{}, 1)}
}

func (w *announcedWriter) set(want map[string]*announced.Verdict) {
	w.mu.Lock()
	w.want = want
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// run writes until ctx ends; failed writes are retried every 2 s.
func (w *announcedWriter) run(ctx context.Context) {
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-retry:
		}
		retry = nil
		switch failed, stale := w.pass(ctx); {
		case failed:
			retry = time.After(2 * time.Second)
		case stale:
			// The cache had not seen this writer's last write of some
			// Service yet: look again once it has.
			retry = time.After(250 * time.Millisecond)
		}
	}
}

// pass writes every Service whose condition differs from its verdict, Services
// that lost their announcement first (they are the outages). It reports whether
// a write failed, and whether a Service was skipped because the cache had not
// seen this writer's last write of it.
func (w *announcedWriter) pass(ctx context.Context) (failed, stale bool) {
	w.mu.Lock()
	keys := make([]string, 0, len(w.want))
	for k := range w.want {
		keys = append(keys, k)
	}
	down := func(k string) bool { v := w.want[k]; return v != nil && !v.Announced }
	slices.SortFunc(keys, func(a, b string) int {
		if da, db := down(a), down(b); da != db {
			if da {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	w.mu.Unlock()
	for _, key := range keys {
		if ctx.Err() != nil {
			return false, false
		}
		w.mu.Lock()
		v, ok := w.want[key]
		if v != nil {
			c := *v
			v = &c
		}
		w.mu.Unlock()
		if !ok {
			continue // no longer this node's to write
		}
		skipped, err := w.write(ctx, key, v)
		if err != nil {
			w.log.Error(err, "Writing the Announced condition; will retry", "service", key)
			failed = true
		}
		stale = stale || skipped
	}
	return failed, stale
}

// write brings one Service's condition to v (nil: none), when it differs. stale
// is whether it could not tell, the cache not having seen its last write yet.
func (w *announcedWriter) write(ctx context.Context, key string, v *announced.Verdict) (stale bool, err error) {
	ns, name, _ := strings.Cut(key, "/")
	var svc corev1.Service
	if err := w.reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &svc); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("reading Service %s: %w", key, err)
	}
	w.mu.Lock()
	stale = w.sent[key] == svc.ResourceVersion
	if !stale {
		delete(w.sent, key)
	}
	w.mu.Unlock()
	if stale {
		return true, nil
	}
	old := meta.FindStatusCondition(svc.Status.Conditions, heraldv1.ConditionAnnounced)
	cond := condition(v, svc.Generation)
	if cond == nil && old == nil {
		return false, nil
	}
	if cond != nil && old != nil && old.Status == cond.Status && old.Reason == cond.Reason && old.Message == cond.Message && old.ObservedGeneration == cond.ObservedGeneration {
		return false, nil
	}
	if cond != nil {
		cond.LastTransitionTime = metav1.NewTime(w.now())
		if old != nil && old.Status == cond.Status {
			cond.LastTransitionTime = old.LastTransitionTime
		}
	}
	if err := w.limiter.Wait(ctx); err != nil {
		return false, nil // stopping
	}
	if err := w.apply(ctx, &svc, cond); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) || (apierrors.IsInvalid(err) && strings.Contains(err.Error(), "uid")) {
			return false, nil // gone or replaced: its own events bring it back
		}
		return false, err
	}
	metricAnnouncedWrites.Inc()
	w.mu.Lock()
	w.sent[key] = svc.ResourceVersion
	w.mu.Unlock()
	switch {
	case cond == nil:
	case cond.Status == metav1.ConditionFalse && (old == nil || old.Status != metav1.ConditionFalse || old.Reason != cond.Reason):
		w.recorder.Event(&svc, corev1.EventTypeWarning, "NotAnnounced", cond.Message)
	case cond.Status == metav1.ConditionTrue && old != nil && old.Status == metav1.ConditionFalse:
		w.recorder.Event(&svc, corev1.EventTypeNormal, "Announced", cond.Message)
	}
	return false, nil
}

// maxConditionMessage bounds the condition's message well under the API's
// 32,768 bytes, so that Events carrying it stay readable too.
const maxConditionMessage = 4096

const truncatedNote = " … (cut short: kubectl herald status, the BGPPeers' status and the speakers' Events tell the rest)"

// condition is the herald.io/Announced condition of a verdict (nil: none).
func condition(v *announced.Verdict, gen int64) *metav1.Condition {
	if v == nil {
		return nil
	}
	msg := v.Message
	if len(msg) > maxConditionMessage {
		// The API refuses a condition message over 32,768 bytes; a BGP
		// verdict listing every node's sessions can grow past it.
		cut := maxConditionMessage - len(truncatedNote)
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + truncatedNote
	}
	c := &metav1.Condition{Type: heraldv1.ConditionAnnounced, Status: metav1.ConditionFalse, Reason: v.Reason, Message: msg, ObservedGeneration: gen}
	if v.Announced {
		c.Status = metav1.ConditionTrue
	}
	return c
}

// applyAnnounced sets a Service's herald.io/Announced condition by server-side
// apply, under the field manager every speaker shares: whichever speaker reports
// the Service now replaces what another wrote before. nil removes it. The UID
// makes the write fail rather than land on a Service re-created under the same
// name since it was read.
func (s *speaker) applyAnnounced(ctx context.Context, svc *corev1.Service, cond *metav1.Condition) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": svc.Name, "namespace": svc.Namespace, "uid": string(svc.UID)},
		"status":   map[string]any{},
	}}
	if cond != nil {
		u.Object["status"] = map[string]any{"conditions": []any{map[string]any{
			"type": cond.Type, "status": string(cond.Status), "reason": cond.Reason, "message": cond.Message,
			"observedGeneration": cond.ObservedGeneration, "lastTransitionTime": cond.LastTransitionTime.UTC().Format(time.RFC3339),
		}}}
	}
	return s.client.Status().Patch(ctx, u, client.Apply, client.FieldOwner(heraldv1.SpeakerStatusFieldManager), client.ForceOwnership)
}

// announcedOnly reports whether a Service update changed nothing but its
// herald.io/Announced condition: the speakers' own writes, which no plan reads.
// Recomputing on them would make every condition write cost every speaker a
// sync.
func announcedOnly(old, cur *corev1.Service) bool {
	if !equality.Semantic.DeepEqual(old.Spec, cur.Spec) || !maps.Equal(old.Labels, cur.Labels) ||
		!maps.Equal(old.Annotations, cur.Annotations) || !equality.Semantic.DeepEqual(old.Status.LoadBalancer, cur.Status.LoadBalancer) ||
		!old.DeletionTimestamp.Equal(cur.DeletionTimestamp) || old.UID != cur.UID {
		return false
	}
	others := func(cs []metav1.Condition) []metav1.Condition {
		return slices.DeleteFunc(slices.Clone(cs), func(c metav1.Condition) bool { return c.Type == heraldv1.ConditionAnnounced })
	}
	return equality.Semantic.DeepEqual(others(old.Status.Conditions), others(cur.Status.Conditions)) &&
		!equality.Semantic.DeepEqual(old.Status.Conditions, cur.Status.Conditions)
}
