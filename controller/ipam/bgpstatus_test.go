package ipam

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

func testPool(name string, labels map[string]string) heraldv1.IPPool {
	return heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func testPeer(name string) heraldv1.BGPPeer {
	return heraldv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// badSelector cannot be parsed: the operator does not exist.
var badSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}}

func badSelectorError(t *testing.T, field string) string {
	t.Helper()
	_, err := metav1.LabelSelectorAsSelector(badSelector)
	if err == nil {
		t.Fatal("badSelector parses")
	}
	return field + ": " + err.Error()
}

func TestBGPReady(t *testing.T) {
	pools := []heraldv1.IPPool{testPool("b", map[string]string{"tier": "web"}), testPool("a", nil)}
	peers := []heraldv1.BGPPeer{testPeer("tor2"), testPeer("tor1")}
	type want struct {
		Status  metav1.ConditionStatus
		Reason  string
		Message string
	}
	tests := []struct {
		name  string
		spec  heraldv1.BGPAnnouncementSpec
		pools []heraldv1.IPPool
		peers []heraldv1.BGPPeer
		want  want
	}{
		{"everything", heraldv1.BGPAnnouncementSpec{}, pools, peers,
			want{metav1.ConditionTrue, "Valid", "covers IPPools a, b and BGPPeers tor1, tor2"}},
		{"named", heraldv1.BGPAnnouncementSpec{IPPools: []string{"b"}, Peers: []string{"tor2"}}, pools, peers,
			want{metav1.ConditionTrue, "Valid", "covers IPPools b and BGPPeers tor2"}},
		{"pool-selector", heraldv1.BGPAnnouncementSpec{IPPoolSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}}}, pools, peers,
			want{metav1.ConditionTrue, "Valid", "covers IPPools b and BGPPeers tor1, tor2"}},
		{"some-peers-missing", heraldv1.BGPAnnouncementSpec{Peers: []string{"tor9", "tor1", "tor8"}}, pools, peers,
			want{metav1.ConditionTrue, "Valid", "covers IPPools a, b and BGPPeers tor1; BGPPeers not found: tor9, tor8"}},
		{"some-pools-missing", heraldv1.BGPAnnouncementSpec{IPPools: []string{"a", "z"}}, pools, peers,
			want{metav1.ConditionTrue, "Valid", "covers IPPools a and BGPPeers tor1, tor2; IPPools not found: z"}},
		{"unknown-peer", heraldv1.BGPAnnouncementSpec{Peers: []string{"tor9", "tor8"}}, pools, peers,
			want{metav1.ConditionFalse, "UnknownPeer", "names no existing BGPPeer; BGPPeers not found: tor9, tor8"}},
		{"unknown-peer-no-peers-at-all", heraldv1.BGPAnnouncementSpec{Peers: []string{"tor1"}}, pools, nil,
			want{metav1.ConditionFalse, "UnknownPeer", "names no existing BGPPeer; BGPPeers not found: tor1"}},
		{"no-peer", heraldv1.BGPAnnouncementSpec{}, pools, nil,
			want{metav1.ConditionFalse, "NoPeer", "no BGPPeer exists to announce to"}},
		{"no-pool-named", heraldv1.BGPAnnouncementSpec{IPPools: []string{"z"}}, pools, peers,
			want{metav1.ConditionFalse, "NoPool", "covers no existing IPPool; IPPools not found: z"}},
		{"no-pool-selected", heraldv1.BGPAnnouncementSpec{IPPoolSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "db"}}}, pools, peers,
			want{metav1.ConditionFalse, "NoPool", "covers no existing IPPool"}},
		{"no-pool-at-all", heraldv1.BGPAnnouncementSpec{}, nil, peers,
			want{metav1.ConditionFalse, "NoPool", "covers no existing IPPool"}},
		// Pools are judged before peers; the message still names every missing one.
		{"no-pool-and-unknown-peer", heraldv1.BGPAnnouncementSpec{IPPools: []string{"z"}, Peers: []string{"tor9"}}, pools, peers,
			want{metav1.ConditionFalse, "NoPool", "covers no existing IPPool; IPPools not found: z; BGPPeers not found: tor9"}},
		{"bad-pool-selector", heraldv1.BGPAnnouncementSpec{IPPoolSelector: badSelector}, pools, peers,
			want{metav1.ConditionFalse, "InvalidSelector", badSelectorError(t, "ipPoolSelector")}},
		{"bad-node-selector", heraldv1.BGPAnnouncementSpec{NodeSelector: badSelector}, pools, peers,
			want{metav1.ConditionFalse, "InvalidSelector", badSelectorError(t, "nodeSelector")}},
		{"bad-service-selector", heraldv1.BGPAnnouncementSpec{ServiceSelector: badSelector, Peers: []string{"tor9"}}, nil, nil,
			want{metav1.ConditionFalse, "InvalidSelector", badSelectorError(t, "serviceSelector")}},
		// With several bad selectors the first in spec order is reported, so the
		// message does not change from one pass to the next.
		{"bad-selectors", heraldv1.BGPAnnouncementSpec{NodeSelector: badSelector, ServiceSelector: badSelector}, pools, peers,
			want{metav1.ConditionFalse, "InvalidSelector", badSelectorError(t, "nodeSelector")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &heraldv1.BGPAnnouncement{ObjectMeta: metav1.ObjectMeta{Name: "a", Generation: 7}, Spec: tt.spec}
			c := bgpReady(a, tt.pools, tt.peers)
			if c.Type != "Ready" || c.ObservedGeneration != 7 {
				t.Errorf("type %q, observedGeneration %d; want Ready, 7", c.Type, c.ObservedGeneration)
			}
			if diff := cmp.Diff(tt.want, want{c.Status, c.Reason, c.Message}); diff != "" {
				t.Errorf("condition (-want +got):\n%s", diff)
			}
		})
	}
}

