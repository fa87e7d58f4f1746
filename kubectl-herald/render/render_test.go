package render

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/kubectl-herald/inspect"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

// now is the fixtures' present; every timestamp is some time before it, so
// ages in the goldens are fixed.
var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden (run go test -update to write it): %v", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, d)
	}
}

func pool(name string, addrs []string, mod func(*heraldv1.IPPool)) heraldv1.IPPool {
	p := heraldv1.IPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       heraldv1.IPPoolSpec{Addresses: addrs},
		Status: heraldv1.IPPoolStatus{Conditions: []metav1.Condition{{
			Type: heraldv1.IPPoolConditionReady, Status: metav1.ConditionTrue, Reason: "Valid", LastTransitionTime: ago(time.Hour),
		}}},
	}
	if mod != nil {
		mod(&p)
	}
	return p
}

func service(ns, name string, created time.Duration, mod func(*corev1.Service)) corev1.Service {
	s := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: ago(created), Labels: map[string]string{"app": name}},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Ports:    []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}},
			Selector: map[string]string{"app": name},
		},
	}
	if mod != nil {
		mod(&s)
	}
	return s
}

func assigned(pool string, ips ...string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[heraldv1.AnnotationAllocatedFromPool] = pool
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
		}
		setCond(s, heraldv1.ConditionIPAllocated, metav1.ConditionTrue, "Allocated", "assigned from IPPool "+pool, 20*time.Minute)
	}
}

func setCond(s *corev1.Service, typ string, st metav1.ConditionStatus, reason, msg string, since time.Duration) {
	s.Status.Conditions = append(s.Status.Conditions, metav1.Condition{Type: typ, Status: st, Reason: reason, Message: msg, LastTransitionTime: ago(since)})
}

func event(s corev1.Service, typ, reason, from, msg string, last time.Duration, count int32) corev1.Event {
	return corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Name + "." + reason},
		InvolvedObject: corev1.ObjectReference{Kind: "Service", Namespace: s.Namespace, Name: s.Name},
		Type:           typ, Reason: reason, Message: msg, Count: count,
		Source:        corev1.EventSource{Component: from},
		LastTimestamp: ago(last),
	}
}

// base is a cluster with a production pool (dual-stack, priority 10, a /64),
// an L2Announcement and a BGPAnnouncement covering it, and one BGPPeer.
func base() inspect.Cluster {
	return inspect.Cluster{
		Namespaces: []corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"env": "dev"}}}},
		Nodes: []corev1.Node{
			{ObjectMeta: metav1.ObjectMeta{Name: "node1"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.11"}}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "node2"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.12"}}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "node3"}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.13"}}}},
		},
		Pools: []heraldv1.IPPool{
			pool("production", []string{"192.168.10.0/24", "fd00:10::/64"}, func(p *heraldv1.IPPool) {
				p.Spec.Allocation = &heraldv1.IPPoolAllocation{Priority: ptr.To[int32](10)}
				p.Status.IPv4 = &heraldv1.IPPoolFamilyStatus{Capacity: "256", Used: "3", Free: "253"}
				p.Status.IPv6 = &heraldv1.IPPoolFamilyStatus{Capacity: "18446744073709551616", Used: "0", Free: "18446744073709551616"}
				p.Status.Used, p.Status.Free = "3", "18446744073709551869"
			}),
		},
		L2:  []heraldv1.L2Announcement{{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: heraldv1.L2AnnouncementSpec{IPPools: []string{"production"}}}},
		BGP: []heraldv1.BGPAnnouncement{{ObjectMeta: metav1.ObjectMeta{Name: "core"}, Spec: heraldv1.BGPAnnouncementSpec{Peers: []string{"tor1"}, NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"rack": "a"}}}}},
		Peers: []heraldv1.BGPPeer{{
			ObjectMeta: metav1.ObjectMeta{Name: "tor1"},
			Spec:       heraldv1.BGPPeerSpec{PeerAddress: "192.168.1.1", PeerASN: 64512, LocalASN: 64513},
			Status: heraldv1.BGPPeerStatus{Nodes: []heraldv1.BGPPeerNodeStatus{
				{Node: "node1", State: "Established", Since: ago(3 * time.Hour)},
				{Node: "node2", State: "Established", Since: ago(2 * time.Hour)},
				{Node: "node3", State: "Active", Since: ago(10 * time.Minute), LastError: "dial tcp 192.168.1.1:179: connect: connection refused"},
			}},
		}},
	}
}

