package ipam

import (
	"context"
	"fmt"
	"maps"
	"math/big"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/allocator"
)

// runPoolStatus keeps every IPPool's status current, and with it the status of
// the announcements and BGPPeers. It runs when pools, announcements, peers or
// assignments change, after PoolStatusDelay, so a burst of allocations costs one
// write per pool rather than one per Service.
func (c *Controller) runPoolStatus(ctx context.Context) error {
	for _, o := range []client.Object{&heraldv1.IPPool{}, &heraldv1.L2Announcement{}, &heraldv1.BGPAnnouncement{}, &heraldv1.BGPPeer{}} {
		inf, err := c.informers.GetInformer(ctx, o)
		if err != nil {
			return fmt.Errorf("watching %T for status: %w", o, err)
		}
		_, isPeer := o.(*heraldv1.BGPPeer)
		reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(any) { c.markPoolsDirty() },
			UpdateFunc: func(old, cur any) {
				// The pass's own status writes change neither spec nor labels;
				// BGPPeer status is the speakers', which the summary counts.
				o, ok1 := old.(client.Object)
				n, ok2 := cur.(client.Object)
				if !isPeer && ok1 && ok2 && o.GetGeneration() == n.GetGeneration() && maps.Equal(o.GetLabels(), n.GetLabels()) {
					return
				}
				c.markPoolsDirty()
			},
			DeleteFunc: func(any) { c.markPoolsDirty() },
		})
		if err != nil {
			return fmt.Errorf("watching %T for status: %w", o, err)
		}
		defer func() { _ = inf.RemoveEventHandler(reg) }()
	}
	// A Node deleted for good leaves its speaker's BGPPeer status entries behind,
	// and a Node's addresses must never be handed out; Nodes change every few
	// seconds, so only deletions and address changes matter here.
	nodes, err := c.informers.GetInformer(ctx, &corev1.Node{})
	if err != nil {
		return fmt.Errorf("watching Nodes for status: %w", err)
	}
	nodeAddrsChanged := func() {
		c.nodesDirty.Store(true)
		c.markPoolsDirty()
	}
	nreg, err := nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { nodeAddrsChanged() },
		UpdateFunc: func(old, cur any) {
			if nodeEventChanges(old, cur) {
				nodeAddrsChanged()
			}
		},
		DeleteFunc: func(any) { nodeAddrsChanged() },
	})
	if err != nil {
		return fmt.Errorf("watching Nodes for status: %w", err)
	}
	defer func() { _ = nodes.RemoveEventHandler(nreg) }()
	unwatch, err := c.watchKubeProxy(ctx)
	if err != nil {
		return err
	}
	defer unwatch()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.poolsDirty:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.opts.PoolStatusDelay):
		}
		if err := c.ensureRebuilt(ctx); err != nil {
			c.log.Error(err, "Rebuilding the ledger before writing IPPool status")
			c.markPoolsDirty()
			continue
		}
		if err := c.writePoolStatuses(ctx); err != nil {
			c.log.Error(err, "Writing IPPool status")
			c.markPoolsDirty()
		}
	}
}

