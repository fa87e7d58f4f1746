package app

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/heraldlb/herald/internal/memberkey"
	"github.com/heraldlb/herald/speaker/membership"
)

var (
	keyOld = []byte("0123456789abcdef0123456789abcdef")
	keyNew = []byte("fedcba9876543210fedcba9876543210")
)

func keySecret(primary, previous []byte) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "herald-system", Name: "herald-memberlist"}, Data: map[string][]byte{memberkey.DataKey: primary}}
	if previous != nil {
		s.Data[memberkey.PreviousDataKey] = previous
	}
	return s
}

// TestKeyLoadWaits: a speaker waiting for its key is not ready, says why, and
// takes the key (and the previous one, mid-rotation) once the Secret appears.
func TestKeyLoadWaits(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).Build()
	k := newKeySource(c, Config{Namespace: "herald-system", MemberlistSecret: "herald-memberlist"}, logr.Discard(), func() bool { return false })
	type result struct {
		primary []byte
		older   [][]byte
		err     error
	}
	done := make(chan result, 1)
	go func() {
		p, o, err := k.load(context.Background())
		done <- result{p, o, err}
	}()
	time.Sleep(100 * time.Millisecond)
	if err := k.Check(nil); err == nil || !strings.Contains(err.Error(), "waiting for the memberlist key Secret") {
		t.Errorf("/readyz while waiting = %v; want it to say it waits for the key", err)
	}
	if err := c.Create(context.Background(), keySecret(keyNew, keyOld)); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || string(r.primary) != string(keyNew) || len(r.older) != 1 || string(r.older[0]) != string(keyOld) {
			t.Errorf("load = %q, %q, %v; want the new key and the previous one", r.primary, r.older, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("load did not return once the Secret existed")
	}
	if err := k.Check(nil); err != nil {
		t.Errorf("/readyz with the key = %v; want nil", err)
	}
}

func TestKeyLoadInsecure(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).Build()
	k := newKeySource(c, Config{Namespace: "herald-system", MemberlistSecret: "herald-memberlist", Insecure: true}, logr.Discard(), func() bool { return false })
	p, o, err := k.load(context.Background())
	if p != nil || o != nil || err != nil || k.Check(nil) != nil {
		t.Errorf("load with no Secret and Insecure = %q, %q, %v (ready: %v); want unencrypted", p, o, err, k.Check(nil))
	}
}

// fakeRing is a keyring with fixed other members.
type fakeRing struct {
	keys   [][]byte
	others []membership.Member
}

func (f *fakeRing) Encrypted() bool { return true }
func (f *fakeRing) KeyFingerprints() []string {
	var out []string
	for _, k := range f.keys {
		out = append(out, membership.Fingerprint(k))
	}
	return out
}
func (f *fakeRing) Alive() []membership.Member { return f.others }
func (f *fakeRing) AddKey(k []byte) error      { f.keys = append(f.keys, k); return nil }
func (f *fakeRing) UseKey(fp string) error {
	for i, k := range f.keys {
		if membership.Fingerprint(k) == fp {
			f.keys[0], f.keys[i] = f.keys[i], f.keys[0]
		}
	}
	return nil
}
func (f *fakeRing) RemoveKey(fp string) error {
	f.keys = slices.DeleteFunc(f.keys, func(k []byte) bool { return membership.Fingerprint(k) == fp })
	return nil
}

// TestKeyStep: each pass takes one step, and waits for the other member.
func TestKeyStep(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(keySecret(keyNew, keyOld)).Build()
	k := newKeySource(c, Config{NodeName: "node1", Namespace: "herald-system", MemberlistSecret: "herald-memberlist"}, logr.Discard(), func() bool { return false })
	oldFP, newFP := membership.Fingerprint(keyOld), membership.Fingerprint(keyNew)
	peer := membership.Member{Name: "node2", Meta: membership.Meta{Keys: []string{oldFP}}}
	ring := &fakeRing{keys: [][]byte{keyOld}, others: []membership.Member{{Name: "node1"}, peer}}
	ctx := context.Background()
	want := func(step string, keys ...string) {
		t.Helper()
		k.step(ctx, ring)
		if got := ring.KeyFingerprints(); !slices.Equal(got, keys) {
			t.Fatalf("after %s: keys %v; want %v", step, got, keys)
		}
	}
	want("add", oldFP, newFP)
	want("wait for node2 to hold the new key", oldFP, newFP)
	ring.others[1].Meta.Keys = []string{oldFP, newFP}
	want("use", newFP, oldFP)
	want("wait for node2 to encrypt with the new key", newFP, oldFP)
	ring.others[1].Meta.Keys = []string{newFP, oldFP}
	want("remove", newFP)
	// The Secret deleted: keep the keys.
	if err := c.Delete(ctx, keySecret(nil, nil)); err != nil {
		t.Fatal(err)
	}
	want("Secret deleted", newFP)
}
