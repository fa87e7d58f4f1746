//go:build integration

package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/controller/ipam"
	"github.com/heraldlb/herald/internal/allocator"
	"github.com/heraldlb/herald/internal/testpoll"
)

// TestCIDRHostBitsRefusedByCEL pins issue 8: the API server accepted
// 192.168.20.5/24, which reads like a pool of one address and is a /24.
func TestCIDRHostBitsRefusedByCEL(t *testing.T) {
	ctx := context.Background()
	for _, bad := range []string{"192.168.20.5/24", "fd00:20::5/64"} {
		p := &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "cel-hostbits"}, Spec: heraldv1.IPPoolSpec{Addresses: []string{"10.0.9.1", bad}}}
		err := k8s.Create(ctx, p)
		if err == nil {
			_ = k8s.Delete(ctx, p)
			t.Fatalf("API server accepted %s", bad)
		}
		if !strings.Contains(err.Error(), "a CIDR must not have host bits set") {
			t.Errorf("refusing %s: error %v; want it to say it has host bits set", bad, err)
		}
	}
	if err := k8s.Create(ctx, &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "cel-hostbits"}, Spec: heraldv1.IPPoolSpec{Addresses: []string{"10.0.9.1", "10.0.9.5-10.0.9.9", "192.168.20.0/24", "192.168.21.7/32", "fd00:20::/64"}}}); err != nil {
		t.Fatalf("API server refused network addresses: %v", err)
	}
	_ = k8s.Delete(ctx, &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "cel-hostbits"}})
}

// createNodeWithIPs creates a Node with the given InternalIPs and deletes it when
// the test ends.
func createNodeWithIPs(t *testing.T, name string, ips ...string) {
	t.Helper()
	createNode(t, name)
	setNodeIPs(t, name, ips...)
}

func setNodeIPs(t *testing.T, name string, ips ...string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var n corev1.Node
		if err := k8s.Get(context.Background(), client.ObjectKey{Name: name}, &n); err != nil {
			return err
		}
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}}
		for _, ip := range ips {
			n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
		}
		return k8s.Status().Update(context.Background(), &n)
	})
	if err != nil {
		t.Fatalf("setting addresses of Node %s: %v", name, err)
	}
}

func waitPoolCondition(t *testing.T, pool, typ string, status metav1.ConditionStatus, msg string) {
	t.Helper()
	testpoll.Until(t, 10*time.Second, fmt.Sprintf("IPPool %s %s=%s with %q", pool, typ, status, msg), func() (bool, string) {
		var p heraldv1.IPPool
		if err := k8s.Get(context.Background(), client.ObjectKey{Name: pool}, &p); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(p.Status.Conditions, typ)
		return c != nil && c.Status == status && strings.Contains(c.Message, msg), fmt.Sprintf("%+v", c)
	})
}

// TestNodeAddressNeverHandedOut pins issue 8: a Service that requested a node's
// address got it, and two MACs answered ARP for it.
func TestNodeAddressNeverHandedOut(t *testing.T) {
	startController(t, controllerOpts{})
	ns := newNamespace(t, nil)
	createNodeWithIPs(t, "i8-worker-1", "10.230.0.1")
	createPool(t, "i8-nodes", pools("10.230.0.0/30"))

	waitPoolCondition(t, "i8-nodes", heraldv1.IPPoolConditionNodeAddressOverlap, metav1.ConditionTrue, "10.230.0.1 (node i8-worker-1)")
	waitEvent(t, "default", "i8-nodes", "NodeAddressOverlap", "i8-worker-1")

	// Requested: refused with a reason naming the node.
	createService(t, ns, "wants-node", withAnnotation(heraldv1.AnnotationIPs, "10.230.0.1"))
	c := waitCondition(t, ns, "wants-node", metav1.ConditionFalse, allocator.ReasonNodeAddress.String())
	if !strings.Contains(c.Message, "node i8-worker-1") {
		t.Errorf("condition message %q does not name the node", c.Message)
	}
	waitEvent(t, ns, "wants-node", "AllocationFailed", "i8-worker-1")

	// Automatic: skipped.
	var got []string
	for i := range 3 {
		name := fmt.Sprintf("auto-%d", i)
		createService(t, ns, name, withAnnotation(heraldv1.AnnotationPool, "i8-nodes"))
		got = append(got, waitIPs(t, ns, name, 1)...)
	}
	for _, ip := range got {
		if ip == "10.230.0.1" {
			t.Errorf("a Service was given the node's address 10.230.0.1 (got %v)", got)
		}
	}

	// An address a Service holds becomes a node's: kept, with a Warning.
	held := getService(t, ns, "auto-0")
	ip := ingressIPs(held)[0]
	createNodeWithIPs(t, "i8-worker-2", ip)
	c = waitCondition(t, ns, "auto-0", metav1.ConditionTrue, ipam.ReasonHoldsNodeAddress)
	if !strings.Contains(c.Message, "i8-worker-2") {
		t.Errorf("condition message %q does not name the node", c.Message)
	}
	waitEvent(t, ns, "auto-0", "NodeAddressHeld", "i8-worker-2")
	if now := ingressIPs(getService(t, ns, "auto-0")); len(now) != 1 || now[0] != ip {
		t.Errorf("Service holding %s now shows %v; want it kept", ip, now)
	}

	// The nodes give their addresses up: the request succeeds, the warning goes.
	setNodeIPs(t, "i8-worker-1", "10.230.9.1")
	waitCondition(t, ns, "wants-node", metav1.ConditionTrue, ipam.ReasonAllocated)
	waitCondition(t, ns, "auto-0", metav1.ConditionTrue, ipam.ReasonHoldsNodeAddress)
	setNodeIPs(t, "i8-worker-2", "10.230.9.2")
	waitCondition(t, ns, "auto-0", metav1.ConditionTrue, ipam.ReasonAllocated)
	waitPoolCondition(t, "i8-nodes", heraldv1.IPPoolConditionNodeAddressOverlap, metav1.ConditionFalse, "no Node")
}

