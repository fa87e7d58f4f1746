package inspect

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

func lb(ns, name string) corev1.Service {
	return corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
}

func TestStatusKeepsTheLatestEvents(t *testing.T) {
	svc := lb("shop", "web")
	c := Cluster{Services: []corev1.Service{svc}}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 15 {
		c.Events = append(c.Events, corev1.Event{
			InvolvedObject: corev1.ObjectReference{Kind: "Service", Namespace: "shop", Name: "web"},
			Reason:         fmt.Sprint(14 - i), // newest first, as a list may come
			LastTimestamp:  metav1.NewTime(t0.Add(time.Duration(14-i) * time.Minute)),
		})
	}
	c.Events = append(c.Events, corev1.Event{InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "web"}, Reason: "pod"})
	r, err := Status(c, "shop", "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Events) != maxEvents || r.Events[0].Reason != "5" || r.Events[maxEvents-1].Reason != "14" {
		t.Errorf("events %+v; want reasons 5..14, oldest first", r.Events)
	}
}

func TestStatusNotHandled(t *testing.T) {
	other := "example.com/lb"
	cluster := lb("shop", "web")
	cluster.Spec.Type = corev1.ServiceTypeClusterIP
	classed := lb("shop", "other")
	classed.Spec.LoadBalancerClass = &other
	c := Cluster{Services: []corev1.Service{cluster, classed}}
	for _, name := range []string{"web", "other"} {
		r, err := Status(c, "shop", name)
		if err != nil || r.State != StateNotHandled || r.Why == "" {
			t.Errorf("%s: state %q, why %q, err %v; want NotHandled with a reason", name, r.State, r.Why, err)
		}
	}
	if _, err := Status(c, "shop", "missing"); err == nil {
		t.Error("missing Service: no error")
	}
}

func TestStatusInvalidRequestAndUnreadablePool(t *testing.T) {
	svc := lb("shop", "web")
	svc.Annotations = map[string]string{heraldv1.AnnotationIPs: "not-an-ip"}
	c := Cluster{
		Services: []corev1.Service{svc},
		Pools: []heraldv1.IPPool{
			{ObjectMeta: metav1.ObjectMeta{Name: "good"}, Spec: heraldv1.IPPoolSpec{Addresses: []string{"10.0.0.0/30"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: heraldv1.IPPoolSpec{Addresses: []string{"10.0.0.9-10.0.0.1"}}},
		},
	}
	r, err := Status(c, "shop", "web")
	if err != nil {
		t.Fatal(err)
	}
	if r.Refusal == "" {
		t.Error("no refusal for an unparsable herald.io/ips")
	}
	want := map[string]string{"good": "RequestRefused", "bad": "Unreadable"}
	if len(r.Pools) != 2 {
		t.Fatalf("pools %+v; want good and bad", r.Pools)
	}
	for _, p := range r.Pools {
		if p.Verdict != "rejected" || p.Why != want[p.Pool] {
			t.Errorf("pool %s: %s/%s; want rejected/%s", p.Pool, p.Verdict, p.Why, want[p.Pool])
		}
	}
}

func TestSessionsFollowTheAnnouncedNodes(t *testing.T) {
	peers := []heraldv1.BGPPeer{
		{ObjectMeta: metav1.ObjectMeta{Name: "tor1"}, Status: heraldv1.BGPPeerStatus{Nodes: []heraldv1.BGPPeerNodeStatus{{Node: "node1"}, {Node: "node10"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "tor2"}, Status: heraldv1.BGPPeerStatus{Nodes: []heraldv1.BGPPeerNodeStatus{{Node: "node1"}}}},
	}
	c := Cluster{Peers: peers}
	anns := []Announcement{{Kind: "BGPAnnouncement", Name: "a", Selects: true, Peers: []string{"tor1"}}}
	tests := []struct {
		name      string
		anns      []Announcement
		announced *Condition
		want      []string
	}{
		{"named node only, not its prefix twin", anns, &Condition{Message: "BGP from node1."}, []string{"tor1/node1"}},
		{"no node named: every node", anns, &Condition{Message: "announced"}, []string{"tor1/node1", "tor1/node10"}},
		{"no peers named: every peer", []Announcement{{Kind: "BGPAnnouncement", Selects: true}}, nil, []string{"tor1/node1", "tor1/node10", "tor2/node1"}},
		{"announcement leaving the Service out", []Announcement{{Kind: "BGPAnnouncement", Selects: false}}, nil, nil},
	}
	for _, tt := range tests {
		var got []string
		for _, s := range sessions(c, tt.anns, tt.announced) {
			got = append(got, s.Peer+"/"+s.Node)
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: %v; want %v", tt.name, got, tt.want)
		}
	}
}

// Within one second the list's order is the order in which the components
// called their recorders, which races; the report shows cause before effect.
func TestStatusOrdersOneSecondsEventsByCause(t *testing.T) {
	svc := lb("shop", "web")
	t0 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Second))
	ev := func(source, reason string, at metav1.Time) corev1.Event {
		return corev1.Event{
			InvolvedObject: corev1.ObjectReference{Kind: "Service", Namespace: "shop", Name: "web"},
			Source:         corev1.EventSource{Component: source}, Reason: reason, LastTimestamp: at,
		}
	}
	c := Cluster{Services: []corev1.Service{svc}, Events: []corev1.Event{
		// As the API listed them in CI: by the time each was recorded.
		ev("herald-speaker", "Announced", t0),
		ev("herald-speaker", "Announcing", t0),
		ev("herald-controller", "IPAllocated", t0),
		ev("herald-speaker", "NotAnnounced", t1),
		ev("herald-speaker", "NotAnnouncing", t1),
	}}
	r, err := Status(c, "shop", "web")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range r.Events {
		got = append(got, e.Reason)
	}
	want := []string{"IPAllocated", "Announcing", "Announced", "NotAnnouncing", "NotAnnounced"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events %v; want %v", got, want)
	}
}
