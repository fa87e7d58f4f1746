package memberkey

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestDecide(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	grace := 10 * time.Minute
	bad := errors.New("bad")
	tests := []struct {
		name string
		o    Observed
		want Decision
	}{
		{"missing", Observed{}, Decision{Change: Create}},
		{"settled", Observed{Exists: true}, Decision{Change: Keep}},
		{"unusable key is reported, never overwritten", Observed{Exists: true, PrimaryErr: bad, RotateAsked: "x"}, Decision{Change: Broken}},
		{"rotation asked", Observed{Exists: true, RotateAsked: "2025-01-01"}, Decision{Change: Rotate}},
		{"rotation done for that value", Observed{Exists: true, RotateAsked: "2025-01-01", RotatedFor: "2025-01-01"}, Decision{Change: Keep}},
		{"a new value rotates again", Observed{Exists: true, RotateAsked: "b", RotatedFor: "a"}, Decision{Change: Rotate}},
		{"previous key within the grace period", Observed{Exists: true, HasPrevious: true, RotatedAt: now.Add(-time.Minute)},
			Decision{Change: Keep, Recheck: now.Add(9 * time.Minute)}},
		{"previous key past the grace period", Observed{Exists: true, HasPrevious: true, RotatedAt: now.Add(-grace)}, Decision{Change: DropPrevious}},
		{"previous key written by hand starts the clock", Observed{Exists: true, HasPrevious: true}, Decision{Change: StartGrace}},
		{"a rotation asked during one waits", Observed{Exists: true, HasPrevious: true, RotatedAt: now.Add(-time.Minute), RotateAsked: "b", RotatedFor: "a"},
			Decision{Change: Keep, Recheck: now.Add(9 * time.Minute), Pending: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(tt.o, now, grace); got != tt.want {
				t.Errorf("Decide(%+v) = %+v; want %+v", tt.o, got, tt.want)
			}
		})
	}
}

func TestKeeper(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	secrets := cs.CoreV1().Secrets("herald-system")
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	k := &Keeper{Secrets: secrets, Namespace: "herald-system", Name: "herald-memberlist", Log: logr.Discard(), Grace: time.Minute, Now: func() time.Time { return now }}
	get := func() *corev1.Secret {
		t.Helper()
		s, err := secrets.Get(ctx, "herald-memberlist", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	reconcile := func() {
		t.Helper()
		if _, err := k.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}

	reconcile()
	first := get().Data[DataKey]
	if Valid(first) != nil || len(first) != KeySize {
		t.Fatalf("created key of %d bytes", len(first))
	}
	if _, ok := get().Data[PreviousDataKey]; ok {
		t.Error("a first Secret has a previous key")
	}
	reconcile()
	if string(get().Data[DataKey]) != string(first) {
		t.Fatal("the key changed with nothing asked")
	}

	// Rotation: the new key, the old one beside it.
	s := get()
	s.Annotations = map[string]string{AnnotationRotate: "one"}
	if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	reconcile()
	s = get()
	second := s.Data[DataKey]
	if string(second) == string(first) || string(s.Data[PreviousDataKey]) != string(first) {
		t.Fatalf("after a rotation: key changed %v, previous is the old key %v", string(second) != string(first), string(s.Data[PreviousDataKey]) == string(first))
	}
	if s.Annotations[AnnotationRotated] != "one" || s.Annotations[AnnotationRotatedAt] != now.Format(time.RFC3339) {
		t.Errorf("annotations after a rotation: %v", s.Annotations)
	}
	// Within the grace period nothing moves; after it the previous key goes.
	now = now.Add(59 * time.Second)
	reconcile()
	if _, ok := get().Data[PreviousDataKey]; !ok {
		t.Fatal("previous key dropped within the grace period")
	}
	now = now.Add(time.Second)
	reconcile()
	if _, ok := get().Data[PreviousDataKey]; ok {
		t.Fatal("previous key kept past the grace period")
	}
	if string(get().Data[DataKey]) != string(second) {
		t.Fatal("dropping the previous key changed the key")
	}

	// Deleted: back with a new key, the last one as the previous.
	if err := secrets.Delete(ctx, "herald-memberlist", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	reconcile()
	s = get()
	if string(s.Data[DataKey]) == string(second) || Valid(s.Data[DataKey]) != nil {
		t.Error("a recreated Secret must hold a new key")
	}
	if string(s.Data[PreviousDataKey]) != string(second) {
		t.Error("a recreated Secret must keep the last key as the previous one, so the running speakers roll the new one in")
	}
	if s.Annotations[AnnotationRotatedAt] == "" {
		t.Error("a recreated Secret's previous key must have a grace period")
	}
}

func TestKeysIgnoresUnusablePrevious(t *testing.T) {
	k := []byte("0123456789abcdef")
	for _, prev := range [][]byte{nil, []byte("short"), k} {
		_, p, err := Keys(&corev1.Secret{Data: map[string][]byte{DataKey: k, PreviousDataKey: prev}})
		if err != nil || p != nil {
			t.Errorf("Keys with previous %q = %q, %v; want no previous key", prev, p, err)
		}
	}
	if _, _, err := Keys(&corev1.Secret{Data: map[string][]byte{DataKey: []byte("short")}}); err == nil {
		t.Error("Keys accepted a 5-byte key")
	}
}
