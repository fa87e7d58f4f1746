// Package fetch reads, with get and list only, the objects kubectl herald's
// reports are made of (see package inspect).
package fetch

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/kubectl-herald/inspect"
)

// Pools reads what kubectl herald pools reports: IPPools and the announcements
// that may cover them.
func Pools(ctx context.Context, c client.Reader) (inspect.Cluster, error) {
	var out inspect.Cluster
	var pools heraldv1.IPPoolList
	if err := c.List(ctx, &pools); err != nil {
		return out, fmt.Errorf("listing IPPools (are herald's CRDs installed?): %w", err)
	}
	out.Pools = pools.Items
	var l2 heraldv1.L2AnnouncementList
	if err := c.List(ctx, &l2); err != nil {
		return out, fmt.Errorf("listing L2Announcements: %w", err)
	}
	out.L2 = l2.Items
	var bgp heraldv1.BGPAnnouncementList
	if err := c.List(ctx, &bgp); err != nil {
		return out, fmt.Errorf("listing BGPAnnouncements: %w", err)
	}
	out.BGP = bgp.Items
	return out, nil
}

// Service reads what kubectl herald status reports on the Service
// namespace/name: every Service (whose addresses are in use), the pools and
// announcements, the BGPPeers, the Nodes (whose addresses are never handed
// out), the Service's namespace (for namespaceSelectors) and its Events. Nodes
// and the namespace are optional: a user who may not read them still gets a
// report, whose verdicts then ignore them.
func Service(ctx context.Context, c client.Reader, namespace, name string) (inspect.Cluster, error) {
	var svc corev1.Service
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &svc); err != nil {
		if apierrors.IsNotFound(err) {
			return inspect.Cluster{}, fmt.Errorf("service %s/%s not found", namespace, name)
		}
		return inspect.Cluster{}, fmt.Errorf("reading Service %s/%s: %w", namespace, name, err)
	}
	out, err := Pools(ctx, c)
	if err != nil {
		return out, err
	}
	var svcs corev1.ServiceList
	if err := c.List(ctx, &svcs); err != nil {
		return out, fmt.Errorf("listing Services in all namespaces (to know which addresses are in use): %w", err)
	}
	out.Services = svcs.Items
	var peers heraldv1.BGPPeerList
	if err := c.List(ctx, &peers); err != nil {
		return out, fmt.Errorf("listing BGPPeers: %w", err)
	}
	out.Peers = peers.Items
	var nodes corev1.NodeList
	if err := c.List(ctx, &nodes); err == nil {
		out.Nodes = nodes.Items
	} else if !apierrors.IsForbidden(err) {
		return out, fmt.Errorf("listing Nodes: %w", err)
	}
	var ns corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: namespace}, &ns); err == nil {
		out.Namespaces = []corev1.Namespace{ns}
	} else if !apierrors.IsForbidden(err) {
		return out, fmt.Errorf("reading Namespace %s: %w", namespace, err)
	}
	var evs corev1.EventList
	if err := c.List(ctx, &evs, client.InNamespace(namespace), client.MatchingFields{
		"involvedObject.kind": "Service",
		"involvedObject.name": name,
	}); err != nil {
		return out, fmt.Errorf("listing the Service's Events: %w", err)
	}
	out.Events = evs.Items
	return out, nil
}
