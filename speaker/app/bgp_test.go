package app

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/speaker/bgp"
	"github.com/heraldlb/herald/speaker/plan"
)

func TestParseCommunity(t *testing.T) {
	for in, want := range map[string]uint32{"64512:100": 64512<<16 | 100, "0:0": 0, "65535:65535": 0xFFFFFFFF, "no-export": 0xFFFFFF01, "no-peer": 0xFFFFFF04} {
		if got, err := ParseCommunity(in); err != nil || got != want {
			t.Errorf("ParseCommunity(%q) = %#x, %v; want %#x", in, got, err, want)
		}
	}
	for _, in := range []string{"65536:1", "1:65536", "a:b", "1", "1:2:3", "", "-1:2"} {
		if _, err := ParseCommunity(in); err == nil {
			t.Errorf("ParseCommunity(%q) succeeded", in)
		}
	}
	if got, err := ParseLargeCommunity("4294967295:1:2"); err != nil || got != (plan.LargeCommunity{4294967295, 1, 2}) {
		t.Errorf("ParseLargeCommunity = %v, %v", got, err)
	}
	for _, in := range []string{"1:2", "4294967296:1:1", "a:1:1", "1:2:3:4"} {
		if _, err := ParseLargeCommunity(in); err == nil {
			t.Errorf("ParseLargeCommunity(%q) succeeded", in)
		}
	}
}

