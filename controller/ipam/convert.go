package ipam

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/allocator"
	"github.com/heraldlb/herald/internal/crconv"
	"github.com/heraldlb/herald/internal/slim"
)

// poolFromCR turns an IPPool into the allocator's Pool (see crconv.Pool).
func poolFromCR(p *heraldv1.IPPool) (allocator.Pool, error) { return crconv.Pool(p) }

// requestFor turns a Service into an allocation request (see crconv.Request).
func requestFor(svc *corev1.Service, nsLabels map[string]string) (allocator.Request, error) {
	return crconv.Request(svc, nsLabels)
}

// statusIPs returns the addresses in a Service's status (see crconv.StatusIPs).
func statusIPs(svc *corev1.Service) []netip.Addr { return crconv.StatusIPs(svc) }

// CacheService is the controller's cache transform for Services: what slim.Service
// keeps, plus spec.selector of externalTrafficPolicy Local Services, which the
// allocator compares between Local sharers. Other Services' selectors are never read,
// so they are not kept.
func CacheService(obj any) (any, error) {
	out, err := slim.Service(obj)
	if err != nil {
		return nil, fmt.Errorf("trimming a Service for the cache: %w", err)
	}
	full, ok1 := obj.(*corev1.Service)
	s, ok2 := out.(*corev1.Service)
	if ok1 && ok2 && full.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		s.Spec.Selector = full.Spec.Selector
	}
	return out, nil
}