// TestL2Ready covers the pool and selector logic shared with bgpReady.
func TestL2Ready(t *testing.T) {
	pools := []heraldv1.IPPool{testPool("b", map[string]string{"tier": "web"}), testPool("a", nil)}
	tests := []struct {
		name string
		spec heraldv1.L2AnnouncementSpec
		want metav1.Condition
	}{
		{"everything", heraldv1.L2AnnouncementSpec{},
			metav1.Condition{Status: metav1.ConditionTrue, Reason: "Valid", Message: "covers IPPools a, b"}},
		{"named-missing", heraldv1.L2AnnouncementSpec{IPPools: []string{"b", "z"}},
			metav1.Condition{Status: metav1.ConditionTrue, Reason: "Valid", Message: "covers IPPools b; IPPools not found: z"}},
		{"none", heraldv1.L2AnnouncementSpec{IPPools: []string{"z"}},
			metav1.Condition{Status: metav1.ConditionFalse, Reason: "NoPool", Message: "covers no existing IPPool; IPPools not found: z"}},
		{"selector", heraldv1.L2AnnouncementSpec{IPPoolSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}}},
			metav1.Condition{Status: metav1.ConditionTrue, Reason: "Valid", Message: "covers IPPools b"}},
		{"bad", heraldv1.L2AnnouncementSpec{ServiceSelector: badSelector, IPPoolSelector: badSelector},
			metav1.Condition{Status: metav1.ConditionFalse, Reason: "InvalidSelector", Message: badSelectorError(t, "ipPoolSelector")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &heraldv1.L2Announcement{ObjectMeta: metav1.ObjectMeta{Name: "a", Generation: 3}, Spec: tt.spec}
			tt.want.Type, tt.want.ObservedGeneration = "Ready", 3
			if diff := cmp.Diff(tt.want, l2Ready(a, pools)); diff != "" {
				t.Errorf("condition (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPeerSummary(t *testing.T) {
	node := func(name string, s heraldv1.BGPSessionState) heraldv1.BGPPeerNodeStatus {
		return heraldv1.BGPPeerNodeStatus{Node: name, State: s}
	}
	tests := []struct {
		name  string
		nodes []heraldv1.BGPPeerNodeStatus
		want  string
	}{
		{"none", nil, "0/0"},
		{"all-up", []heraldv1.BGPPeerNodeStatus{node("n1", heraldv1.BGPSessionEstablished), node("n2", heraldv1.BGPSessionEstablished)}, "2/2"},
		{"some-up", []heraldv1.BGPPeerNodeStatus{
			node("n1", heraldv1.BGPSessionEstablished), node("n2", heraldv1.BGPSessionActive),
			node("n3", heraldv1.BGPSessionEstablished), node("n4", heraldv1.BGPSessionOpenConfirm),
		}, "2/4"},
		{"none-up", []heraldv1.BGPPeerNodeStatus{node("n1", heraldv1.BGPSessionIdle)}, "0/1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, peerSummary(&heraldv1.BGPPeerStatus{Nodes: tt.nodes, Summary: "9/9"})); diff != "" {
				t.Errorf("summary (-want +got):\n%s", diff)
			}
		})
	}
}
