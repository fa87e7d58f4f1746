package app

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/speaker/plan"
)

func ippool(name string, uid types.UID, addrs ...string) heraldv1.IPPool {
	return heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name, UID: uid, Labels: map[string]string{"net": "lan"}},
		Spec: heraldv1.IPPoolSpec{Addresses: addrs}}
}

func TestPoolMemory(t *testing.T) {
	var m poolMemory
	in := netip.MustParseAddr("10.0.0.1")
	steps := []struct {
		name       string
		pools      []heraldv1.IPPool
		unreadable bool
		holds      bool // whether the lan pool's addresses hold 10.0.0.1
		present    bool
	}{
		{"valid", []heraldv1.IPPool{ippool("lan", "u1", "10.0.0.0/24")}, false, true, true},
		{"edit that does not parse keeps the last valid addresses", []heraldv1.IPPool{ippool("lan", "u1", "10.0.0.0/33")}, true, true, true},
		{"and keeps them on the next pass", []heraldv1.IPPool{ippool("lan", "u1", "10.0.0.0/33")}, true, true, true},
		{"recreated under the same name: not the same pool", []heraldv1.IPPool{ippool("lan", "u2", "10.0.0.0/33")}, true, false, true},
		{"valid again", []heraldv1.IPPool{ippool("lan", "u2", "10.0.0.0/24")}, false, true, true},
		{"deleted", nil, false, false, false},
		{"back unreadable after a deletion: nothing kept", []heraldv1.IPPool{ippool("lan", "u2", "10.0.0.0/33")}, true, false, true},
	}
	for _, st := range steps {
		got := m.pools(st.pools)
		i := slices.IndexFunc(got, func(p plan.Pool) bool { return p.Name == "lan" })
		if (i >= 0) != st.present {
			t.Fatalf("%s: pool present = %v; want %v", st.name, i >= 0, st.present)
		}
		if i < 0 {
			continue
		}
		p := got[i]
		holds := p.Addresses != nil && p.Addresses.Contains(in)
		if p.Unreadable != st.unreadable || holds != st.holds || p.Labels["net"] != "lan" {
			t.Errorf("%s: unreadable=%v holds=%v labels=%v; want unreadable=%v holds=%v", st.name, p.Unreadable, holds, p.Labels, st.unreadable, st.holds)
		}
	}
}

func TestPlanNodesAddresses(t *testing.T) {
	n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: "10.0.0.11"},
			{Type: corev1.NodeExternalIP, Address: "::ffff:192.0.2.7"},
			{Type: corev1.NodeInternalIP, Address: "fd00::11"},
			{Type: corev1.NodeHostName, Address: "n1"},
			{Type: corev1.NodeInternalDNS, Address: "10.9.9.9"},
			{Type: corev1.NodeInternalIP, Address: "not-an-ip"},
		},
	}}
	got := planNodes([]corev1.Node{n})
	want := []netip.Addr{netip.MustParseAddr("10.0.0.11"), netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("fd00::11")}
	if len(got) != 1 || !got[0].Ready || !slices.Equal(got[0].Addresses, want) {
		t.Errorf("planNodes = %+v; want Ready with addresses %v", got, want)
	}
}

// fakeCluster is a fake client holding the objects of a small layer 2 setup: a
// pool, an announcement naming it, a Ready node and a Service with an address.
func fakeCluster(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := heraldv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(&corev1.Service{}).Build()
}

func lbService(name, ip, from string) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		Status:     corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: ip}}}},
	}
	if from != "" {
		s.Annotations = map[string]string{heraldv1.AnnotationAllocatedFromPool: from}
	}
	return s
}

func computeFromCluster(t *testing.T, c client.Client) plan.Plan {
	t.Helper()
	svcs, nodes, pools, anns, err := snapshot(context.Background(), c, true)
	if err != nil {
		t.Fatal(err)
	}
	return plan.Compute(svcs, nodes, pools, anns)
}

func plannedServices(p plan.Plan) []string {
	var out []string
	for _, g := range p.Groups {
		out = append(out, g.Services...)
	}
	slices.Sort(out)
	return out
}

// TestSnapshotNeverDarkOnPoolEdit pins issue 8, "never go dark on an edit": an
// IPPool edit the speaker could not parse dropped the pool from the snapshot,
// and every Service in it stopped being announced; an address the controller
// retained outside every pool was dropped too.
func TestSnapshotNeverDarkOnPoolEdit(t *testing.T) {
	ctx := context.Background()
	lan := ippool("lan", "u1", "10.0.0.0/24")
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.11"}},
	}}
	ann := &heraldv1.L2Announcement{ObjectMeta: metav1.ObjectMeta{Name: "l2"}, Spec: heraldv1.L2AnnouncementSpec{IPPools: []string{"lan"}}}
	c := fakeCluster(t, &lan, node, ann,
		lbService("web", "10.0.0.1", ""),         // not annotated yet
		lbService("retained", "10.0.9.1", "lan"), // outside the pool, retained by the controller
		lbService("steals", "10.0.0.11", "lan"))  // the node's own address

	p := computeFromCluster(t, c)
	if got, want := plannedServices(p), []string{"ns/retained", "ns/web"}; !slices.Equal(got, want) {
		t.Errorf("before the edit: announced %v; want %v", got, want)
	}
	if len(p.NodeAddressConflicts) != 1 || p.NodeAddressConflicts[0].Service != "ns/steals" || p.Skipped["ns/steals"] != plan.SkipNodeAddress {
		t.Errorf("node address: conflicts %+v, skipped %v; want ns/steals left out", p.NodeAddressConflicts, p.Skipped)
	}

	var cur heraldv1.IPPool
	if err := c.Get(ctx, client.ObjectKey{Name: "lan"}, &cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.Addresses = []string{"10.0.0.0/33"} // the API server's CEL would not catch every typo
	if err := c.Update(ctx, &cur); err != nil {
		t.Fatal(err)
	}
	p = computeFromCluster(t, c)
	if got, want := plannedServices(p), []string{"ns/retained", "ns/web"}; !slices.Equal(got, want) {
		t.Errorf("after an edit that does not parse: announced %v, skipped %v; want %v", got, p.Skipped, want)
	}
	for _, g := range p.Groups {
		if !slices.Equal(g.UnreadablePools, []string{"lan"}) {
			t.Errorf("group %s: UnreadablePools = %v; want [lan]", g.Key, g.UnreadablePools)
		}
	}
}

// TestPlanServicesClassRule: the speaker announces exactly the Services the
// controller handles, --handle-classless included.
func TestPlanServicesClassRule(t *testing.T) {
	other := "example.com/other"
	ours := heraldv1.LoadBalancerClass
	svc := func(name string, class *string) corev1.Service {
		return corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: class},
			Status:     corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "192.0.2.1"}}}},
		}
	}
	svcs := []corev1.Service{svc("classless", nil), svc("ours", &ours), svc("other", &other)}
	for _, tt := range []struct {
		classless bool
		want      []string
	}{{true, []string{"ns/classless", "ns/ours"}}, {false, []string{"ns/ours"}}} {
		var got []string
		for _, s := range planServices(svcs, nil, tt.classless) {
			got = append(got, s.Key)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("handleClassless=%v: %v; want %v", tt.classless, got, tt.want)
		}
	}
}
