//go:build integration

package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/testpoll"
)

func TestInvalidBGPPeersRefusedByCEL(t *testing.T) {
	base := func(change func(*heraldv1.BGPPeerSpec)) heraldv1.BGPPeerSpec {
		s := heraldv1.BGPPeerSpec{PeerAddress: "10.0.0.1", PeerASN: 64512, LocalASN: 64513}
		change(&s)
		return s
	}
	tests := []struct {
		name string
		spec heraldv1.BGPPeerSpec
		want string
	}{
		{"peer-not-ip", base(func(s *heraldv1.BGPPeerSpec) { s.PeerAddress = "10.0.0" }), "must be an IP address, e.g. 10.0.0.1 or fd00::1"},
		{"peer-hostname", base(func(s *heraldv1.BGPPeerSpec) { s.PeerAddress = "router.example" }), "must be an IP address, e.g. 10.0.0.1 or fd00::1"},
		{"source-not-ip", base(func(s *heraldv1.BGPPeerSpec) { s.SourceAddress = "eth0" }), "must be an IP address, e.g. 10.0.0.11 or fd00::11"},
		{"source-v6-peer-v4", base(func(s *heraldv1.BGPPeerSpec) { s.SourceAddress = "fd00::11" }), "sourceAddress must be of the same family as peerAddress"},
		{"source-v4-peer-v6", base(func(s *heraldv1.BGPPeerSpec) { s.PeerAddress, s.SourceAddress = "fd00::1", "10.0.0.11" }), "sourceAddress must be of the same family as peerAddress"},
		{"multihop-ibgp", base(func(s *heraldv1.BGPPeerSpec) { s.LocalASN, s.EBGPMultihop = s.PeerASN, ptr.To(true) }), "ebgpMultihop applies only to eBGP sessions"},
		{"keepalive-eq-hold", base(func(s *heraldv1.BGPPeerSpec) {
			s.HoldTimeSeconds, s.KeepaliveTimeSeconds = ptr.To[int32](30), ptr.To[int32](30)
		}), "keepaliveTimeSeconds must be less than holdTimeSeconds"},
		{"keepalive-gt-hold", base(func(s *heraldv1.BGPPeerSpec) {
			s.HoldTimeSeconds, s.KeepaliveTimeSeconds = ptr.To[int32](9), ptr.To[int32](10)
		}), "keepaliveTimeSeconds must be less than holdTimeSeconds"},
		{"keepalive-90-default-hold", base(func(s *heraldv1.BGPPeerSpec) { s.KeepaliveTimeSeconds = ptr.To[int32](90) }), "keepaliveTimeSeconds must be less than holdTimeSeconds (90 when not set)"},
		{"peer-asn-0", base(func(s *heraldv1.BGPPeerSpec) { s.PeerASN = 0 }), "spec.peerASN"},
		{"peer-asn-too-big", base(func(s *heraldv1.BGPPeerSpec) { s.PeerASN = 4294967296 }), "spec.peerASN"},
		{"local-asn-0", base(func(s *heraldv1.BGPPeerSpec) { s.LocalASN = 0 }), "spec.localASN"},
		{"local-asn-too-big", base(func(s *heraldv1.BGPPeerSpec) { s.LocalASN = 4294967296 }), "spec.localASN"},
		{"hold-2", base(func(s *heraldv1.BGPPeerSpec) { s.HoldTimeSeconds = ptr.To[int32](2) }), "spec.holdTimeSeconds"},
		{"port-too-big", base(func(s *heraldv1.BGPPeerSpec) { s.Port = 70000 }), "spec.port"},
		{"empty-secret-name", base(func(s *heraldv1.BGPPeerSpec) { s.PasswordSecretRef = &heraldv1.SecretKeyRef{Name: ""} }), "spec.passwordSecretRef.name"},
		{"bfd-multihop", base(func(s *heraldv1.BGPPeerSpec) { s.BFD, s.EBGPMultihop = &heraldv1.BFD{}, ptr.To(true) }), "bfd is single-hop BFD (RFC 5881)"},
		{"bfd-interval-too-short", base(func(s *heraldv1.BGPPeerSpec) { s.BFD = &heraldv1.BFD{ReceiveIntervalMilliseconds: 5} }), "spec.bfd.receiveIntervalMilliseconds"},
		{"bfd-multiplier-1", base(func(s *heraldv1.BGPPeerSpec) { s.BFD = &heraldv1.BFD{DetectMultiplier: 1} }), "spec.bfd.detectMultiplier"},
		{"gr-restart-time-too-long", base(func(s *heraldv1.BGPPeerSpec) { s.GracefulRestart = &heraldv1.GracefulRestart{RestartTimeSeconds: 5000} }), "spec.gracefulRestart.restartTimeSeconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &heraldv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "cel-" + tt.name}, Spec: tt.spec}
			err := k8s.Create(context.Background(), p)
			if err == nil {
				_ = k8s.Delete(context.Background(), p)
				t.Fatalf("API server accepted %+v", tt.spec)
			}
			t.Logf("refused: %v", err)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v; want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidBGPPeersAccepted(t *testing.T) {
	tests := []struct {
		name string
		spec heraldv1.BGPPeerSpec
		// check looks at the object the API server stored, defaults filled in.
		check func(t *testing.T, p *heraldv1.BGPPeer)
	}{
		{"ipv4", heraldv1.BGPPeerSpec{PeerAddress: "10.0.0.1", PeerASN: 64512, LocalASN: 64513}, func(t *testing.T, p *heraldv1.BGPPeer) {
			if p.Spec.Port != 179 {
				t.Errorf("port = %d; want the default 179", p.Spec.Port)
			}
		}},
		{"ipv6", heraldv1.BGPPeerSpec{PeerAddress: "fd00::1", SourceAddress: "fd00::11", PeerASN: 64512, LocalASN: 64512, Port: 1179}, func(t *testing.T, p *heraldv1.BGPPeer) {
			if p.Spec.Port != 1179 {
				t.Errorf("port = %d; want 1179", p.Spec.Port)
			}
		}},
		{"bfd-and-graceful-restart-defaults", heraldv1.BGPPeerSpec{PeerAddress: "10.0.0.1", PeerASN: 64512, LocalASN: 64513, BFD: &heraldv1.BFD{}, GracefulRestart: &heraldv1.GracefulRestart{}}, func(t *testing.T, p *heraldv1.BGPPeer) {
			if b := p.Spec.BFD; b == nil || b.ReceiveIntervalMilliseconds != 300 || b.TransmitIntervalMilliseconds != 300 || b.DetectMultiplier != 3 {
				t.Errorf("bfd = %+v; want 300 ms × 3", p.Spec.BFD)
			}
			if g := p.Spec.GracefulRestart; g == nil || g.RestartTimeSeconds != 120 {
				t.Errorf("gracefulRestart = %+v; want 120 s", p.Spec.GracefulRestart)
			}
		}},
		{"password", heraldv1.BGPPeerSpec{PeerAddress: "10.0.0.1", PeerASN: 64512, LocalASN: 64513, PasswordSecretRef: &heraldv1.SecretKeyRef{Name: "bgp-auth"}}, func(t *testing.T, p *heraldv1.BGPPeer) {
			if p.Spec.PasswordSecretRef == nil || p.Spec.PasswordSecretRef.Key != "password" {
				t.Errorf("passwordSecretRef = %+v; want the key defaulted to password", p.Spec.PasswordSecretRef)
			}
		}},
		{"password-key", heraldv1.BGPPeerSpec{PeerAddress: "10.0.0.1", PeerASN: 64512, LocalASN: 64513, PasswordSecretRef: &heraldv1.SecretKeyRef{Name: "bgp-auth", Key: "md5"}}, func(t *testing.T, p *heraldv1.BGPPeer) {
			if p.Spec.PasswordSecretRef.Key != "md5" {
				t.Errorf("passwordSecretRef.key = %q; want md5", p.Spec.PasswordSecretRef.Key)
			}
		}},
		{"multihop-ebgp-timers", heraldv1.BGPPeerSpec{
			PeerAddress: "192.0.2.1", SourceAddress: "10.0.0.11", PeerASN: 4294967295, LocalASN: 1, EBGPMultihop: ptr.To(true),
			HoldTimeSeconds: ptr.To[int32](3), KeepaliveTimeSeconds: ptr.To[int32](1), ConnectRetrySeconds: ptr.To[int32](5), Passive: true,
		}, nil},
		{"keepalive-89-default-hold", heraldv1.BGPPeerSpec{PeerAddress: "10.0.0.1", PeerASN: 64512, LocalASN: 64512, KeepaliveTimeSeconds: ptr.To[int32](89)}, nil},
		{"multihop-false-ibgp", heraldv1.BGPPeerSpec{PeerAddress: "10.0.0.1", PeerASN: 64512, LocalASN: 64512, EBGPMultihop: ptr.To(false)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &heraldv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "cel-good-" + tt.name}, Spec: tt.spec}
			if err := k8s.Create(context.Background(), p); err != nil {
				t.Fatalf("valid BGPPeer refused: %v", err)
			}
			defer func() { _ = k8s.Delete(context.Background(), p) }()
			var got heraldv1.BGPPeer
			if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(p), &got); err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, &got)
			}
		})
	}
}

