package app

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/ipaddr"
	"github.com/heraldlb/herald/speaker/plan"
)

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
			// A Service joining a group already announced (a second
			// sharer) is news to that Service even though nothing moved.
			joined := had && !slices.Contains(s.ownedServices[key], svc)
			if (changed || joined) && len(ips) > 0 {
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
	// Groups this node stopped announcing (moved, deleted, yielded): say so
	// on the Services that still exist, so the Events tell the whole story.
	for key, prev := range s.owned {
		if _, still := next[key]; still || len(prev.ips) == 0 {
			continue
		}
		for _, svc := range s.ownedServices[key] {
			if ref := s.serviceRef(ctx, svc); ref != nil {
				s.recorder.Eventf(ref, corev1.EventTypeNormal, "NotAnnouncing", "Node %s no longer announces %s (layer 2)", s.cfg.NodeName, ipaddr.Join(prev.ips))
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

// reportIPVS warns, on this node's Node object and once per finding, when the
// kernel here answers ARP for every Service address (kube-proxy in IPVS mode
// without strictARP): whatever herald elects, every node answers.
func (s *speaker) reportIPVS(ctx context.Context) {
	bad, why := s.l2.ipvsWithoutStrictARP()
	metricIPVSWithoutStrictARP.Set(map[bool]float64{true: 1}[bad])
	if why == s.ipvsWarned {
		return
	}
	s.ipvsWarned = why
	if !bad {
		return
	}
	s.log.Info("kube-proxy runs in IPVS mode without strictARP: this node answers ARP for every Service address", "reason", why)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: s.cfg.NodeName, UID: types.UID(s.cfg.NodeName)}}
	s.recorder.Event(node, corev1.EventTypeWarning, "KubeProxyStrictARP", "Node "+s.cfg.NodeName+": "+why+"; set ipvs.strictARP: true in kube-system/kube-proxy and restart kube-proxy")
}
