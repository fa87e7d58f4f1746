package app

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/speaker/announced"
)

// writerFixture is an announcedWriter over a fake cluster whose applies land in
// it (landing can be held back, as an informer cache lags).
type writerFixture struct {
	w       *announcedWriter
	c       client.Client
	rec     *record.FakeRecorder
	applied []string
	hold    bool
}

func newWriterFixture(t *testing.T, names ...string) *writerFixture {
	t.Helper()
	var objs []client.Object
	for _, n := range names {
		objs = append(objs, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: n, UID: types.UID("u-" + n)}})
	}
	f := &writerFixture{rec: record.NewFakeRecorder(100)}
	f.c = fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(objs...).WithStatusSubresource(&corev1.Service{}).Build()
	f.w = newAnnouncedWriter(logr.Discard(), f.c, f.rec, 1000, 1000, func(ctx context.Context, svc *corev1.Service, cond *metav1.Condition) error {
		key := svc.Namespace + "/" + svc.Name
		f.applied = append(f.applied, key)
		if f.hold {
			return nil
		}
		cur := svc.DeepCopy()
		meta.RemoveStatusCondition(&cur.Status.Conditions, heraldv1.ConditionAnnounced)
		if cond != nil {
			cur.Status.Conditions = append(cur.Status.Conditions, *cond)
		}
		return f.c.Status().Update(ctx, cur)
	})
	return f
}

func (f *writerFixture) pass(t *testing.T, want map[string]*announced.Verdict) (stale bool) {
	t.Helper()
	f.applied = nil
	f.w.set(want)
	failed, stale := f.w.pass(context.Background())
	if failed {
		t.Fatal("a write failed")
	}
	return stale
}

func (f *writerFixture) events() []string { return drainEvents(f.rec) }

func TestAnnouncedWriter(t *testing.T) {
	f := newWriterFixture(t, "a", "b")
	up := &announced.Verdict{Announced: true, Reason: heraldv1.AnnouncedReasonAnnounced, Message: "node n1 announces 10.0.0.1 on eth0 (layer 2)"}
	down := &announced.Verdict{Reason: heraldv1.AnnouncedReasonNoReadyEndpoint, Message: "no ready endpoint"}

	f.pass(t, map[string]*announced.Verdict{"ns/a": up, "ns/b": down})
	if got := strings.Join(f.applied, ","); got != "ns/b,ns/a" {
		t.Errorf("writes %s; want the Service that is not announced first, then the other", got)
	}
	if ev := f.events(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Warning NotAnnounced no ready endpoint") {
		t.Errorf("events %q; want one NotAnnounced Warning (a first True says nothing: the owner's Announcing Event does)", ev)
	}

	// Nothing changed: nothing written.
	f.pass(t, map[string]*announced.Verdict{"ns/a": up, "ns/b": down})
	if len(f.applied) != 0 {
		t.Errorf("rewrote %v though the Services show their verdicts", f.applied)
	}

	// Recovery: written, with an Announced Event and a new transition time.
	var before corev1.Service
	_ = f.c.Get(context.Background(), client.ObjectKey{Namespace: "ns", Name: "b"}, &before)
	f.pass(t, map[string]*announced.Verdict{"ns/a": up, "ns/b": up})
	if got := strings.Join(f.applied, ","); got != "ns/b" {
		t.Errorf("writes %s; want ns/b", got)
	}
	if ev := f.events(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Normal Announced node n1") {
		t.Errorf("events %q; want one Announced", ev)
	}

	// A cache that has not seen the last write is not written again, and
	// the pass says to look later.
	f.hold = true
	moved := &announced.Verdict{Announced: true, Reason: heraldv1.AnnouncedReasonAnnounced, Message: "node n2 announces 10.0.0.1 on eth0 (layer 2)"}
	f.pass(t, map[string]*announced.Verdict{"ns/a": moved})
	if stale := f.pass(t, map[string]*announced.Verdict{"ns/a": moved}); !stale || len(f.applied) != 0 {
		t.Errorf("stale %v, writes %v; want none and a later look", stale, f.applied)
	}

	// Removal: a nil verdict removes the condition once.
	f.hold = false
	f.pass(t, map[string]*announced.Verdict{"ns/b": nil})
	var b corev1.Service
	_ = f.c.Get(context.Background(), client.ObjectKey{Namespace: "ns", Name: "b"}, &b)
	if meta.FindStatusCondition(b.Status.Conditions, heraldv1.ConditionAnnounced) != nil {
		t.Error("the condition was not removed")
	}
	f.pass(t, map[string]*announced.Verdict{"ns/b": nil})
	if len(f.applied) != 0 {
		t.Errorf("removed again: %v", f.applied)
	}
}

func TestAnnouncedOnly(t *testing.T) {
	base := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "a", UID: "u"}}
	withCond := func(s *corev1.Service, typ, msg string) *corev1.Service {
		s = s.DeepCopy()
		s.Status.Conditions = append(s.Status.Conditions, metav1.Condition{Type: typ, Message: msg})
		return s
	}
	a := withCond(base, heraldv1.ConditionAnnounced, "node n1")
	b := withCond(base, heraldv1.ConditionAnnounced, "node n2")
	if !announcedOnly(a, b) {
		t.Error("a change of the Announced condition alone wakes the speakers")
	}
	if announcedOnly(a, a) {
		t.Error("an update changing nothing (a resync) is skipped")
	}
	c := withCond(b, heraldv1.ConditionIPAllocated, "x")
	if announcedOnly(a, c) {
		t.Error("a change of another condition is skipped")
	}
	d := b.DeepCopy()
	d.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "10.0.0.1"}}
	if announcedOnly(a, d) {
		t.Error("a change of the addresses is skipped")
	}
}

func TestConditionMessageBounded(t *testing.T) {
	long := strings.Repeat("node-ä to router: Active (connect: connection refused); ", 2000)
	c := condition(&announced.Verdict{Reason: heraldv1.AnnouncedReasonBGPSessionsDown, Message: long}, 1)
	if len(c.Message) > maxConditionMessage || !strings.HasSuffix(c.Message, truncatedNote) || !utf8.ValidString(c.Message) {
		t.Errorf("message of %d bytes, valid UTF-8 %v, ends %q", len(c.Message), utf8.ValidString(c.Message), c.Message[len(c.Message)-40:])
	}
	if short := condition(&announced.Verdict{Message: "node n1"}, 1); short.Message != "node n1" {
		t.Errorf("a short message changed: %q", short.Message)
	}
}
