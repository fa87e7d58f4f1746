package ipam

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/allocator"
)

func TestWantPoolAnnotation(t *testing.T) {
	ip := []netip.Addr{netip.MustParseAddr("10.0.0.1")}
	shown := svc(func(s *corev1.Service) {
		s.Annotations = map[string]string{heraldv1.AnnotationAllocatedFromPool: "old"}
	})
	for _, tt := range []struct {
		name     string
		svc      *corev1.Service
		asg      allocator.Assignment
		want     string
		wantKeep bool
	}{
		{"given from a pool", svc(nil), allocator.Assignment{IPs: ip, Pool: "p"}, "p", true},
		{"moved to another pool", shown, allocator.Assignment{IPs: ip, Pool: "p"}, "p", true},
		{"retained outside every pool keeps what is shown", shown, allocator.Assignment{IPs: ip}, "old", true},
		{"retained, nothing shown", svc(nil), allocator.Assignment{IPs: ip}, "", false},
		{"no addresses", shown, allocator.Assignment{}, "", false},
	} {
		got, keep := wantPoolAnnotation(tt.svc, tt.asg)
		if got != tt.want || keep != tt.wantKeep {
			t.Errorf("%s: got %q, %v; want %q, %v", tt.name, got, keep, tt.want, tt.wantKeep)
		}
	}
}

func TestNodeAddresses(t *testing.T) {
	node := func(name string, addrs ...corev1.NodeAddress) corev1.Node {
		n := corev1.Node{}
		n.Name, n.Status.Addresses = name, addrs
		return n
	}
	got := nodeAddresses([]corev1.Node{
		node("a", corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}, corev1.NodeAddress{Type: corev1.NodeHostName, Address: "a"},
			corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "::ffff:192.0.2.1"}, corev1.NodeAddress{Type: corev1.NodeInternalDNS, Address: "10.9.9.9"}),
		node("b", corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "garbage"}),
	})
	want := map[netip.Addr][]string{netip.MustParseAddr("10.0.0.1"): {"a", "b"}, netip.MustParseAddr("192.0.2.1"): {"a"}}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("nodeAddresses (-want +got):\n%s", diff)
	}
	a, b := node("a", corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}), node("a", corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}, corev1.NodeAddress{Type: corev1.NodeHostName, Address: "a"})
	if nodeEventChanges(&a, &b) {
		t.Error("a hostname change counted as an address change")
	}
	b.Status.Addresses[0].Address = "10.0.0.2"
	if !nodeEventChanges(&a, &b) {
		t.Error("an InternalIP change was missed")
	}
}

func TestNodeOverlapConditionIsBounded(t *testing.T) {
	var nas []allocator.NodeAddress
	for i := range 25 {
		nas = append(nas, allocator.NodeAddress{Addr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), Nodes: []string{fmt.Sprintf("n%d", i)}})
	}
	c := nodeOverlapCondition(2, nas)
	if c.Status != "True" || !strings.Contains(c.Message, "10.0.0.0 (node n0)") || !strings.Contains(c.Message, "and 15 more") || strings.Contains(c.Message, "n24") {
		t.Errorf("condition = %+v; want the first 10 named and 15 more counted", c)
	}
	if c := nodeOverlapCondition(2, nil); c.Status != "False" {
		t.Errorf("no node addresses: %+v; want False", c)
	}
}

func TestStrictARPCondition(t *testing.T) {
	a := &heraldv1.L2Announcement{}
	if setStrictARPCondition(a, nil) || setStrictARPCondition(a, &kubeProxyState{}) {
		t.Error("nothing to say, yet the condition changed")
	}
	if !setStrictARPCondition(a, &kubeProxyState{strictARPMissing: true}) {
		t.Fatal("IPVS without strictARP set no condition")
	}
	c := meta.FindStatusCondition(a.Status.Conditions, heraldv1.L2AnnouncementConditionKubeProxyStrictARP)
	if c == nil || c.Status != "False" || !strings.Contains(c.Message, "kubectl -n kube-system edit configmap kube-proxy") {
		t.Errorf("condition = %+v; want False telling the fix", c)
	}
	if !setStrictARPCondition(a, nil) || len(a.Status.Conditions) != 0 {
		t.Error("the ConfigMap gone, the condition stayed")
	}
}