func TestInvalidBGPAnnouncementsRefusedByCEL(t *testing.T) {
	const community = "a community is ASN:value with both parts 0-65535"
	const large = "a large community is global:local1:local2 with each part 0-4294967295"
	tests := []struct {
		name string
		spec heraldv1.BGPAnnouncementSpec
		want string
	}{
		{"both", heraldv1.BGPAnnouncementSpec{IPPools: []string{"a"}, IPPoolSelector: &metav1.LabelSelector{}}, "set ipPools or ipPoolSelector, not both"},
		{"community-asn-too-big", heraldv1.BGPAnnouncementSpec{Communities: []string{"65536:1"}}, community},
		{"community-value-too-big", heraldv1.BGPAnnouncementSpec{Communities: []string{"1:65536"}}, community},
		{"community-letters", heraldv1.BGPAnnouncementSpec{Communities: []string{"a:b"}}, community},
		{"community-three-parts", heraldv1.BGPAnnouncementSpec{Communities: []string{"1:2:3"}}, community},
		{"community-unknown-name", heraldv1.BGPAnnouncementSpec{Communities: []string{"no-such"}}, community},
		{"community-second", heraldv1.BGPAnnouncementSpec{Communities: []string{"64512:100", "x"}}, "spec.communities[1]"},
		{"large-two-parts", heraldv1.BGPAnnouncementSpec{LargeCommunities: []string{"1:2"}}, large},
		{"large-too-big", heraldv1.BGPAnnouncementSpec{LargeCommunities: []string{"4294967296:1:1"}}, large},
		{"large-last-too-big", heraldv1.BGPAnnouncementSpec{LargeCommunities: []string{"1:1:9999999999"}}, large},
		{"aggregation-0", heraldv1.BGPAnnouncementSpec{AggregationLength: ptr.To[int32](0)}, "spec.aggregationLength"},
		{"aggregation-33", heraldv1.BGPAnnouncementSpec{AggregationLength: ptr.To[int32](33)}, "spec.aggregationLength"},
		{"aggregation-v6-129", heraldv1.BGPAnnouncementSpec{AggregationLengthV6: ptr.To[int32](129)}, "spec.aggregationLengthV6"},
		{"local-preference-negative", heraldv1.BGPAnnouncementSpec{LocalPreference: ptr.To[int64](-1)}, "spec.localPreference"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &heraldv1.BGPAnnouncement{ObjectMeta: metav1.ObjectMeta{Name: "cel-" + tt.name}, Spec: tt.spec}
			err := k8s.Create(context.Background(), a)
			if err == nil {
				_ = k8s.Delete(context.Background(), a)
				t.Fatalf("API server accepted %+v", tt.spec)
			}
			t.Logf("refused: %v", err)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v; want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidBGPAnnouncementsAccepted(t *testing.T) {
	tests := []struct {
		name string
		spec heraldv1.BGPAnnouncementSpec
	}{
		{"empty", heraldv1.BGPAnnouncementSpec{}},
		{"attributes", heraldv1.BGPAnnouncementSpec{
			IPPools:           []string{"default"},
			Peers:             []string{"tor1", "tor2"},
			Communities:       []string{"64512:100", "no-export", "0:0", "65535:65535"},
			LargeCommunities:  []string{"64512:1:2", "4294967295:4294967295:4294967295"},
			LocalPreference:   ptr.To[int64](200),
			AggregationLength: ptr.To[int32](24), AggregationLengthV6: ptr.To[int32](64),
		}},
		{"selectors", heraldv1.BGPAnnouncementSpec{
			IPPoolSelector:    &metav1.LabelSelector{MatchLabels: map[string]string{"bgp": "yes"}},
			NodeSelector:      &metav1.LabelSelector{MatchLabels: map[string]string{"edge": "true"}},
			ServiceSelector:   &metav1.LabelSelector{MatchLabels: map[string]string{"public": "true"}},
			Communities:       []string{"no-advertise", "no-export-subconfed", "no-peer"},
			AggregationLength: ptr.To[int32](32), AggregationLengthV6: ptr.To[int32](128),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &heraldv1.BGPAnnouncement{ObjectMeta: metav1.ObjectMeta{Name: "cel-good-" + tt.name}, Spec: tt.spec}
			if err := k8s.Create(context.Background(), a); err != nil {
				t.Fatalf("valid BGPAnnouncement refused: %v", err)
			}
			_ = k8s.Delete(context.Background(), a)
		})
	}
}

// createBGPPeer creates a BGPPeer and deletes it when the test ends.
func createBGPPeer(t testing.TB, name string, spec heraldv1.BGPPeerSpec) *heraldv1.BGPPeer {
	t.Helper()
	p := &heraldv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
	if err := k8s.Create(context.Background(), p); err != nil {
		t.Fatalf("creating BGPPeer %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = k8s.Delete(context.Background(), &heraldv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}})
	})
	return p
}

func createBGPAnnouncement(t testing.TB, name string, spec heraldv1.BGPAnnouncementSpec) {
	t.Helper()
	a := &heraldv1.BGPAnnouncement{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
	if err := k8s.Create(context.Background(), a); err != nil {
		t.Fatalf("creating BGPAnnouncement %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = k8s.Delete(context.Background(), &heraldv1.BGPAnnouncement{ObjectMeta: metav1.ObjectMeta{Name: name}})
	})
}

// waitBGPReady waits until the BGPAnnouncement's Ready condition has the status and
// reason given and a message containing msg.
func waitBGPReady(t testing.TB, name string, status metav1.ConditionStatus, reason, msg string) {
	t.Helper()
	testpoll.Until(t, 10*time.Second, fmt.Sprintf("BGPAnnouncement %s Ready=%s/%s %q", name, status, reason, msg), func() (bool, string) {
		var got heraldv1.BGPAnnouncement
		if err := k8s.Get(context.Background(), client.ObjectKey{Name: name}, &got); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(got.Status.Conditions, "Ready")
		return c != nil && c.Status == status && c.Reason == reason && strings.Contains(c.Message, msg) && c.ObservedGeneration == got.Generation, fmt.Sprintf("%+v", c)
	})
}

func TestBGPAnnouncementStatus(t *testing.T) {
	var peers heraldv1.BGPPeerList
	if err := k8s.List(context.Background(), &peers); err != nil {
		t.Fatal(err)
	}
	if len(peers.Items) > 0 {
		t.Fatalf("BGPPeers left over by another test: %d", len(peers.Items))
	}
	startController(t, controllerOpts{})
	createPool(t, "bgp-status-pool", pools("10.216.0.0/30"))
	createBGPAnnouncement(t, "bgp-status-named", heraldv1.BGPAnnouncementSpec{IPPools: []string{"bgp-status-pool"}, Peers: []string{"bgp-status-peer"}})
	createBGPAnnouncement(t, "bgp-status-some", heraldv1.BGPAnnouncementSpec{IPPools: []string{"bgp-status-pool"}, Peers: []string{"bgp-status-peer", "bgp-status-typo"}})
	createBGPAnnouncement(t, "bgp-status-all", heraldv1.BGPAnnouncementSpec{IPPools: []string{"bgp-status-pool"}})
	createBGPAnnouncement(t, "bgp-status-nopool", heraldv1.BGPAnnouncementSpec{IPPools: []string{"bgp-status-nopool"}})
	createBGPAnnouncement(t, "bgp-status-badsel", heraldv1.BGPAnnouncementSpec{
		NodeSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}},
	})

	waitBGPReady(t, "bgp-status-named", metav1.ConditionFalse, "UnknownPeer", "BGPPeers not found: bgp-status-peer")
	waitBGPReady(t, "bgp-status-some", metav1.ConditionFalse, "UnknownPeer", "BGPPeers not found: bgp-status-peer, bgp-status-typo")
	waitBGPReady(t, "bgp-status-all", metav1.ConditionFalse, "NoPeer", "no BGPPeer exists")
	waitBGPReady(t, "bgp-status-nopool", metav1.ConditionFalse, "NoPool", "IPPools not found: bgp-status-nopool")
	waitBGPReady(t, "bgp-status-badsel", metav1.ConditionFalse, "InvalidSelector", "nodeSelector: ")

	createBGPPeer(t, "bgp-status-peer", heraldv1.BGPPeerSpec{PeerAddress: "10.0.0.1", PeerASN: 64512, LocalASN: 64513})
	waitBGPReady(t, "bgp-status-named", metav1.ConditionTrue, "Valid", "covers IPPools bgp-status-pool and BGPPeers bgp-status-peer")
	waitBGPReady(t, "bgp-status-some", metav1.ConditionTrue, "Valid", "covers IPPools bgp-status-pool and BGPPeers bgp-status-peer; BGPPeers not found: bgp-status-typo")
	waitBGPReady(t, "bgp-status-all", metav1.ConditionTrue, "Valid", "covers IPPools bgp-status-pool and BGPPeers bgp-status-peer")
	waitBGPReady(t, "bgp-status-nopool", metav1.ConditionFalse, "NoPool", "IPPools not found: bgp-status-nopool")
}

// applyNodeStatus writes status.nodes exactly as a node's speaker does: server-side
// apply on the status subresource under the field manager herald-speaker/<node>,
// holding the node's entry alone, or no entry to remove it.
func applyNodeStatus(t testing.TB, peer, node string, state heraldv1.BGPSessionState) {
	t.Helper()
	var entry *heraldv1.BGPPeerNodeStatus
	if state != "" {
		entry = &heraldv1.BGPPeerNodeStatus{Node: node, State: state, PrefixesSent: 1, Since: metav1.NewTime(time.Now())}
	}
	u := heraldv1.BGPPeerNodeStatusApply(peer, entry)
	if err := k8s.Status().Patch(context.Background(), u, client.Apply, client.FieldOwner(heraldv1.SpeakerFieldManagerPrefix+node), client.ForceOwnership); err != nil {
		t.Fatalf("applying %s's status of BGPPeer %s: %v", node, peer, err)
	}
}

func peerNodes(p *heraldv1.BGPPeer) []string {
	var out []string
	for _, n := range p.Status.Nodes {
		out = append(out, n.Node+"="+string(n.State))
	}
	slices.Sort(out)
	return out
}

// waitSummary waits until the BGPPeer's summary and nodes are those given.
func waitSummary(t testing.TB, name, summary string, nodes ...string) *heraldv1.BGPPeer {
	t.Helper()
	var got heraldv1.BGPPeer
	testpoll.Until(t, 10*time.Second, fmt.Sprintf("BGPPeer %s summary %s nodes %v", name, summary, nodes), func() (bool, string) {
		if err := k8s.Get(context.Background(), client.ObjectKey{Name: name}, &got); err != nil {
			return false, err.Error()
		}
		return got.Status.Summary == summary && slices.Equal(peerNodes(&got), nodes), fmt.Sprintf("summary %q nodes %v", got.Status.Summary, peerNodes(&got))
	})
	return &got
}

// statusManagers lists the field managers of the status subresource.
func statusManagers(p *heraldv1.BGPPeer) []string {
	var out []string
	for _, m := range p.ManagedFields {
		if m.Subresource == "status" {
			out = append(out, fmt.Sprintf("%s(%s)", m.Manager, m.Operation))
		}
	}
	slices.Sort(out)
	return out
}

// createNode creates a Node (no kubelet: just the object) and deletes it at the end.
func createNode(t *testing.T, name string) *corev1.Node {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8s.Create(context.Background(), n); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), n) })
	return n
}

