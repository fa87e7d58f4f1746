package crconv

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/allocator"
)

func svc(mod func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", Labels: map[string]string{"app": "web"}},
		Spec: corev1.ServiceSpec{
			Type:  corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}, {Port: 53}},
		},
	}
	if mod != nil {
		mod(s)
	}
	return s
}

func TestRequestFor(t *testing.T) {
	dual := corev1.IPFamilyPolicyRequireDualStack
	s := svc(func(s *corev1.Service) {
		s.Annotations = map[string]string{
			heraldv1.AnnotationIPs:        " 10.0.0.7, fd00::7 ",
			heraldv1.AnnotationPool:       "edge",
			heraldv1.AnnotationSharingKey: "k",
		}
		s.Spec.LoadBalancerIP = "10.9.9.9" // ignored: the annotation wins
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
		s.Spec.IPFamilyPolicy = &dual
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	})
	got, err := Request(s, map[string]string{"env": "prod"})
	if err != nil {
		t.Fatal(err)
	}
	want := allocator.Request{
		Key: "ns/web", Namespace: "ns", Labels: map[string]string{"app": "web"}, NamespaceLabels: map[string]string{"env": "prod"},
		Families: []allocator.Family{allocator.IPv4, allocator.IPv6}, Policy: allocator.RequireDualStack,
		IPs:  []netip.Addr{netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("fd00::7")},
		Pool: "edge", SharingKey: "k", LocalTraffic: true,
		Ports: []allocator.Port{{Protocol: "TCP", Port: 80}, {Protocol: "TCP", Port: 53}},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("Request (-want +got):\n%s", diff)
	}

	legacy, err := Request(svc(func(s *corev1.Service) { s.Spec.LoadBalancerIP = "10.9.9.9" }), nil)
	if err != nil || len(legacy.IPs) != 1 || legacy.IPs[0] != netip.MustParseAddr("10.9.9.9") {
		t.Errorf("spec.loadBalancerIP: got %v, %v; want [10.9.9.9]", legacy.IPs, err)
	}

	_, err = Request(svc(func(s *corev1.Service) { s.Annotations = map[string]string{heraldv1.AnnotationIPs: "10.0.0.300"} }), nil)
	var aerr *allocator.Error
	if !errors.As(err, &aerr) || aerr.Reason != allocator.ReasonInvalidRequest || !strings.Contains(err.Error(), heraldv1.AnnotationIPs) {
		t.Errorf("bad annotation: error = %v; want InvalidRequest naming %s", err, heraldv1.AnnotationIPs)
	}
}

func TestPoolFromCR(t *testing.T) {
	prio := int32(5)
	p := &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: heraldv1.IPPoolSpec{
		Addresses: []string{"10.0.0.0/30"},
		Allocation: &heraldv1.IPPoolAllocation{
			Priority:          &prio,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}},
		},
	}}
	got, err := Pool(p)
	if err != nil {
		t.Fatal(err)
	}
	if !got.AutoAssign || !got.HasPriority || got.Priority != 5 || got.ServiceSelector != nil {
		t.Errorf("pool = %+v; want autoAssign by default, priority 5, no service selector", got)
	}
	if !got.NamespaceSelector(map[string]string{"env": "prod"}) || got.NamespaceSelector(map[string]string{"env": "dev"}) {
		t.Error("namespaceSelector does not match as written")
	}

	p.Spec.Addresses = []string{"fd00::9-fd00::1"}
	if _, err := Pool(p); err == nil || !strings.Contains(err.Error(), "backwards") {
		t.Errorf("reversed IPv6 range: error = %v; want one saying it runs backwards", err)
	}
	p.Spec.Addresses = []string{"10.0.0.0/30"}
	p.Spec.Allocation.ServiceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Bogus"}}}
	if _, err := Pool(p); err == nil || !strings.Contains(err.Error(), "serviceSelector") {
		t.Errorf("bad selector: error = %v; want one naming serviceSelector", err)
	}
}
