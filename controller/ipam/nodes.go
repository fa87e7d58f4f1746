package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/heraldlb/herald/internal/allocator"
	"github.com/heraldlb/herald/internal/nodeaddr"
)

// nodeAddresses maps each of the nodes' own addresses (nodeaddr.Own) to the
// nodes that have it.
func nodeAddresses(nodes []corev1.Node) map[netip.Addr][]string {
	out := map[netip.Addr][]string{}
	for i := range nodes {
		for _, ip := range nodeaddr.Own(&nodes[i]) {
			if !slices.Contains(out[ip], nodes[i].Name) {
				out[ip] = append(out[ip], nodes[i].Name)
			}
		}
	}
	return out
}

// sameNodeAddresses reports whether two Nodes have the same InternalIP and
// ExternalIP addresses; Nodes change every few seconds (heartbeats, conditions),
// their addresses rarely.
func sameNodeAddresses(a, b *corev1.Node) bool {
	pick := func(n *corev1.Node) []corev1.NodeAddress {
		var out []corev1.NodeAddress
		for _, x := range n.Status.Addresses {
			if x.Type == corev1.NodeInternalIP || x.Type == corev1.NodeExternalIP {
				out = append(out, x)
			}
		}
		return out
	}
	return slices.Equal(pick(a), pick(b))
}

// nodeEventChanges reports whether a Node event may change the node addresses.
func nodeEventChanges(old, cur any) bool {
	o, ok1 := old.(*corev1.Node)
	n, ok2 := cur.(*corev1.Node)
	return !ok1 || !ok2 || !sameNodeAddresses(o, n)
}

// syncNodesLocked gives the allocator the Nodes' addresses when a Node event has
// marked them stale, and queues for waking the Services whose addresses became, or
// stopped being, a node's, and the pending ones (a freed node address may serve
// them). Events between passes coalesce into one List.
func (c *Controller) syncNodesLocked(ctx context.Context) error {
	if !c.nodesDirty.Swap(false) {
		return nil
	}
	var nodes corev1.NodeList
	if err := c.client.List(ctx, &nodes, client.UnsafeDisableDeepCopy); err != nil {
		c.nodesDirty.Store(true)
		return fmt.Errorf("listing Nodes for their addresses: %w", err)
	}
	next := nodeAddresses(nodes.Items)
	prev := c.nodeAddrs
	if !c.alloc.SetNodeAddresses(next) {
		return nil
	}
	c.nodeAddrs = next
	for ip := range next {
		if _, ok := prev[ip]; !ok {
			c.queueHoldersLocked(ip)
		}
	}
	for ip := range prev {
		if _, ok := next[ip]; !ok {
			c.queueHoldersLocked(ip)
		}
	}
	for k := range c.pending {
		c.nodeWake = append(c.nodeWake, k)
	}
	c.markPoolsDirty()
	return nil
}

func (c *Controller) queueHoldersLocked(ip netip.Addr) {
	for _, key := range c.alloc.Holders(ip) {
		if ns, name, ok := strings.Cut(key, "/"); ok {
			c.nodeWake = append(c.nodeWake, types.NamespacedName{Namespace: ns, Name: name})
		}
	}
}

// takeNodeWakeLocked returns, and forgets, the Services a node address change affects.
func (c *Controller) takeNodeWakeLocked() []types.NamespacedName {
	out := c.nodeWake
	c.nodeWake = nil
	slices.SortFunc(out, func(a, b types.NamespacedName) int { return cmpKey(a.String(), b.String()) })
	return slices.Compact(out)
}

// heldNodeAddressesLocked returns the addresses of asg that are Nodes' own.
func (c *Controller) heldNodeAddressesLocked(asg allocator.Assignment) []allocator.NodeAddress {
	var out []allocator.NodeAddress
	for _, ip := range asg.IPs {
		if nodes := c.alloc.NodesOf(ip); len(nodes) > 0 {
			out = append(out, allocator.NodeAddress{Addr: ip, Nodes: nodes})
		}
	}
	return out
}