func TestBGPPeerSummary(t *testing.T) {
	startController(t, controllerOpts{})
	const name = "bgp-summary"
	createNode(t, "n1")
	createNode(t, "n2")
	gone := createNode(t, "n3")
	createBGPPeer(t, name, heraldv1.BGPPeerSpec{PeerAddress: "10.0.0.1", PeerASN: 64512, LocalASN: 64513})
	waitSummary(t, name, "0/0")

	applyNodeStatus(t, name, "n1", heraldv1.BGPSessionEstablished)
	applyNodeStatus(t, name, "n2", heraldv1.BGPSessionActive)
	got := waitSummary(t, name, "1/2", "n1=Established", "n2=Active")
	want := []string{"herald-controller(Apply)", "herald-speaker/n1(Apply)", "herald-speaker/n2(Apply)"}
	if m := statusManagers(got); !slices.Equal(m, want) {
		t.Errorf("status managers = %v; want %v", m, want)
	}
	// The controller's write must leave the speakers' entries alone, now and later.
	time.Sleep(300 * time.Millisecond)
	waitSummary(t, name, "1/2", "n1=Established", "n2=Active")

	// n2's speaker stops keeping the session: its empty list drops its entry only.
	applyNodeStatus(t, name, "n2", "")
	waitSummary(t, name, "1/1", "n1=Established")
	applyNodeStatus(t, name, "n1", heraldv1.BGPSessionIdle)
	waitSummary(t, name, "0/1", "n1=Idle")
	applyNodeStatus(t, name, "n2", heraldv1.BGPSessionEstablished)
	got = waitSummary(t, name, "1/2", "n1=Idle", "n2=Established")
	t.Logf("status managers: %v", statusManagers(got))

	// A Node deleted for good: its speaker cannot remove its entry; the
	// controller does. An entry of a Node that never existed goes too.
	applyNodeStatus(t, name, "n3", heraldv1.BGPSessionEstablished)
	waitSummary(t, name, "2/3", "n1=Idle", "n2=Established", "n3=Established")
	if err := k8s.Delete(context.Background(), gone); err != nil {
		t.Fatal(err)
	}
	waitSummary(t, name, "1/2", "n1=Idle", "n2=Established")
	applyNodeStatus(t, name, "ghost", heraldv1.BGPSessionEstablished)
	waitSummary(t, name, "1/2", "n1=Idle", "n2=Established")
}

