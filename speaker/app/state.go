package app

import (
	"context"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/ipaddr"
	"github.com/heraldlb/herald/internal/labelsel"
	"github.com/heraldlb/herald/speaker/plan"
)

// snapshot reads, from the cache, everything the plan needs. With the API server
// gone the cache keeps its last state, so the speaker keeps announcing it (fail
// static).
func snapshot(ctx context.Context, c client.Reader) ([]plan.Service, []plan.Node, []plan.Pool, []plan.Announcement, error) {
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

	// Ready endpoints per Service, by node.
	endpoints := map[string]map[string]bool{}
	for i := range slices.Items {
		es := &slices.Items[i]
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

	var ps []plan.Service
	for i := range svcs.Items {
		s := &svcs.Items[i]
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer || (s.Spec.LoadBalancerClass != nil && *s.Spec.LoadBalancerClass != heraldv1.LoadBalancerClass) {
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
			LocalTraffic:  s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
			EndpointNodes: endpoints[key]})
	}

	var pn []plan.Node
	for i := range nodes.Items {
		n := &nodes.Items[i]
		ready := false
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		pn = append(pn, plan.Node{Name: n.Name, Labels: n.Labels, Ready: ready})
	}

	var pp []plan.Pool
	for i := range pools.Items {
		p := &pools.Items[i]
		set, err := ipaddr.ParseSet(p.Spec.Addresses)
		if err != nil {
			continue // the controller reports it on the pool's status
		}
		pp = append(pp, plan.Pool{Name: p.Name, Labels: p.Labels, Addresses: set})
	}

	var pa []plan.Announcement
	for i := range anns.Items {
		a := &anns.Items[i]
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
	return ps, pn, pp, pa, nil
}

func selector(ls *metav1.LabelSelector) (plan.Selector, error) {
	f, err := labelsel.Func(ls)
	return plan.Selector(f), err
}