// The status writer writes the latest entry per peer, and retries a failed write
// unless a newer entry replaced it.
func TestStatusWriter(t *testing.T) {
	var mu sync.Mutex
	written := map[string][]string{}
	fail := true
	w := newStatusWriter(logr.Discard(), func(_ context.Context, peer string, e *heraldv1.BGPPeerNodeStatus) error {
		mu.Lock()
		defer mu.Unlock()
		if peer == "flaky" && fail {
			fail = false
			return errors.New("API server gone")
		}
		state := "removed"
		if e != nil {
			state = string(e.State)
		}
		written[peer] = append(written[peer], state)
		return nil
	})
	w.queue("a", &heraldv1.BGPPeerNodeStatus{State: heraldv1.BGPSessionActive})
	w.queue("a", &heraldv1.BGPPeerNodeStatus{State: heraldv1.BGPSessionEstablished})
	w.queue("flaky", &heraldv1.BGPPeerNodeStatus{State: heraldv1.BGPSessionEstablished})
	w.queue("gone", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.run(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		done := len(written["flaky"]) == 1
		got := map[string][]string{"a": written["a"], "flaky": written["flaky"], "gone": written["gone"]}
		mu.Unlock()
		if done {
			want := map[string][]string{"a": {"Established"}, "flaky": {"Established"}, "gone": {"removed"}}
			for k := range want {
				if len(got[k]) != 1 || got[k][0] != want[k][0] {
					t.Errorf("writes for %s: %v; want %v", k, got[k], want[k])
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the failed write was not retried: %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func bgpObjects() []client.Object {
	lp := int64(200)
	return append(baseObjects(),
		&heraldv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "frr"}, Spec: heraldv1.BGPPeerSpec{
			PeerAddress: "10.0.0.254", PeerASN: 64512, LocalASN: 64513, HoldTimeSeconds: ptr.To[int32](9),
			EBGPMultihop: ptr.To(true), SourceAddress: "192.168.0.1",
			PasswordSecretRef: &heraldv1.SecretKeyRef{Name: "bgp-pw"}}},
		&heraldv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: heraldv1.BGPPeerSpec{PeerAddress: "not-an-ip"}},
		&heraldv1.BGPAnnouncement{ObjectMeta: metav1.ObjectMeta{Name: "all"}, Spec: heraldv1.BGPAnnouncementSpec{
			IPPools: []string{"lan"}, Communities: []string{"no-export"}, LargeCommunities: []string{"1:2:3"}, LocalPreference: &lp}},
		&heraldv1.BGPAnnouncement{ObjectMeta: metav1.ObjectMeta{Name: "broken"}, Spec: heraldv1.BGPAnnouncementSpec{
			IPPools: []string{"lan"}, Communities: []string{"not-a-community"}}},
	)
}

func (f *fixture) syncBGP() *bgpJob {
	f.t.Helper()
	svcs, nodes, pools, _, err := snapshot(f.t.Context(), f.c, true)
	if err != nil {
		f.t.Fatal(err)
	}
	f.s.syncBGP(f.t.Context(), svcs, nodes, pools)
	b := f.s.bgp
	b.jobMu.Lock()
	defer b.jobMu.Unlock()
	j := b.job
	b.job = nil
	return j
}

// syncBGP turns the cluster into sessions and routes for the worker; a password
// that cannot be read keeps the last working session.
func TestSyncBGP(t *testing.T) {
	f := newFixture(t, bgpObjects()...)
	j := f.syncBGP()
	if j == nil || len(j.desired.Peers) != 0 || !strings.Contains(j.peerErrs["frr"], "bgp-pw") {
		t.Fatalf("no Secret: job %+v; want no session and the Secret named", j)
	}
	if j.routerID != netip.MustParseAddr("192.168.0.1") {
		t.Errorf("router ID %v", j.routerID)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "herald-system", Name: "bgp-pw"}, Data: map[string][]byte{"password": []byte("s3cret")}}
	if err := f.c.Create(t.Context(), sec); err != nil {
		t.Fatal(err)
	}
	j = f.syncBGP()
	if len(j.desired.Peers) != 1 {
		t.Fatalf("peers %+v; want frr", j.desired.Peers)
	}
	p := j.desired.Peers[0]
	if p.Name != "frr" || p.Password != "s3cret" || p.ASN != 64512 || p.LocalASN != 64513 || p.HoldTime != 9*time.Second || p.EBGPMultihopTTL != 255 || p.SourceAddress != netip.MustParseAddr("192.168.0.1") {
		t.Errorf("peer %+v", p)
	}
	routes := j.desired.Routes["frr"]
	if len(routes) != 2 || routes[0].NextHop != netip.MustParseAddr("192.168.0.1") || !slices.Equal(routes[0].Communities, []uint32{0xFFFFFF01}) ||
		len(routes[0].LargeCommunities) != 1 || !routes[0].HasLocalPref || routes[0].LocalPref != 200 {
		t.Errorf("routes %+v", routes)
	}
	if err := f.c.Delete(t.Context(), sec); err != nil {
		t.Fatal(err)
	}
	j = f.syncBGP()
	if len(j.desired.Peers) != 1 || j.desired.Peers[0].Password != "s3cret" || j.peerErrs["frr"] == "" {
		t.Errorf("Secret gone: job %+v; want the last good session kept, the error reported", j)
	}
}

func TestBGPPeerErrors(t *testing.T) {
	f := newFixture(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "herald-system", Name: "long"},
		Data: map[string][]byte{"password": []byte(strings.Repeat("x", 81))}})
	for _, spec := range []heraldv1.BGPPeerSpec{
		{PeerAddress: "x"},
		{PeerAddress: "10.0.0.1", SourceAddress: "y"},
		{PeerAddress: "10.0.0.1", PasswordSecretRef: &heraldv1.SecretKeyRef{Name: "long"}},
		{PeerAddress: "10.0.0.1", PasswordSecretRef: &heraldv1.SecretKeyRef{Name: "long", Key: "other"}},
	} {
		if _, err := f.s.bgpPeer(t.Context(), &heraldv1.BGPPeer{Spec: spec}); err == nil {
			t.Errorf("bgpPeer(%+v) succeeded", spec)
		}
	}
}

func TestBGPAnnouncementErrors(t *testing.T) {
	bad := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Bad"}}}
	for _, spec := range []heraldv1.BGPAnnouncementSpec{
		{IPPoolSelector: bad}, {NodeSelector: bad}, {ServiceSelector: bad},
		{Communities: []string{"x"}}, {LargeCommunities: []string{"x"}},
	} {
		if _, err := bgpAnnouncement(&heraldv1.BGPAnnouncement{Spec: spec}); err == nil {
			t.Errorf("bgpAnnouncement(%+v) succeeded", spec)
		}
	}
	a, err := bgpAnnouncement(&heraldv1.BGPAnnouncement{Spec: heraldv1.BGPAnnouncementSpec{AggregationLength: ptr.To[int32](24), AggregationLengthV6: ptr.To[int32](64)}})
	if err != nil || a.AggregationV4 != 24 || a.AggregationV6 != 64 {
		t.Errorf("aggregation: %+v, %v", a, err)
	}
}

func pending(s *speaker) map[string]*heraldv1.BGPPeerNodeStatus {
	w := s.bgp.status
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.pending
	w.pending = map[string]*heraldv1.BGPPeerNodeStatus{}
	return p
}

