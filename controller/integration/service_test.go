//go:build integration

package integration

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/testpoll"
)

func TestServiceGetsAddress(t *testing.T) {
	startController(t, controllerOpts{})
	ns := newNamespace(t, nil)
	createPool(t, "basic", pools("10.201.0.10-10.201.0.12"))
	createService(t, ns, "web")

	ips := waitIPs(t, ns, "web", 1)
	if ips[0] != "10.201.0.10" {
		t.Errorf("address = %s; want the pool's lowest, 10.201.0.10", ips[0])
	}
	s := getService(t, ns, "web")
	if m := s.Status.LoadBalancer.Ingress[0].IPMode; m == nil || *m != corev1.LoadBalancerIPModeVIP {
		t.Errorf("ipMode = %v; want VIP", m)
	}
	c := waitCondition(t, ns, "web", metav1.ConditionTrue, "Allocated")
	if !strings.Contains(c.Message, "10.201.0.10") || !strings.Contains(c.Message, "basic") {
		t.Errorf("condition message = %q; want it to name the address and the pool", c.Message)
	}
	waitEvent(t, ns, "web", "IPAllocated", "10.201.0.10")
}

func TestNoPoolSaysWhyThenRecovers(t *testing.T) {
	startController(t, controllerOpts{})
	ns := newNamespace(t, nil)
	createService(t, ns, "lonely")

	c := waitCondition(t, ns, "lonely", metav1.ConditionFalse, "NoPool")
	if !strings.Contains(c.Message, "no IPPool") {
		t.Errorf("condition message = %q; want it to say there is no IPPool", c.Message)
	}
	waitEvent(t, ns, "lonely", "AllocationFailed", "no IPPool")

	// A pool appearing later must be noticed without touching the Service.
	createPool(t, "late", pools("10.202.0.0/30"))
	if ips := waitIPs(t, ns, "lonely", 1); ips[0] != "10.202.0.0" {
		t.Errorf("address = %s; want 10.202.0.0", ips[0])
	}
	waitCondition(t, ns, "lonely", metav1.ConditionTrue, "Allocated")
}

func TestRequestedAddresses(t *testing.T) {
	startController(t, controllerOpts{})
	ns := newNamespace(t, nil)
	createPool(t, "req", pools("10.203.0.0/28"))

	createService(t, ns, "wants", withAnnotation(heraldv1.AnnotationIPs, "10.203.0.7"))
	if ips := waitIPs(t, ns, "wants", 1); ips[0] != "10.203.0.7" {
		t.Errorf("requested address: got %s; want 10.203.0.7", ips[0])
	}

	// spec.loadBalancerIP is deprecated but still honoured.
	createService(t, ns, "legacy", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "10.203.0.9" })
	if ips := waitIPs(t, ns, "legacy", 1); ips[0] != "10.203.0.9" {
		t.Errorf("loadBalancerIP: got %s; want 10.203.0.9", ips[0])
	}

	createService(t, ns, "outside", withAnnotation(heraldv1.AnnotationIPs, "10.99.99.99"))
	c := waitCondition(t, ns, "outside", metav1.ConditionFalse, "RequestedIPNotInPool")
	if !strings.Contains(c.Message, "10.99.99.99") {
		t.Errorf("message = %q; want it to name the address", c.Message)
	}
	waitEvent(t, ns, "outside", "AllocationFailed", "10.99.99.99")

	createService(t, ns, "thief", withAnnotation(heraldv1.AnnotationIPs, "10.203.0.7"))
	c = waitCondition(t, ns, "thief", metav1.ConditionFalse, "RequestedIPInUse")
	if !strings.Contains(c.Message, ns+"/wants") {
		t.Errorf("message = %q; want it to name the holder %s/wants", c.Message, ns)
	}
	if ips := ingressIPs(getService(t, ns, "thief")); len(ips) != 0 {
		t.Errorf("refused Service shows addresses %v", ips)
	}

	createService(t, ns, "garbage", withAnnotation(heraldv1.AnnotationIPs, "not-an-ip"))
	waitCondition(t, ns, "garbage", metav1.ConditionFalse, "InvalidRequest")
}

