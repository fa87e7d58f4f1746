package app

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	"go4.org/netipx"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/ipaddr"
	"github.com/heraldlb/herald/internal/labelsel"
	"github.com/heraldlb/herald/internal/nodeaddr"
	"github.com/heraldlb/herald/internal/svcclass"
	"github.com/heraldlb/herald/speaker/plan"
)

// snapshot reads, from the cache, everything the plan needs. With the API server
// gone the cache keeps its last state, so the speaker keeps announcing it (fail
// static). Pools are read through this process's memory of their last valid
// addresses (processPools).
func snapshot(ctx context.Context, c client.Reader, handleClassless bool) ([]plan.Service, []plan.Node, []plan.Pool, []plan.Announcement, error) {
	var svcs corev1.ServiceList
	if err := c.List(ctx, &svcs, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("listing Services: %w", err)
	}
	var slices discoveryv1.EndpointSliceList
	if err := c.List(ctx, &slices, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("listing EndpointSlices: %w", err)
	}
	var nodes corev1.NodeList
	if err := c.List(ctx, &nodes, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("listing Nodes: %w", err)
	}
	var pools heraldv1.IPPoolList
	if err := c.List(ctx, &pools, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("listing IPPools: %w", err)
	}
	var anns heraldv1.L2AnnouncementList
	if err := c.List(ctx, &anns, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("listing L2Announcements: %w", err)
	}
	return planServices(svcs.Items, readyEndpoints(slices.Items), handleClassless), planNodes(nodes.Items), processPools.pools(pools.Items), planAnnouncements(anns.Items), nil
}

// readyEndpoints maps a Service's key to the nodes holding a ready endpoint of it.
func readyEndpoints(slices []discoveryv1.EndpointSlice) map[string]map[string]bool {
	endpoints := map[string]map[string]bool{}
	for i := range slices {
		es := &slices[i]
		svc := es.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		key := es.Namespace + "/" + svc
		for _, ep := range es.Endpoints {
			if ep.NodeName == nil || (ep.Conditions.Ready != nil && !*ep.Conditions.Ready) {
				continue
			}
			if endpoints[key] == nil {
				endpoints[key] = map[string]bool{}
			}
			endpoints[key][*ep.NodeName] = true
		}
	}
	return endpoints
}

// planServices returns the LoadBalancer Services herald handles that have
// addresses in their status.
func planServices(svcs []corev1.Service, endpoints map[string]map[string]bool, handleClassless bool) []plan.Service {
	var ps []plan.Service
	for i := range svcs {
		s := &svcs[i]
		// The controller decides with the same rule, so the speakers announce
		// exactly the Services it gives addresses to.
		if !svcclass.Handles(s, handleClassless) {
			continue
		}
		var ips []netip.Addr
		for _, ing := range s.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(ing.IP); err == nil {
				ips = append(ips, a.Unmap())
			}
		}
		if len(ips) == 0 {
			continue
		}
		key := s.Namespace + "/" + s.Name
		ps = append(ps, plan.Service{Key: key, Labels: s.Labels, IPs: ips,
			AllocatedFrom: s.Annotations[heraldv1.AnnotationAllocatedFromPool],
			LocalTraffic:  s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
			EndpointNodes: endpoints[key]})
	}
	return ps
}

// planNodes returns the nodes with their readiness and their InternalIP and
// ExternalIP addresses (which the plan never announces for a Service).
func planNodes(nodes []corev1.Node) []plan.Node {
	pn := make([]plan.Node, 0, len(nodes))
	for i := range nodes {
		n := &nodes[i]
		pn = append(pn, plan.Node{Name: n.Name, Labels: n.Labels, Ready: nodeReady(n), Addresses: nodeaddr.Own(n)})
	}
	return pn
}

// planAnnouncements returns the L2Announcements whose selectors parse; the
// controller reports the others on their status.
func planAnnouncements(anns []heraldv1.L2Announcement) []plan.Announcement {
	var pa []plan.Announcement
	for i := range anns {
		a := &anns[i]
		pl := plan.Announcement{Name: a.Name, Pools: a.Spec.IPPools, Interfaces: a.Spec.Interfaces}
		var err error
		if pl.PoolSelector, err = selector(a.Spec.IPPoolSelector); err != nil {
			continue
		}
		if pl.NodeSelector, err = selector(a.Spec.NodeSelector); err != nil {
			continue
		}
		if pl.ServiceSelector, err = selector(a.Spec.ServiceSelector); err != nil {
			continue
		}
		pa = append(pa, pl)
	}
	return pa
}

// processPools is this speaker process's memory of its pools' last valid
// addresses. It is per process on purpose: a restarted speaker has only the
// Services' allocated-from-pool annotations to go by, which the controller
// writes for exactly that case; the memory covers Services the controller has
// not annotated yet.
var processPools poolMemory

// poolMemory keeps each pool's last valid addresses, so that an edit the speaker
// cannot parse keeps serving them, as the controller does, instead of silencing
// every Service of the pool.
type poolMemory struct {
	// mu guards last: snapshot is called from the speaker's loop only today,
	// but nothing else stops two callers.
	mu sync.Mutex
	// last maps a pool's name to its UID and the addresses its spec last
	// parsed to. A pool recreated under the same name is another pool, so its
	// predecessor's addresses are not kept for it.
	last map[string]validPool
}

type validPool struct {
	uid  types.UID
	addr *netipx.IPSet
}

// pools turns IPPools into plan pools. A pool whose spec.addresses cannot be
// parsed stays in, marked Unreadable, with its last valid addresses if this
// process saw any (the controller reports the error on the pool's status).
// Pools that no longer exist are forgotten.
func (m *poolMemory) pools(items []heraldv1.IPPool) []plan.Pool {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := make(map[string]validPool, len(items))
	pp := make([]plan.Pool, 0, len(items))
	for i := range items {
		p := &items[i]
		set, err := ipaddr.ParseSet(p.Spec.Addresses)
		if err == nil {
			next[p.Name] = validPool{p.UID, set}
			pp = append(pp, plan.Pool{Name: p.Name, Labels: p.Labels, Addresses: set})
			continue
		}
		kept := plan.Pool{Name: p.Name, Labels: p.Labels, Unreadable: true}
		if prev, ok := m.last[p.Name]; ok && prev.uid == p.UID {
			next[p.Name] = prev
			kept.Addresses = prev.addr
		}
		pp = append(pp, kept)
	}
	m.last = next
	return pp
}

func selector(ls *metav1.LabelSelector) (plan.Selector, error) {
	f, err := labelsel.Func(ls)
	return plan.Selector(f), err
}