func TestBGPPeerPasswordSecretEvent(t *testing.T) {
	startController(t, controllerOpts{}) // herald's namespace is "default" in the tests
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "bgp-auth-present"}, Data: map[string][]byte{"password": []byte("s3cret")}}
	if err := k8s.Create(context.Background(), sec); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), sec) })
	createBGPPeer(t, "bgp-secret-ok", heraldv1.BGPPeerSpec{PeerAddress: "10.0.0.1", PeerASN: 64512, LocalASN: 64513,
		PasswordSecretRef: &heraldv1.SecretKeyRef{Name: "bgp-auth-present"}})
	createBGPPeer(t, "bgp-secret-missing", heraldv1.BGPPeerSpec{PeerAddress: "10.0.0.2", PeerASN: 64512, LocalASN: 64513,
		PasswordSecretRef: &heraldv1.SecretKeyRef{Name: "bgp-auth-absent"}})
	createBGPPeer(t, "bgp-secret-nokey", heraldv1.BGPPeerSpec{PeerAddress: "10.0.0.3", PeerASN: 64512, LocalASN: 64513,
		PasswordSecretRef: &heraldv1.SecretKeyRef{Name: "bgp-auth-present", Key: "md5"}})
	// Events about cluster-scoped objects land in the default namespace.
	waitEvent(t, "default", "bgp-secret-missing", "PasswordSecretNotFound", "Secret default/bgp-auth-absent, which does not exist")
	waitEvent(t, "default", "bgp-secret-nokey", "PasswordSecretNotFound", `has no key "md5"`)
	time.Sleep(300 * time.Millisecond)
	var evs corev1.EventList
	if err := k8s.List(context.Background(), &evs, client.InNamespace("default")); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		if e.InvolvedObject.Name == "bgp-secret-ok" {
			t.Errorf("Event on a BGPPeer whose Secret exists: %s: %s", e.Reason, e.Message)
		}
	}
}