// reportBGP queues this node's status entry when it changes, sends session
// Events once per change, and Service Events once primed.
func TestReportBGP(t *testing.T) {
	f := newFixture(t, bgpObjects()...)
	ctx := t.Context()
	var peers heraldv1.BGPPeerList
	if err := f.c.List(ctx, &peers); err != nil {
		t.Fatal(err)
	}
	since := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	up := []bgp.PeerStatus{{Name: "frr", State: bgp.StateEstablished, Since: since, PrefixesSent: 2, UpdatesSent: 5}}
	bp := plan.BGPPlan{Peers: []string{"frr"}, Announced: map[string][]string{"ns/web": {"frr"}}}
	f.s.reportBGP(ctx, peers.Items, bp, up, nil, nil)
	f.s.reportBGP(ctx, peers.Items, bp, up, nil, nil)
	evs := f.events()
	if count(evs, "SessionEstablished") != 1 || count(evs, "AnnouncingBGP") != 0 {
		t.Errorf("Events %q; want one SessionEstablished and no AnnouncingBGP (primed)", evs)
	}
	p := pending(f.s)
	if e := p["frr"]; e == nil || e.State != heraldv1.BGPSessionEstablished || e.PrefixesSent != 2 || e.Node != "n1" || len(p) != 1 {
		t.Errorf("queued %v; want frr Established", p)
	}
	// Services announced to other peers, and withdrawn.
	bp2 := plan.BGPPlan{Peers: []string{"frr"}, Announced: map[string][]string{"ns/db": {"frr"}}}
	f.s.reportBGP(ctx, peers.Items, bp2, up, nil, nil)
	evs = f.events()
	if a := withEvent(evs, "AnnouncingBGP"); len(a) != 1 || !strings.Contains(a[0], "10.0.0.2 over BGP to frr (10.0.0.254)") || count(evs, "WithdrawnBGP") != 1 {
		t.Errorf("Events %q; want AnnouncingBGP for db and WithdrawnBGP for web", evs)
	}
	// The session goes down with an error: one SessionDown.
	down := []bgp.PeerStatus{{Name: "frr", State: bgp.StateActive, LastError: "connection refused"}}
	f.s.reportBGP(ctx, peers.Items, bp2, down, nil, nil)
	f.s.reportBGP(ctx, peers.Items, bp2, down, nil, nil)
	if d := withEvent(f.events(), "SessionDown"); len(d) != 1 || !strings.Contains(d[0], "connection refused") {
		t.Errorf("SessionDown Events %q; want one", d)
	}
	if e := pending(f.s)["frr"]; e == nil || e.LastError != "connection refused" {
		t.Errorf("queued %+v; want the error", e)
	}
	// A configuration error overrides the session's.
	f.s.reportBGP(ctx, peers.Items, bp2, down, map[string]string{"frr": "no password"}, nil)
	if e := pending(f.s)["frr"]; e == nil || e.LastError != "no password" {
		t.Errorf("queued %+v; want the configuration error", e)
	}
	// No longer selected: the entry is removed and the peer forgotten.
	f.s.reportBGP(ctx, peers.Items, plan.BGPPlan{}, nil, nil, nil)
	if e, ok := pending(f.s)["frr"]; !ok || e != nil {
		t.Errorf("unselected: queued %v, %v; want a removal", e, ok)
	}
	if _, ok := f.s.bgp.reported["frr"]; ok {
		t.Error("an unselected peer is still remembered")
	}
}

func TestCloseBGPWithoutSpeaker(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	f.s.closeBGP(ctx) // the worker never stopped: gives up at once
	close(f.s.bgp.workerDone)
	f.s.closeBGP(t.Context())
}

// applyPeerStatus writes this node's entry by server-side apply.
func TestApplyPeerStatus(t *testing.T) {
	f := newFixture(t, bgpObjects()...)
	err := f.s.applyPeerStatus(t.Context(), "frr", &heraldv1.BGPPeerNodeStatus{Node: "n1", State: heraldv1.BGPSessionEstablished})
	if err != nil {
		t.Skipf("the fake client does not apply status: %v", err)
	}
	var p heraldv1.BGPPeer
	if err := f.c.Get(t.Context(), client.ObjectKey{Name: "frr"}, &p); err != nil {
		t.Fatal(err)
	}
	if e, ok := ownEntry(&p, "n1"); !ok || e.State != heraldv1.BGPSessionEstablished {
		t.Errorf("status %+v", p.Status)
	}
}