// TestLocalSharingNeedsSameSelector pins issue 8: a second Local Service sharing
// an address by key, with pods elsewhere, left no node to announce it and cut the
// first.
func TestLocalSharingNeedsSameSelector(t *testing.T) {
	startController(t, controllerOpts{})
	ns := newNamespace(t, nil)
	createPool(t, "i8-local", pools("10.230.1.0/30"))
	local := func(app string, port int32) svcOpt {
		return func(s *corev1.Service) {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Spec.Selector = map[string]string{"app": app}
			withPorts(port)(s)
			withAnnotation(heraldv1.AnnotationSharingKey, "web")(s)
			withAnnotation(heraldv1.AnnotationPool, "i8-local")(s)
		}
	}
	createService(t, ns, "first", local("a", 80))
	first := waitIPs(t, ns, "first", 1)
	createService(t, ns, "second", local("b", 443))
	c := waitCondition(t, ns, "second", metav1.ConditionFalse, allocator.ReasonSharingLocalSelector.String())
	if !strings.Contains(c.Message, "Service "+ns+"/first") || !strings.Contains(c.Message, "same pods") {
		t.Errorf("condition message %q does not name the other Service and say why", c.Message)
	}
	if now := ingressIPs(getService(t, ns, "first")); len(now) != 1 || now[0] != first[0] {
		t.Errorf("first Service shows %v; want %v untouched", now, first)
	}
	// Same pods: shared.
	createService(t, ns, "third", local("a", 8080))
	if got := waitIPs(t, ns, "third", 1); got[0] != first[0] {
		t.Errorf("third Service (same selector) got %v; want to share %v", got, first)
	}
	// Fixing the selector lets the second share.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s := getService(t, ns, "second")
		s.Spec.Selector = map[string]string{"app": "a"}
		return k8s.Update(context.Background(), s)
	})
	if err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ns, "second", metav1.ConditionTrue, ipam.ReasonAllocated)
	if got := ingressIPs(getService(t, ns, "second")); len(got) != 1 || got[0] != first[0] {
		t.Errorf("second Service got %v; want to share %v", got, first)
	}
}

// TestAllocatedFromPoolAnnotation: the controller names the pool on every Service
// it gives addresses, keeps it when they are retained outside every pool, and
// removes it when the Service loses them.
func TestAllocatedFromPoolAnnotation(t *testing.T) {
	startController(t, controllerOpts{})
	ns := newNamespace(t, nil)
	createPool(t, "i8-annot", pools("10.230.2.0/30"))
	createService(t, ns, "web", withAnnotation(heraldv1.AnnotationPool, "i8-annot"))
	waitIPs(t, ns, "web", 1)
	waitAnnotation := func(want string, present bool) {
		t.Helper()
		testpoll.Until(t, 10*time.Second, fmt.Sprintf("annotation %s=%q present=%v", heraldv1.AnnotationAllocatedFromPool, want, present), func() (bool, string) {
			s := getService(t, ns, "web")
			v, ok := s.Annotations[heraldv1.AnnotationAllocatedFromPool]
			return ok == present && v == want, fmt.Sprintf("%q present=%v; %s", v, ok, describe(s))
		})
	}
	waitAnnotation("i8-annot", true)

	// Retained outside every pool: the annotation stays.
	updatePool(t, "i8-annot", func(p *heraldv1.IPPool) { p.Spec.Addresses = []string{"10.230.2.128/30"} })
	waitCondition(t, ns, "web", metav1.ConditionTrue, ipam.ReasonOutsidePools)
	waitAnnotation("i8-annot", true)

	// No longer a LoadBalancer: addresses released, annotation removed.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s := getService(t, ns, "web")
		s.Spec.Type = corev1.ServiceTypeClusterIP
		s.Spec.AllocateLoadBalancerNodePorts = nil
		return k8s.Update(context.Background(), s)
	})
	if err != nil {
		t.Fatal(err)
	}
	waitAnnotation("", false)
}

