// Package ipam is the controller's glue between the cluster and the allocator: it
// turns IPPools and LoadBalancer Services into allocator calls, writes addresses to
// Service status (the ledger), and keeps IPPool status current.
package ipam

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/allocator"
	"github.com/heraldlb/herald/internal/ipaddr"
	"github.com/heraldlb/herald/internal/svcclass"
)

// Least privilege: read Services and Namespaces, write Service status and patch
// the one annotation herald owns (herald.io/allocated-from-pool), read IPPools and
// write their status, record Events.
//
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=services/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=herald.io,resources=ippools,verbs=get;list;watch
// +kubebuilder:rbac:groups=herald.io,resources=ippools/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=herald-system,resources=leases,verbs=get;list;watch;create;update;patch;delete

// FieldManager is the server-side apply field manager of the controller's writes.
const FieldManager = "herald-controller"

// Options configure the controller.
type Options struct {
	// Classless says whether Services with no spec.loadBalancerClass are handled.
	Classless bool
	// Orphans is the policy for addresses a pool edit leaves outside every pool.
	Orphans allocator.OrphanPolicy
	// Workers is how many Services are reconciled at once (default 4). Allocation
	// itself is serialised; workers overlap the API writes.
	Workers int
	// PoolStatusDelay coalesces IPPool status writes during bursts (default 200ms).
	PoolStatusDelay time.Duration
	// Namespace is herald's namespace, where BGPPeers' password Secrets live; empty
	// skips checking that they exist.
	Namespace string
}

// Controller assigns addresses to Services and reports on pools.
type Controller struct {
	client    client.Client
	informers ctrlcache.Informers
	cs        kubernetes.Interface
	recorder  record.EventRecorder
	opts      Options
	log       logr.Logger

	// wake carries pending Services back to the work queue when addresses free up.
	wake chan event.GenericEvent
	// poolsDirty (capacity 1) tells the pool status writer to run.
	poolsDirty chan struct{}
	// leading is set once this replica holds the lease and starts rebuilding.
	leading atomic.Bool
	// rebuilt is set once the allocator holds every address in Service status.
	// Atomic, so /readyz never waits for mu.
	rebuilt atomic.Bool

	// mu guards the following fields; it is held for allocation, never across an
	// API call that writes.
	mu    sync.Mutex
	alloc *allocator.Allocator
	// poolVersions is the generation of each IPPool the allocator has seen.
	poolVersions map[string]int64
	// poolErrors holds, per IPPool, why its current spec could not be used (the
	// allocator keeps the last spec that could).
	poolErrors map[string]error
	// pending are the Services handled whose request was refused; the value
	// reports whether they have no address at all (what the gauge counts).
	pending map[types.NamespacedName]bool
	// nodeAddrs is the Nodes' addresses the allocator was last given.
	nodeAddrs map[netip.Addr][]string
	// nodeWake are the Services a node address change affects, woken by the
	// pool status writer once mu is released.
	nodeWake []types.NamespacedName
	// quarantinedSince is when each Service with quarantined addresses gave up
	// the first of them, for herald_address_quarantine_seconds.
	quarantinedSince map[string]time.Time
	// writes counts status writes, for tests that check only the leader writes.
	writes atomic.Int64
	// nodesDirty is set by Node events that may change node addresses (and at
	// start), so the next pass lists Nodes once for any number of events.
	nodesDirty atomic.Bool
	// kubeProxy is what the ConfigMap kube-system/kube-proxy says (nil: nothing).
	kubeProxy atomic.Pointer[kubeProxyState]

	// peerSecrets remembers, per BGPPeer, the spec last checked for a missing
	// password Secret; only the status writer goroutine touches it.
	peerSecrets map[string]peerSecretCheck
}

