package nodeaddr

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func TestOwn(t *testing.T) {
	n := &corev1.Node{Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeHostName, Address: "node1"},
		{Type: corev1.NodeInternalIP, Address: "192.168.0.1"},
		{Type: corev1.NodeInternalDNS, Address: "node1.example"},
		{Type: corev1.NodeExternalIP, Address: "::ffff:203.0.113.7"},
		{Type: corev1.NodeInternalIP, Address: "fd00::1"},
		{Type: corev1.NodeExternalIP, Address: "not an address"},
	}}}
	want := []netip.Addr{netip.MustParseAddr("192.168.0.1"), netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("fd00::1")}
	if diff := cmp.Diff(want, Own(n), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("Own (-want +got):\n%s", diff)
	}
}
