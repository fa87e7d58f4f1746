// Package crconv turns herald's custom resources and Services into the allocator's
// domain model: one conversion shared by the controller and the kubectl plugin, so
// the plugin explains exactly what the controller decides. It is pure: no client.
package crconv

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/allocator"
	"github.com/heraldlb/herald/internal/ipaddr"
	"github.com/heraldlb/herald/internal/labelsel"
)

// Pool turns an IPPool into the allocator's Pool. The error says what in the
// spec could not be understood; CEL refuses most such specs, but an API server older
// than 1.31 cannot use the IP and CIDR CEL libraries in CRDs, so the controller checks again.
func Pool(p *heraldv1.IPPool) (allocator.Pool, error) {
	set, err := ipaddr.ParseSet(p.Spec.Addresses)
	if err != nil {
		return allocator.Pool{}, err
	}
	out := allocator.Pool{
		Name:          p.Name,
		Addresses:     set,
		AutoAssign:    p.Spec.AutoAssign == nil || *p.Spec.AutoAssign,
		AvoidBuggyIPs: p.Spec.AvoidBuggyIPs,
	}
	if al := p.Spec.Allocation; al != nil {
		if al.Priority != nil {
			out.Priority, out.HasPriority = *al.Priority, true
		}
		out.Namespaces = al.Namespaces
		if out.NamespaceSelector, err = selector(al.NamespaceSelector); err != nil {
			return allocator.Pool{}, fmt.Errorf("allocation.namespaceSelector: %w", err)
		}
		if out.ServiceSelector, err = selector(al.ServiceSelector); err != nil {
			return allocator.Pool{}, fmt.Errorf("allocation.serviceSelector: %w", err)
		}
	}
	return out, nil
}

func selector(ls *metav1.LabelSelector) (allocator.Selector, error) {
	f, err := labelsel.Func(ls)
	return allocator.Selector(f), err
}

// Request turns a Service into an allocation request.
func Request(svc *corev1.Service, nsLabels map[string]string) (allocator.Request, error) {
	req := allocator.Request{
		Key:             svc.Namespace + "/" + svc.Name,
		Namespace:       svc.Namespace,
		Labels:          svc.Labels,
		NamespaceLabels: nsLabels,
		Pool:            strings.TrimSpace(svc.Annotations[heraldv1.AnnotationPool]),
		SharingKey:      strings.TrimSpace(svc.Annotations[heraldv1.AnnotationSharingKey]),
		LocalTraffic:    svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
	}
	if req.LocalTraffic {
		// Only Local sharers compare selectors (allocator.ReasonSharingLocalSelector).
		req.Selector = svc.Spec.Selector
	}
	for _, f := range svc.Spec.IPFamilies {
		if f == corev1.IPv6Protocol {
			req.Families = append(req.Families, allocator.IPv6)
		} else {
			req.Families = append(req.Families, allocator.IPv4)
		}
	}
	if svc.Spec.IPFamilyPolicy != nil {
		switch *svc.Spec.IPFamilyPolicy {
		case corev1.IPFamilyPolicyPreferDualStack:
			req.Policy = allocator.PreferDualStack
		case corev1.IPFamilyPolicyRequireDualStack:
			req.Policy = allocator.RequireDualStack
		}
	}
	for _, p := range svc.Spec.Ports {
		proto := string(p.Protocol)
		if proto == "" {
			proto = string(corev1.ProtocolTCP)
		}
		req.Ports = append(req.Ports, allocator.Port{Protocol: proto, Port: p.Port})
	}
	var err error
	switch {
	case svc.Annotations[heraldv1.AnnotationIPs] != "":
		if req.IPs, err = ipaddr.ParseIPList(svc.Annotations[heraldv1.AnnotationIPs]); err != nil {
			return req, &allocator.Error{Reason: allocator.ReasonInvalidRequest, Message: fmt.Sprintf("annotation %s: %v", heraldv1.AnnotationIPs, err)}
		}
	case svc.Spec.LoadBalancerIP != "":
		if req.IPs, err = ipaddr.ParseIPList(svc.Spec.LoadBalancerIP); err != nil {
			return req, &allocator.Error{Reason: allocator.ReasonInvalidRequest, Message: fmt.Sprintf("spec.loadBalancerIP: %v", err)}
		}
	}
	return req, nil
}

// StatusIPs returns the addresses in a Service's status, the ledger herald writes.
func StatusIPs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(ing.IP); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}