// New returns a Controller. Register it with SetupWithManager.
func New(mgr manager.Manager, cs kubernetes.Interface, opts Options) *Controller {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.PoolStatusDelay <= 0 {
		opts.PoolStatusDelay = 200 * time.Millisecond
	}
	c := &Controller{
		client:       mgr.GetClient(),
		informers:    mgr.GetCache(),
		cs:           cs,
		recorder:     mgr.GetEventRecorderFor(FieldManager),
		opts:         opts,
		log:          mgr.GetLogger().WithName("ipam"),
		wake:         make(chan event.GenericEvent, 1024),
		poolsDirty:   make(chan struct{}, 1),
		alloc:        allocator.New(opts.Orphans),
		poolVersions: map[string]int64{},
		poolErrors:   map[string]error{},
		pending:      map[types.NamespacedName]bool{},

		quarantinedSince: map[string]time.Time{},
		peerSecrets:      map[string]peerSecretCheck{},
	}
	c.nodesDirty.Store(true)
	return c
}

// SetupWithManager registers the Service controller, the ledger rebuild and the
// IPPool status writer, all of which run only on the elected leader.
func (c *Controller) SetupWithManager(mgr manager.Manager) error {
	err := ctrl.NewControllerManagedBy(mgr).
		Named("service").
		For(&corev1.Service{}).
		// Only spec changes matter to Services; the controller's own status
		// writes must not requeue every Service.
		Watches(&heraldv1.IPPool{}, handler.EnqueueRequestsFromMapFunc(c.allServices), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(c.servicesIn)).
		WatchesRawSource(source.Channel(c.wake, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: c.opts.Workers}).
		Complete(c)
	if err != nil {
		return fmt.Errorf("building the Service controller: %w", err)
	}
	if err := mgr.Add(manager.RunnableFunc(c.rebuild)); err != nil {
		return fmt.Errorf("adding the ledger rebuild: %w", err)
	}
	if err := mgr.Add(manager.RunnableFunc(c.runPoolStatus)); err != nil {
		return fmt.Errorf("adding the IPPool status writer: %w", err)
	}
	return nil
}

// ReadyCheck fails while the leader has not yet rebuilt its ledger from Service
// status; a replica that is not leading is ready (it stands by).
func (c *Controller) ReadyCheck(*http.Request) error {
	if c.leading.Load() && !c.rebuilt.Load() {
		return fmt.Errorf("ledger not yet rebuilt from Service status")
	}
	return nil
}

// Leading reports whether this replica has been elected and started leading.
func (c *Controller) Leading() bool { return c.leading.Load() }

// StatusWrites returns how many Service status writes this replica made.
func (c *Controller) StatusWrites() int64 { return c.writes.Load() }

