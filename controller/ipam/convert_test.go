package ipam

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/allocator"
	"github.com/heraldlb/herald/internal/svcclass"
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

func TestDesiredCondition(t *testing.T) {
	s := svc(func(s *corev1.Service) { s.Generation = 3 })
	ip := netip.MustParseAddr("10.0.0.1")
	tests := []struct {
		name   string
		req    allocator.Request
		asg    allocator.Assignment
		err    error
		nodes  []allocator.NodeAddress
		status metav1.ConditionStatus
		reason string
		msg    string
	}{
		{"allocated", allocator.Request{}, allocator.Assignment{IPs: []netip.Addr{ip}, Pool: "p"}, nil, nil, metav1.ConditionTrue, "Allocated", "assigned 10.0.0.1 from IPPool p"},
		{"orphan", allocator.Request{}, allocator.Assignment{IPs: []netip.Addr{ip}}, nil, nil, metav1.ConditionTrue, "OutsidePools", "no longer in any IPPool"},
		{"refused", allocator.Request{}, allocator.Assignment{}, &allocator.Error{Reason: allocator.ReasonPoolExhausted, Message: "full"}, nil, metav1.ConditionFalse, "PoolExhausted", "full"},
		{"refused but kept", allocator.Request{}, allocator.Assignment{IPs: []netip.Addr{ip}}, &allocator.Error{Reason: allocator.ReasonRequestedIPInUse, Message: "taken"}, nil, metav1.ConditionFalse, "RequestedIPInUse", "keeps 10.0.0.1"},
		{"prefer partial", allocator.Request{Policy: allocator.PreferDualStack, Families: []allocator.Family{allocator.IPv4, allocator.IPv6}},
			allocator.Assignment{IPs: []netip.Addr{ip}, Pool: "p"}, nil, nil, metav1.ConditionTrue, "Allocated", "other family"},
		// Kept rather than taken away: taking it would cut the Service for certain.
		{"holds a node address", allocator.Request{}, allocator.Assignment{IPs: []netip.Addr{ip}, Pool: "p"}, nil,
			[]allocator.NodeAddress{{Addr: ip, Nodes: []string{"worker-1"}}}, metav1.ConditionTrue, "HoldsNodeAddress", "10.0.0.1 (node worker-1) is also a node's own address; the Service keeps it"},
	}
	for _, tt := range tests {
		c := desiredCondition(s, tt.req, outcome{asg: tt.asg, err: tt.err, onNodes: tt.nodes})
		if c.Status != tt.status || c.Reason != tt.reason || !strings.Contains(c.Message, tt.msg) || c.ObservedGeneration != 3 || c.Type != heraldv1.ConditionIPAllocated {
			t.Errorf("%s: condition = %+v; want %s/%s with %q, generation 3", tt.name, c, tt.status, tt.reason, tt.msg)
		}
	}
}

// TestSlimServiceKeepsWhatTheControllerReads: the cache keeps only some fields of a
// Service; the request built from the slim copy must equal the one built from the
// full object, or the cache would change allocations.
func TestSlimServiceKeepsWhatTheControllerReads(t *testing.T) {
	local := corev1.ServiceExternalTrafficPolicyLocal
	full := svc(func(s *corev1.Service) {
		s.Annotations = map[string]string{heraldv1.AnnotationSharingKey: "k", heraldv1.AnnotationPool: "p",
			"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 4096)}
		s.Spec.ExternalTrafficPolicy = local
		s.Spec.Selector = map[string]string{"app": "web"}
		s.Spec.LoadBalancerIP = "10.0.0.9"
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "10.0.0.9"}}
		s.Status.Conditions = []metav1.Condition{{Type: heraldv1.ConditionIPAllocated, Status: metav1.ConditionTrue}}
	})
	out, err := CacheService(full)
	if err != nil {
		t.Fatal(err)
	}
	slim := out.(*corev1.Service)
	want, _ := requestFor(full, nil)
	got, _ := requestFor(slim, nil)
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("request from the slim Service differs (-full +slim):\n%s", diff)
	}
	if !svcclass.Handles(slim, true) || findCondition(slim) == nil || len(statusIPs(slim)) != 1 {
		t.Error("slim Service lost its type, condition or ingress")
	}
	if _, ok := slim.Annotations["kubectl.kubernetes.io/last-applied-configuration"]; ok {
		t.Error("slim Service kept fields the controller never reads")
	}
	cluster := full.DeepCopy()
	cluster.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	if out, _ := CacheService(cluster); out.(*corev1.Service).Spec.Selector != nil {
		t.Error("the cache kept the selector of a Cluster-policy Service, which the controller never reads")
	}
}