// kubeadmKubeProxyConf is config.conf as kubeadm writes it, trimmed of the fields
// that do not matter, with the mode and strictARP filled in.
const kubeadmKubeProxyConf = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
bindAddress: 0.0.0.0
clientConnection:
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
clusterCIDR: 10.244.0.0/16
iptables:
  masqueradeAll: false
  minSyncPeriod: 1s
ipvs:
  excludeCIDRs: null
  minSyncPeriod: 0s
  scheduler: ""
  strictARP: %v
  syncPeriod: 0s
kind: KubeProxyConfiguration
mode: %s
nodePortAddresses: null
`

// TestKubeProxyIPVSWithoutStrictARP: kube-proxy in IPVS mode without strictARP
// makes every node answer ARP for every address; the controller says so on each
// L2Announcement, and stops when it is fixed.
func TestKubeProxyIPVSWithoutStrictARP(t *testing.T) {
	ctx := context.Background()
	startController(t, controllerOpts{})
	a := &heraldv1.L2Announcement{ObjectMeta: metav1.ObjectMeta{Name: "i8-strictarp"}}
	if err := k8s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), a) })
	cond := func() *metav1.Condition {
		var got heraldv1.L2Announcement
		if err := k8s.Get(ctx, client.ObjectKey{Name: a.Name}, &got); err != nil {
			t.Fatal(err)
		}
		return meta.FindStatusCondition(got.Status.Conditions, heraldv1.L2AnnouncementConditionKubeProxyStrictARP)
	}
	// No ConfigMap (not kubeadm): nothing said, once the status pass has run.
	testpoll.Until(t, 10*time.Second, "L2Announcement Ready", func() (bool, string) {
		var got heraldv1.L2Announcement
		_ = k8s.Get(ctx, client.ObjectKey{Name: a.Name}, &got)
		return meta.FindStatusCondition(got.Status.Conditions, "Ready") != nil, fmt.Sprintf("%+v", got.Status)
	})
	if c := cond(); c != nil {
		t.Fatalf("without a kube-proxy ConfigMap the announcement shows %+v", c)
	}

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-proxy"},
		Data: map[string]string{"config.conf": fmt.Sprintf(kubeadmKubeProxyConf, false, "ipvs"), "kubeconfig.conf": "apiVersion: v1\nkind: Config\n"}}
	if err := k8s.Create(ctx, cm); err != nil {
		t.Fatalf("creating kube-system/kube-proxy: %v", err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), cm) })
	testpoll.Until(t, 10*time.Second, "KubeProxyStrictARP=False", func() (bool, string) {
		c := cond()
		return c != nil && c.Status == metav1.ConditionFalse && strings.Contains(c.Message, "strictARP: true"), fmt.Sprintf("%+v", c)
	})
	waitEvent(t, "default", a.Name, "KubeProxyStrictARPMissing", "kubectl -n kube-system edit configmap kube-proxy")

	// Fixed: the condition goes.
	cm.Data["config.conf"] = fmt.Sprintf(kubeadmKubeProxyConf, true, "ipvs")
	if err := k8s.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	testpoll.Until(t, 10*time.Second, "KubeProxyStrictARP condition removed", func() (bool, string) {
		c := cond()
		return c == nil, fmt.Sprintf("%+v", c)
	})
	// Garbage claims nothing and crashes nothing.
	cm.Data["config.conf"] = "mode: [ipvs\n\t: :"
	if err := k8s.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if c := cond(); c != nil {
		t.Errorf("unreadable kube-proxy configuration made a claim: %+v", c)
	}
}

// TestControllerReadsOnlyKubeProxyConfigMap: the controller's Role reads the one
// ConfigMap it needs, and lists and watches it only by name.
func TestControllerReadsOnlyKubeProxyConfigMap(t *testing.T) {
	ctx := context.Background()
	installRBAC(t)
	const controller = "system:serviceaccount:herald-system:herald-controller"
	for _, tt := range []struct {
		verb, resource, namespace, name string
		want                            bool
	}{
		{"get", "configmaps", "kube-system", "kube-proxy", true},
		{"watch", "configmaps", "kube-system", "kube-proxy", true},
		{"list", "configmaps", "kube-system", "kube-proxy", true},
		{"get", "configmaps", "kube-system", "coredns", false},
		{"list", "configmaps", "kube-system", "", false},
		{"get", "configmaps", "default", "kube-proxy", false},
		{"patch", "services", "default", "", true},
		{"update", "services", "default", "", false},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   controller,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:herald-system", "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: tt.verb, Resource: tt.resource, Namespace: tt.namespace, Name: tt.name,
			},
		}}
		got, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Allowed != tt.want {
			t.Errorf("controller may %s %s in %q name %q: %v; want %v", tt.verb, tt.resource, tt.namespace, tt.name, got.Status.Allowed, tt.want)
		}
	}
}