func TestStatusGolden(t *testing.T) {
	tests := []struct {
		name string
		svc  string
		make func() inspect.Cluster
	}{{
		name: "status_assigned",
		svc:  "web",
		make: func() inspect.Cluster {
			c := base()
			web := service("shop", "web", time.Hour, assigned("production", "192.168.10.1"))
			setCond(&web, heraldv1.ConditionAnnounced, metav1.ConditionTrue, heraldv1.AnnouncedReasonAnnounced, "192.168.10.1: node2 answers ARP on eth0; BGP from node1, node2 to tor1", 19*time.Minute)
			c.Services = []corev1.Service{web, service("shop", "old", 2*time.Hour, assigned("production", "192.168.10.0"))}
			c.Events = []corev1.Event{
				event(web, "Normal", "IPAllocated", "herald-controller", "Assigned 192.168.10.1 from IPPool production", 20*time.Minute, 1),
				event(web, "Normal", "Announcing", "herald-speaker", "node2 answers ARP for 192.168.10.1 on eth0", 19*time.Minute, 1),
			}
			return c
		},
	}, {
		name: "status_pending",
		svc:  "api",
		make: func() inspect.Cluster {
			c := base()
			c.Pools = append(c.Pools[:0],
				pool("ns-only", []string{"10.1.0.0/28"}, func(p *heraldv1.IPPool) {
					p.Spec.Allocation = &heraldv1.IPPoolAllocation{Namespaces: []string{"payments"}, Priority: ptr.To[int32](1)}
				}),
				pool("edge", []string{"10.2.0.0/28"}, func(p *heraldv1.IPPool) {
					p.Spec.Allocation = &heraldv1.IPPoolAllocation{ServiceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "edge"}}}
				}),
				pool("small", []string{"10.3.0.7"}, nil),
			)
			api := service("shop", "api", 5*time.Minute, func(s *corev1.Service) {
				setCond(s, heraldv1.ConditionIPAllocated, metav1.ConditionFalse, "PoolExhausted", "no free IPv4 address in IPPools small", 5*time.Minute)
			})
			c.Services = []corev1.Service{api, service("other", "taker", time.Hour, assigned("small", "10.3.0.7"))}
			c.Events = []corev1.Event{event(api, "Warning", "AllocationFailed", "herald-controller", "no free IPv4 address in IPPools small", 4*time.Minute, 3)}
			return c
		},
	}, {
		name: "status_shared",
		svc:  "dns-udp",
		make: func() inspect.Cluster {
			c := base()
			share := func(port int32, proto corev1.Protocol) func(*corev1.Service) {
				return func(s *corev1.Service) {
					assigned("production", "192.168.10.53")(s)
					s.Annotations[heraldv1.AnnotationSharingKey] = "dns"
					s.Annotations[heraldv1.AnnotationIPs] = "192.168.10.53"
					s.Spec.Ports = []corev1.ServicePort{{Port: port, Protocol: proto}}
				}
			}
			udp := service("shop", "dns-udp", time.Hour, share(53, corev1.ProtocolUDP))
			tcp := service("shop", "dns-tcp", 2*time.Hour, share(53, corev1.ProtocolTCP))
			c.Services = []corev1.Service{udp, tcp}
			return c
		},
	}, {
		name: "status_local_no_endpoints",
		svc:  "web",
		make: func() inspect.Cluster {
			c := base()
			web := service("shop", "web", time.Hour, assigned("production", "192.168.10.1"))
			web.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			setCond(&web, heraldv1.ConditionAnnounced, metav1.ConditionFalse, heraldv1.AnnouncedReasonNoReadyEndpoint, "externalTrafficPolicy is Local and no eligible node has a ready endpoint of the Service", 7*time.Minute)
			c.Services = []corev1.Service{web}
			c.Events = []corev1.Event{event(web, "Warning", "NotAnnouncing", "herald-speaker", "no eligible node has a ready endpoint (externalTrafficPolicy Local)", 7*time.Minute, 2)}
			return c
		},
	}, {
		name: "status_failover",
		svc:  "web",
		make: func() inspect.Cluster {
			c := base()
			c.BGP = nil
			web := service("shop", "web", time.Hour, assigned("production", "192.168.10.1"))
			setCond(&web, heraldv1.ConditionAnnounced, metav1.ConditionTrue, heraldv1.AnnouncedReasonAnnounced, "192.168.10.1: node3 answers ARP on eth0", 30*time.Second)
			c.Services = []corev1.Service{web}
			c.Events = []corev1.Event{
				event(web, "Normal", "IPAllocated", "herald-controller", "Assigned 192.168.10.1 from IPPool production", 50*time.Minute, 1),
				event(web, "Normal", "Announcing", "herald-speaker", "node2 answers ARP for 192.168.10.1 on eth0", 49*time.Minute, 1),
				event(web, "Warning", "NotAnnouncing", "herald-speaker", "node2 stops answering for 192.168.10.1: node2 left the cluster", 40*time.Second, 1),
				event(web, "Normal", "Announcing", "herald-speaker", "node3 answers ARP for 192.168.10.1 on eth0", 30*time.Second, 1),
			}
			return c
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := inspect.Status(tt.make(), "shop", tt.svc)
			if err != nil {
				t.Fatal(err)
			}
			var text, js bytes.Buffer
			if err := Status(&text, r, now); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name, text.Bytes())
			if err := JSON(&js, r); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name+".json", js.Bytes())
		})
	}
}

func TestPoolsGolden(t *testing.T) {
	c := base()
	c.Pools = append(c.Pools,
		pool("broken", []string{"10.9.0.9-10.9.0.1"}, func(p *heraldv1.IPPool) {
			p.Status.Conditions[0].Status, p.Status.Conditions[0].Reason = metav1.ConditionFalse, "InvalidAddresses"
			p.Status.Conditions[0].Message = "a range must run from the lower address to the higher one"
		}),
		pool("lab", []string{"192.168.10.0/28", "192.168.1.11"}, func(p *heraldv1.IPPool) {
			p.Spec.AutoAssign = ptr.To(false)
			p.Status.IPv4 = &heraldv1.IPPoolFamilyStatus{Capacity: "17", Used: "1", Free: "16"}
			p.Status.Conditions = append(p.Status.Conditions,
				metav1.Condition{Type: heraldv1.IPPoolConditionOverlapping, Status: metav1.ConditionTrue, Reason: "Overlap", Message: "overlaps IPPool production"},
				metav1.Condition{Type: heraldv1.IPPoolConditionNodeAddressOverlap, Status: metav1.ConditionTrue, Reason: "NodeAddress", Message: "192.168.1.11 (node1) is never handed out"})
		}),
	)
	r := inspect.Pools(c)
	var text, js bytes.Buffer
	if err := Pools(&text, r); err != nil {
		t.Fatal(err)
	}
	golden(t, "pools", text.Bytes())
	if err := JSON(&js, r); err != nil {
		t.Fatal(err)
	}
	golden(t, "pools.json", js.Bytes())
}