func (c *Controller) writePoolStatuses(ctx context.Context) error {
	var list heraldv1.IPPoolList
	if err := c.client.List(ctx, &list); err != nil {
		return fmt.Errorf("listing IPPools: %w", err)
	}
	type update struct {
		pool           *heraldv1.IPPool
		overlap        []string
		wasOverlapping bool
		onNodes        []allocator.NodeAddress
		nodeMessage    string // the NodeAddressOverlap message shown before
	}
	var updates []update
	c.mu.Lock()
	if err := c.syncPoolsLocked(ctx); err != nil {
		c.mu.Unlock()
		return err
	}
	for i := range list.Items {
		p := &list.Items[i]
		st := p.Status.DeepCopy()
		overlap, onNodes := c.poolStatusLocked(p, st)
		if !equality.Semantic.DeepEqual(st, &p.Status) {
			was := meta.IsStatusConditionTrue(p.Status.Conditions, heraldv1.IPPoolConditionOverlapping)
			var shown string
			if nc := meta.FindStatusCondition(p.Status.Conditions, heraldv1.IPPoolConditionNodeAddressOverlap); nc != nil && nc.Status == metav1.ConditionTrue {
				shown = nc.Message
			}
			p.Status = *st
			updates = append(updates, update{p, overlap, was, onNodes, shown})
		}
	}
	wake := c.takeNodeWakeLocked()
	c.mu.Unlock()
	for _, k := range wake {
		obj := &corev1.Service{}
		obj.Namespace, obj.Name = k.Namespace, k.Name
		select {
		case c.wake <- event.GenericEvent{Object: obj}:
		case <-ctx.Done():
			return nil
		}
	}

	var errs []string
	if err := c.writeL2Statuses(ctx, list.Items); err != nil {
		errs = append(errs, err.Error())
	}
	if err := c.writeBGPStatuses(ctx, list.Items); err != nil {
		errs = append(errs, err.Error())
	}
	for _, u := range updates {
		err := c.client.Status().Update(ctx, u.pool)
		if apierrors.IsNotFound(err) {
			continue // deleted meanwhile; the informer brings the news
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("IPPool %s: %v", u.pool.Name, err))
			continue
		}
		if len(u.overlap) > 0 && !u.wasOverlapping {
			c.recorder.Eventf(u.pool, corev1.EventTypeWarning, "Overlapping", "Addresses of this pool are also in IPPool %s; an address is still given to one Service at a time", strings.Join(u.overlap, ", "))
		}
		// One Warning per change of which node addresses the pool holds.
		if nc := meta.FindStatusCondition(u.pool.Status.Conditions, heraldv1.IPPoolConditionNodeAddressOverlap); len(u.onNodes) > 0 && nc != nil && nc.Message != u.nodeMessage {
			c.recorder.Event(u.pool, corev1.EventTypeWarning, "NodeAddressOverlap", nc.Message)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// poolStatusLocked fills st from the allocator and returns the pools p overlaps and
// the Node addresses it holds.
func (c *Controller) poolStatusLocked(p *heraldv1.IPPool, st *heraldv1.IPPoolStatus) ([]string, []allocator.NodeAddress) {
	st.ObservedGeneration = p.Generation
	stats, known := c.alloc.PoolStats(p.Name)
	if perr := c.poolErrors[p.Name]; perr != nil {
		msg := perr.Error()
		if known {
			msg += "; the pool keeps serving its last valid addresses until the spec is fixed"
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: heraldv1.IPPoolConditionReady, Status: metav1.ConditionFalse,
			Reason: "InvalidSpec", Message: msg, ObservedGeneration: p.Generation})
		if !known {
			meta.RemoveStatusCondition(&st.Conditions, heraldv1.IPPoolConditionOverlapping)
			meta.RemoveStatusCondition(&st.Conditions, heraldv1.IPPoolConditionNodeAddressOverlap)
			st.IPv4, st.IPv6, st.Used, st.Free = nil, nil, "", ""
			return nil, nil
		}
	}
	used, free := new(big.Int), new(big.Int)
	st.IPv4, st.IPv6 = nil, nil
	var parts []string
	for _, f := range []allocator.Family{allocator.IPv4, allocator.IPv6} {
		s, ok := stats[f]
		labels := []string{p.Name, f.String()}
		if !ok {
			poolCapacity.DeleteLabelValues(labels...)
			poolUsed.DeleteLabelValues(labels...)
			continue
		}
		fs := &heraldv1.IPPoolFamilyStatus{Capacity: s.Capacity.String(), Used: fmt.Sprint(s.Used), Free: s.Free().String()}
		if f == allocator.IPv4 {
			st.IPv4 = fs
		} else {
			st.IPv6 = fs
		}
		used.Add(used, new(big.Int).SetUint64(s.Used))
		free.Add(free, s.Free())
		parts = append(parts, fmt.Sprintf("%s %s", s.Capacity, f))
		capf, _ := new(big.Float).SetInt(s.Capacity).Float64()
		poolCapacity.WithLabelValues(labels...).Set(capf)
		poolUsed.WithLabelValues(labels...).Set(float64(s.Used))
	}
	st.Used, st.Free = used.String(), free.String()
	if c.poolErrors[p.Name] == nil {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: heraldv1.IPPoolConditionReady, Status: metav1.ConditionTrue,
			Reason: "Valid", Message: "pool holds " + strings.Join(parts, " and ") + " addresses", ObservedGeneration: p.Generation})
	}
	overlap := c.alloc.Overlaps(p.Name)
	if len(overlap) > 0 {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: heraldv1.IPPoolConditionOverlapping, Status: metav1.ConditionTrue,
			Reason: "OverlapsPool", Message: "addresses are also in IPPool " + strings.Join(overlap, ", ") + "; an address is still given to one Service at a time", ObservedGeneration: p.Generation})
	} else {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: heraldv1.IPPoolConditionOverlapping, Status: metav1.ConditionFalse,
			Reason: "NoOverlap", Message: "no other IPPool holds these addresses", ObservedGeneration: p.Generation})
	}
	onNodes := c.alloc.NodeOverlaps(p.Name)
	meta.SetStatusCondition(&st.Conditions, nodeOverlapCondition(p.Generation, onNodes))
	poolNodeAddresses.WithLabelValues(p.Name).Set(float64(len(onNodes)))
	return overlap, onNodes
}

// maxNodeAddrsShown bounds the NodeAddressOverlap message: a pool laid over the
// nodes' own subnet may hold hundreds of node addresses, and a condition message
// is read by a person (the API server caps it at 32 KiB).
const maxNodeAddrsShown = 10

// nodeOverlapCondition is an IPPool's NodeAddressOverlap condition.
func nodeOverlapCondition(gen int64, onNodes []allocator.NodeAddress) metav1.Condition {
	if len(onNodes) == 0 {
		return metav1.Condition{Type: heraldv1.IPPoolConditionNodeAddressOverlap, Status: metav1.ConditionFalse,
			Reason: "NoNodeAddress", Message: "no Node has an address in this pool", ObservedGeneration: gen}
	}
	shown := make([]string, 0, min(len(onNodes), maxNodeAddrsShown))
	for _, na := range onNodes[:min(len(onNodes), maxNodeAddrsShown)] {
		shown = append(shown, na.String())
	}
	msg := "pool holds Nodes' own addresses " + strings.Join(shown, ", ")
	if more := len(onNodes) - len(shown); more > 0 {
		msg += fmt.Sprintf(" and %d more", more)
	}
	msg += "; herald never hands them out (the node answers for them itself): remove them from the pool"
	return metav1.Condition{Type: heraldv1.IPPoolConditionNodeAddressOverlap, Status: metav1.ConditionTrue,
		Reason: "NodeAddresses", Message: msg, ObservedGeneration: gen}
}

// deletePoolMetrics drops the series of a pool that no longer exists.
func deletePoolMetrics(name string) {
	poolCapacity.DeletePartialMatch(map[string]string{"pool": name})
	poolUsed.DeletePartialMatch(map[string]string{"pool": name})
	poolNodeAddresses.DeleteLabelValues(name)
}