func TestSharingKey(t *testing.T) {
	startController(t, controllerOpts{})
	ns := newNamespace(t, nil)
	createPool(t, "share", pools("10.204.0.0/29"))

	createService(t, ns, "dns-tcp", withAnnotation(heraldv1.AnnotationSharingKey, "dns"), withPorts(53))
	createService(t, ns, "dns-http", withAnnotation(heraldv1.AnnotationSharingKey, "dns"), withPorts(80, 443))
	a := waitIPs(t, ns, "dns-tcp", 1)
	b := waitIPs(t, ns, "dns-http", 1)
	if a[0] != b[0] {
		t.Errorf("Services with one sharing key and distinct ports got %s and %s; want one address", a[0], b[0])
	}

	// Same key, clashing port: gets an address of its own.
	createService(t, ns, "clash", withAnnotation(heraldv1.AnnotationSharingKey, "dns"), withPorts(53))
	c := waitIPs(t, ns, "clash", 1)
	if c[0] == a[0] {
		t.Errorf("Service with a clashing port shares %s", c[0])
	}
	// Requesting the shared address with a clashing port is refused with the port named.
	createService(t, ns, "clash-req", withAnnotation(heraldv1.AnnotationSharingKey, "dns"), withAnnotation(heraldv1.AnnotationIPs, a[0]), withPorts(443))
	cond := waitCondition(t, ns, "clash-req", metav1.ConditionFalse, "SharingConflict")
	if !strings.Contains(cond.Message, "TCP/443") {
		t.Errorf("message = %q; want the clashing port TCP/443", cond.Message)
	}
	// The sharer gives up port 443: the waiting Service gets the address without
	// being touched itself.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s := getService(t, ns, "dns-http")
		withPorts(80)(s)
		return k8s.Update(context.Background(), s)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := waitIPs(t, ns, "clash-req", 1); got[0] != a[0] {
		t.Errorf("after the clash went away clash-req got %s; want the shared %s", got[0], a[0])
	}
}

func TestDualStack(t *testing.T) {
	startController(t, controllerOpts{})
	ns := newNamespace(t, nil)
	createPool(t, "dual", pools("10.205.0.0/30", "fd05::/64"))
	createPool(t, "v4only", heraldv1.IPPoolSpec{Addresses: []string{"10.205.1.0/30"}, AutoAssign: boolPtr(false)})

	createService(t, ns, "both", withDualStack(corev1.IPFamilyPolicyRequireDualStack))
	ips := waitIPs(t, ns, "both", 2)
	if ips[0] != "10.205.0.0" || ips[1] != "fd05::" {
		t.Errorf("dual-stack addresses = %v; want [10.205.0.0 fd05::]", ips)
	}

	// RequireDualStack from a pool with no IPv6: refused, with the family named.
	createService(t, ns, "strict", withDualStack(corev1.IPFamilyPolicyRequireDualStack), withAnnotation(heraldv1.AnnotationPool, "v4only"))
	c := waitCondition(t, ns, "strict", metav1.ConditionFalse, "FamilyUnavailable")
	if !strings.Contains(c.Message, "IPv6") {
		t.Errorf("message = %q; want it to name IPv6", c.Message)
	}
	// PreferDualStack from the same pool: settles for IPv4.
	createService(t, ns, "relaxed", withDualStack(corev1.IPFamilyPolicyPreferDualStack), withAnnotation(heraldv1.AnnotationPool, "v4only"))
	if ips := waitIPs(t, ns, "relaxed", 1); ips[0] != "10.205.1.0" {
		t.Errorf("PreferDualStack address = %v; want 10.205.1.0", ips)
	}
}

func TestDeletedServiceFreesAddressForPending(t *testing.T) {
	startController(t, controllerOpts{})
	ns := newNamespace(t, nil)
	createPool(t, "single", pools("10.206.0.1"))

	createService(t, ns, "first")
	waitIPs(t, ns, "first", 1)
	createService(t, ns, "second")
	c := waitCondition(t, ns, "second", metav1.ConditionFalse, "PoolExhausted")
	if !strings.Contains(c.Message, "single") {
		t.Errorf("message = %q; want it to name the pool", c.Message)
	}
	deleteService(t, ns, "first")
	if ips := waitIPs(t, ns, "second", 1); ips[0] != "10.206.0.1" {
		t.Errorf("pending Service got %v; want the freed 10.206.0.1", ips)
	}
}