// rebuild runs once this replica leads: it loads every address already in Service
// status into the allocator before any Service is given a new one.
func (c *Controller) rebuild(ctx context.Context) error {
	c.leading.Store(true)
	if err := c.ensureRebuilt(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func (c *Controller) ensureRebuilt(ctx context.Context) error {
	if c.rebuilt.Load() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rebuilt.Load() {
		return nil
	}
	start := time.Now()
	if err := c.syncPoolsLocked(ctx); err != nil {
		return err
	}
	var list corev1.ServiceList
	if err := c.client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing Services to rebuild the ledger: %w", err)
	}
	// Oldest first: when two Services claim one address, the older keeps it.
	slices.SortFunc(list.Items, func(a, b corev1.Service) int {
		if c := a.CreationTimestamp.Time.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return cmpKey(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	restored := 0
	// Statuses that show addresses their Service does not get back: each address
	// stays quarantined until that status no longer shows it, as it was before
	// the restart (see allocator.Shown).
	var shownOnly []*corev1.Service
	for i := range list.Items {
		svc := &list.Items[i]
		ips := statusIPs(svc)
		if len(ips) == 0 {
			continue
		}
		// A Service being deleted, or no longer handled, is being let go; herald's
		// condition says the addresses it shows are herald's.
		if !svcclass.Handles(svc, c.opts.Classless) || svc.DeletionTimestamp != nil {
			if findCondition(svc) != nil {
				shownOnly = append(shownOnly, svc)
			}
			continue
		}
		req, _ := requestFor(svc, nil)
		if err := c.alloc.Restore(req, ips); err != nil {
			c.log.Info("Service status holds an address another Service holds; it will be given a new one", "service", req.Key, "reason", allocator.ReasonOf(err).String(), "detail", err.Error())
			c.recorder.Eventf(svc, corev1.EventTypeWarning, "AddressConflict", "The status shows %s, which the controller could not give back to this Service at start (%v); it is given another address, and the older Service keeps this one", ipaddr.Join(ips), err)
			shownOnly = append(shownOnly, svc)
			continue
		}
		restored++
	}
	for _, svc := range shownOnly {
		c.alloc.Quarantine(svc.Namespace+"/"+svc.Name, statusIPs(svc))
	}
	c.updateQuarantineGaugeLocked()
	c.rebuilt.Store(true)
	c.log.Info("Ledger rebuilt from Service status", "services", restored, "duration", time.Since(start).String())
	c.markPoolsDirty()
	return nil
}

// syncPoolsLocked brings the allocator's pools in line with the IPPools in the cache.
// It gives the allocator the Nodes' addresses first, so no pass hands one out.
func (c *Controller) syncPoolsLocked(ctx context.Context) error {
	if err := c.syncNodesLocked(ctx); err != nil {
		return err
	}
	var pools heraldv1.IPPoolList
	if err := c.client.List(ctx, &pools, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing IPPools: %w", err)
	}
	seen := make(map[string]bool, len(pools.Items))
	changed := false
	for i := range pools.Items {
		p := &pools.Items[i]
		seen[p.Name] = true
		if v, ok := c.poolVersions[p.Name]; ok && v == p.Generation {
			continue
		}
		changed = true
		c.poolVersions[p.Name] = p.Generation
		ap, err := poolFromCR(p)
		if err != nil {
			// Keep serving the last spec that could be used: a typo in an edit
			// must not orphan or move every Service of the pool.
			c.poolErrors[p.Name] = err
			continue
		}
		delete(c.poolErrors, p.Name)
		c.alloc.SetPool(ap)
	}
	for name := range c.poolVersions {
		if !seen[name] {
			changed = true
			delete(c.poolVersions, name)
			delete(c.poolErrors, name)
			c.alloc.DeletePool(name)
			deletePoolMetrics(name)
		}
	}
	if changed {
		c.markPoolsDirty()
	}
	return nil
}

func (c *Controller) markPoolsDirty() {
	select {
	case c.poolsDirty <- struct{}{}:
	default:
	}
}

// Reconcile gives one Service its addresses, or says why it has none.
func (c *Controller) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if err := c.ensureRebuilt(ctx); err != nil {
		return reconcile.Result{}, err
	}
	var svc corev1.Service
	if err := c.client.Get(ctx, req.NamespacedName, &svc); err != nil {
		if apierrors.IsNotFound(err) {
			// Gone from the API server (the cache saw it deleted): no status
			// shows its addresses any more.
			c.forget(req.NamespacedName)
			c.shown(ctx, req.NamespacedName, nil)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("reading Service %s: %w", req.NamespacedName, err)
	}
	if !svcclass.Handles(&svc, c.opts.Classless) || svc.DeletionTimestamp != nil {
		return reconcile.Result{}, c.letGo(ctx, &svc)
	}
	var ns corev1.Namespace
	if err := c.client.Get(ctx, types.NamespacedName{Name: svc.Namespace}, &ns); err != nil && !apierrors.IsNotFound(err) {
		// Without its labels a namespaceSelector would not match and the Service
		// could be moved or refused for nothing.
		return reconcile.Result{}, fmt.Errorf("reading namespace %s: %w", svc.Namespace, err)
	}
	nsLabels := ns.Labels
	request, reqErr := requestFor(&svc, nsLabels)

	c.mu.Lock()
	if err := c.syncPoolsLocked(ctx); err != nil {
		c.mu.Unlock()
		return reconcile.Result{}, err
	}
	before, held := c.alloc.Get(request.Key)
	if !held && reqErr == nil {
		// The status is the ledger: a Service that already shows addresses keeps
		// them if nobody else holds them (a lease handover, say).
		if ips := statusIPs(&svc); len(ips) > 0 && c.alloc.Restore(request, ips) == nil {
			before, _ = c.alloc.Get(request.Key)
		}
	}
	releases := c.alloc.Releases()
	asg, err := before, reqErr
	if reqErr == nil {
		asg, err = c.alloc.Assign(request)
	}
	if err != nil || len(asg.IPs) == 0 {
		c.pending[req.NamespacedName] = len(asg.IPs) == 0
	} else {
		delete(c.pending, req.NamespacedName)
	}
	c.updatePendingGaugeLocked()
	changed := !slices.Equal(before.IPs, asg.IPs)
	mayHelpOthers := c.alloc.Releases() != releases
	onNodes := c.heldNodeAddressesLocked(asg)
	releasing := c.alloc.QuarantinedBy(request.Key)
	c.noteQuarantineLocked(request.Key, releasing)
	c.updateQuarantineGaugeLocked()
	c.mu.Unlock()

	if changed {
		c.markPoolsDirty()
	}
	if err := c.writeStatus(ctx, &svc, request, outcome{asg: asg, err: err, onNodes: onNodes, releasing: releasing}); err != nil {
		c.releaseWriteFailed(&svc, releasing, err)
		return reconcile.Result{}, err
	}
	// The status now shows asg.IPs and nothing else: what the Service gave up
	// leaves quarantine.
	if len(releasing) > 0 {
		c.shown(ctx, req.NamespacedName, asg.IPs)
	}
	if err := c.writePoolAnnotation(ctx, &svc, asg); err != nil {
		return reconcile.Result{}, err
	}
	// A sharer's change may let a refused Service in; freed addresses wake the
	// waiting Services from shown, once the status no longer shows them.
	if mayHelpOthers {
		c.wakePending(ctx, req.NamespacedName)
	}
	return reconcile.Result{}, nil
}

func (c *Controller) updatePendingGaugeLocked() {
	n := 0
	for _, none := range c.pending {
		if none {
			n++
		}
	}
	servicesPending.Set(float64(n))
}

// noteQuarantineLocked starts the clock of a Service's quarantine.
func (c *Controller) noteQuarantineLocked(key string, quarantined []netip.Addr) {
	if _, ok := c.quarantinedSince[key]; !ok && len(quarantined) > 0 {
		c.quarantinedSince[key] = time.Now()
	}
}

func (c *Controller) updateQuarantineGaugeLocked() {
	addressesQuarantined.Set(float64(c.alloc.QuarantinedCount()))
}

// forget releases a Service's addresses and returns what it released. They stay
// quarantined until the caller learns, through shown, that the Service's status no
// longer shows them.
func (c *Controller) forget(nn types.NamespacedName) []netip.Addr {
	c.mu.Lock()
	held, _ := c.alloc.Get(nn.String())
	released := c.alloc.Release(nn.String())
	c.noteQuarantineLocked(nn.String(), c.alloc.QuarantinedBy(nn.String()))
	delete(c.pending, nn)
	c.updatePendingGaugeLocked()
	c.updateQuarantineGaugeLocked()
	c.mu.Unlock()
	if released {
		c.markPoolsDirty()
	}
	return held.IPs
}

// shown tells the allocator that the API server shows exactly ips in a Service's
// status (its write succeeded, or it is gone), which ends the quarantine of what it
// gave up; the Services waiting for an address are retried when that frees one.
func (c *Controller) shown(ctx context.Context, nn types.NamespacedName, ips []netip.Addr) {
	c.mu.Lock()
	freed := c.alloc.Shown(nn.String(), ips)
	if since, ok := c.quarantinedSince[nn.String()]; ok && len(c.alloc.QuarantinedBy(nn.String())) == 0 {
		quarantineSeconds.Observe(time.Since(since).Seconds())
		delete(c.quarantinedSince, nn.String())
	}
	c.updateQuarantineGaugeLocked()
	c.mu.Unlock()
	if len(freed) == 0 {
		return
	}
	c.log.V(1).Info("Quarantine ended", "service", nn.String(), "addresses", ipaddr.Join(freed))
	c.markPoolsDirty()
	c.wakePending(ctx, nn)
}

// releaseWriteFailed reports a status write that would have released addresses:
// until it succeeds they stay quarantined, which an operator needs to see, since a
// pool can look full for it.
func (c *Controller) releaseWriteFailed(svc *corev1.Service, releasing []netip.Addr, err error) {
	if len(releasing) == 0 {
		return
	}
	statusWriteFailures.Inc()
	c.log.Info("Status of a Service that gave up addresses could not be updated; they stay reserved until it is", "service", svc.Namespace+"/"+svc.Name, "addresses", ipaddr.Join(releasing), "detail", err.Error())
	c.recorder.Eventf(svc, corev1.EventTypeWarning, "StatusWriteFailed", "Could not update the status to release %s (retrying); no other Service is given it until this status stops showing it: %v", ipaddr.Join(releasing), err)
}

// letGo handles a Service herald no longer serves (type or class changed, or being
// deleted): its addresses are released and herald's status fields removed.
func (c *Controller) letGo(ctx context.Context, svc *corev1.Service) error {
	nn := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	released := c.forget(nn)
	c.mu.Lock()
	releasing := c.alloc.QuarantinedBy(nn.String())
	c.mu.Unlock()
	// Written even when the cached status shows nothing: the cache may not have
	// seen the write that put the addresses there.
	if findCondition(svc) != nil || len(releasing) > 0 {
		if err := c.applyStatus(ctx, svc, nil, nil); err != nil {
			c.releaseWriteFailed(svc, releasing, err)
			return err
		}
	}
	if len(releasing) > 0 {
		c.shown(ctx, nn, nil)
	}
	if err := c.writePoolAnnotation(ctx, svc, allocator.Assignment{}); err != nil {
		return err
	}
	if len(released) > 0 {
		c.recorder.Eventf(svc, corev1.EventTypeNormal, "IPReleased", "Released %s: the Service is no longer a LoadBalancer herald handles", ipaddr.Join(released))
	}
	return nil
}

// wakePending re-queues every pending Service but the one given.
func (c *Controller) wakePending(ctx context.Context, except types.NamespacedName) {
	c.mu.Lock()
	keys := make([]types.NamespacedName, 0, len(c.pending))
	for k := range c.pending {
		if k != except {
			keys = append(keys, k)
		}
	}
	c.mu.Unlock()
	for _, k := range keys {
		obj := &corev1.Service{}
		obj.Namespace, obj.Name = k.Namespace, k.Name
		select {
		case c.wake <- event.GenericEvent{Object: obj}:
		case <-ctx.Done():
			return
		}
	}
}

// allServices maps an IPPool change to every Service herald handles: any of them
// may gain an address, lose one to the orphan policy, or change pools.
func (c *Controller) allServices(ctx context.Context, _ client.Object) []reconcile.Request {
	var list corev1.ServiceList
	if err := c.client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		c.log.Error(err, "Listing Services after an IPPool change")
		return nil
	}
	return c.handled(list.Items)
}

// servicesIn maps a Namespace change (its labels may feed a namespaceSelector) to
// the Services in it.
func (c *Controller) servicesIn(ctx context.Context, ns client.Object) []reconcile.Request {
	var list corev1.ServiceList
	if err := c.client.List(ctx, &list, client.InNamespace(ns.GetName()), client.UnsafeDisableDeepCopy); err != nil {
		c.log.Error(err, "Listing Services after a Namespace change", "namespace", ns.GetName())
		return nil
	}
	return c.handled(list.Items)
}

func (c *Controller) handled(svcs []corev1.Service) []reconcile.Request {
	var out []reconcile.Request
	for i := range svcs {
		if svcclass.Handles(&svcs[i], c.opts.Classless) || findCondition(&svcs[i]) != nil {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: svcs[i].Namespace, Name: svcs[i].Name}})
		}
	}
	return out
}

func cmpKey(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