func TestPoolShrinkAndDeleteRetainAddresses(t *testing.T) {
	startController(t, controllerOpts{})
	ns := newNamespace(t, nil)
	createPool(t, "shrinking", pools("10.207.0.0/30"))
	createService(t, ns, "a")
	createService(t, ns, "b")
	waitIPs(t, ns, "a", 1)
	b := waitIPs(t, ns, "b", 1)

	// Shrink the pool so that b's address falls outside it: the documented policy
	// (Retain) keeps it on b, flagged, and never hands it to anyone else.
	keep := "10.207.0.0"
	if b[0] == keep {
		keep = "10.207.0.1"
	}
	updatePool(t, "shrinking", func(p *heraldv1.IPPool) { p.Spec.Addresses = []string{keep} })
	c := waitCondition(t, ns, "b", metav1.ConditionTrue, "OutsidePools")
	if !strings.Contains(c.Message, b[0]) {
		t.Errorf("message = %q; want it to name %s", c.Message, b[0])
	}
	waitEvent(t, ns, "b", "IPOutsidePools", b[0])
	if got := ingressIPs(getService(t, ns, "b")); len(got) != 1 || got[0] != b[0] {
		t.Errorf("after shrink b shows %v; want it to keep %s", got, b[0])
	}

	// A pool that later covers the orphan again must not hand it out twice.
	createPool(t, "covering", pools(b[0]))
	createService(t, ns, "c", withAnnotation(heraldv1.AnnotationPool, "covering"))
	waitCondition(t, ns, "c", metav1.ConditionFalse, "PoolExhausted")
	waitCondition(t, ns, "b", metav1.ConditionTrue, "Allocated")

	// Deleting every pool: the addresses stay (Retain), flagged.
	if err := k8s.Delete(context.Background(), &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "covering"}}); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(context.Background(), &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "shrinking"}}); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ns, "a", metav1.ConditionTrue, "OutsidePools")
	waitCondition(t, ns, "b", metav1.ConditionTrue, "OutsidePools")
}

func TestLoadBalancerClass(t *testing.T) {
	startController(t, controllerOpts{noClassless: true})
	ns := newNamespace(t, nil)
	createPool(t, "classy", pools("10.208.0.0/30"))

	createService(t, ns, "ours", withClass(heraldv1.LoadBalancerClass))
	createService(t, ns, "theirs", withClass("example.com/other"))
	createService(t, ns, "classless")
	waitIPs(t, ns, "ours", 1)
	// Give the controller time to (wrongly) act on the others: it has handled
	// "ours", created last but one, so a second reconcile round is enough.
	createService(t, ns, "marker", withClass(heraldv1.LoadBalancerClass))
	waitIPs(t, ns, "marker", 1)
	for _, n := range []string{"theirs", "classless"} {
		s := getService(t, ns, n)
		if len(s.Status.LoadBalancer.Ingress) != 0 || len(s.Status.Conditions) != 0 {
			t.Errorf("Service %s was touched: %s", n, describe(s))
		}
	}

	// Turning our Service into a ClusterIP releases the address and clears status.
	s := getService(t, ns, "ours")
	s.Spec.Type = corev1.ServiceTypeClusterIP
	s.Spec.LoadBalancerClass = nil
	s.Spec.AllocateLoadBalancerNodePorts = nil
	if err := k8s.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, 10e9, "status cleared after type change", func() (bool, string) {
		s := getService(t, ns, "ours")
		return len(s.Status.LoadBalancer.Ingress) == 0 && len(s.Status.Conditions) == 0, describe(s)
	})
	waitEvent(t, ns, "ours", "IPReleased", "10.208.0.0")
	createService(t, ns, "next", withClass(heraldv1.LoadBalancerClass))
	if ips := waitIPs(t, ns, "next", 1); ips[0] != "10.208.0.0" {
		t.Errorf("released address not reused: got %s; want 10.208.0.0", ips[0])
	}
}

func TestPoolSelectors(t *testing.T) {
	startController(t, controllerOpts{})
	prod := newNamespace(t, map[string]string{"env": "prod"})
	dev := newNamespace(t, nil)
	createPool(t, "prod-only", heraldv1.IPPoolSpec{
		Addresses:  []string{"10.209.0.0/30"},
		Allocation: &heraldv1.IPPoolAllocation{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}},
	})
	createService(t, prod, "p")
	waitIPs(t, prod, "p", 1)
	createService(t, dev, "d")
	c := waitCondition(t, dev, "d", metav1.ConditionFalse, "NoPoolAllowed")
	if !strings.Contains(c.Message, "namespaceSelector") {
		t.Errorf("message = %q; want it to point at the namespaceSelector", c.Message)
	}
	// Labelling the namespace is noticed without touching the Service.
	var nsObj corev1.Namespace
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: dev}, &nsObj); err != nil {
		t.Fatal(err)
	}
	nsObj.Labels = map[string]string{"env": "prod"}
	if err := k8s.Update(context.Background(), &nsObj); err != nil {
		t.Fatal(err)
	}
	waitIPs(t, dev, "d", 1)
}

func boolPtr(b bool) *bool { return &b }
