//go:build integration

package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/heraldlb/herald/controller/app"
	"github.com/heraldlb/herald/internal/memberkey"
	"github.com/heraldlb/herald/internal/testpoll"
)

// getKeySecret returns the Secret, or nil while it does not exist.
func getKeySecret(t testing.TB, name string) *corev1.Secret {
	t.Helper()
	s, err := cs.CoreV1().Secrets("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return s
}

// waitKey waits for the Secret to hold a valid key and returns it.
func waitKey(t testing.TB, name string, within time.Duration, ok func(*corev1.Secret) bool) *corev1.Secret {
	t.Helper()
	var s *corev1.Secret
	testpoll.Until(t, within, "memberlist Secret "+name, func() (bool, string) {
		s = getKeySecret(t, name)
		if s == nil {
			return false, "absent"
		}
		return memberkey.Valid(s.Data[memberkey.DataKey]) == nil && (ok == nil || ok(s)), fmt.Sprintf("annotations %v, %d data keys", s.Annotations, len(s.Data))
	})
	return s
}

// TestMemberlistKeySecretRecreated: a deleted key Secret comes back within 30 s
// while the controller runs (not only at its next election), with a new key and
// the last one as the previous key, so that speakers roll the new one in.
// Before the keeper, the controller created the Secret once, at election, and
// this test failed at "recreated".
func TestMemberlistKeySecretRecreated(t *testing.T) {
	const name = "herald-memberlist-recreate"
	t.Cleanup(func() {
		_ = cs.CoreV1().Secrets("default").Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	startController(t, controllerOpts{memberSecret: name})
	first := waitKey(t, name, 10*time.Second, nil)
	for i := 0; i < 2; i++ {
		if err := cs.CoreV1().Secrets("default").Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		deleted := time.Now()
		again := waitKey(t, name, 30*time.Second, func(s *corev1.Secret) bool { return s.UID != first.UID })
		t.Logf("recreated %v after the delete", time.Since(deleted).Round(time.Millisecond))
		if string(again.Data[memberkey.DataKey]) == string(first.Data[memberkey.DataKey]) {
			t.Error("the recreated Secret holds the deleted key; want a new one")
		}
		if string(again.Data[memberkey.PreviousDataKey]) != string(first.Data[memberkey.DataKey]) {
			t.Error("the recreated Secret does not keep the deleted key as the previous one; running speakers would need it")
		}
		first = again
	}
	waitEvent(t, "default", name, "MemberlistKeyCreated", "Recreated")
}

// startKeyController runs a controller keeping the key Secret name with the
// given grace period until the test ends.
func startKeyController(t *testing.T, name string, grace time.Duration) {
	t.Helper()
	mgr, _, err := app.New(restCfg, app.Config{
		MetricsAddr: "0", ProbeAddr: "0",
		LeaderElectionNamespace: "default", LeaderElectionID: "herald-test-memberkey",
		SkipNameValidation: true,
		MemberlistSecret:   name, MemberlistKeyInterval: 500 * time.Millisecond, MemberlistKeyGrace: grace,
		Logger: quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
	})
}

// TestMemberlistKeyRotation: herald.io/rotate-key gives a new key, keeps the old
// one as the previous key for the grace period, then drops it; one rotation per
// annotation value, and one at a time.
func TestMemberlistKeyRotation(t *testing.T) {
	const name = "herald-memberlist-rotate"
	const grace = 3 * time.Second
	t.Cleanup(func() {
		_ = cs.CoreV1().Secrets("default").Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	startKeyController(t, name, grace)
	s := waitKey(t, name, 10*time.Second, nil)
	if _, ok := s.Data[memberkey.PreviousDataKey]; ok {
		t.Fatal("a new Secret holds a previous key")
	}
	annotate := func(v string) {
		t.Helper()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			s, err := cs.CoreV1().Secrets("default").Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if s.Annotations == nil {
				s.Annotations = map[string]string{}
			}
			s.Annotations[memberkey.AnnotationRotate] = v
			_, err = cs.CoreV1().Secrets("default").Update(context.Background(), s, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	old := s.Data[memberkey.DataKey]
	annotate("first")
	asked := time.Now()
	s = waitKey(t, name, 10*time.Second, func(s *corev1.Secret) bool { return string(s.Data[memberkey.DataKey]) != string(old) })
	t.Logf("rotated %v after the annotation", time.Since(asked).Round(time.Millisecond))
	if string(s.Data[memberkey.PreviousDataKey]) != string(old) {
		t.Error("the previous key is not the replaced one")
	}
	if s.Annotations[memberkey.AnnotationRotated] != "first" || s.Annotations[memberkey.AnnotationRotatedAt] == "" {
		t.Errorf("annotations after the rotation: %v", s.Annotations)
	}
	waitEvent(t, "default", name, "MemberlistKeyRotated", `"first"`)
	second := s.Data[memberkey.DataKey]

	// A rotation asked while one is under way waits for it.
	annotate("second")
	time.Sleep(time.Second)
	if s := getKeySecret(t, name); string(s.Data[memberkey.DataKey]) != string(second) {
		t.Error("a second rotation began while the previous key of the first was still in the Secret")
	}
	s = waitKey(t, name, grace+10*time.Second, func(s *corev1.Secret) bool { return string(s.Data[memberkey.DataKey]) != string(second) })
	if string(s.Data[memberkey.PreviousDataKey]) != string(second) {
		t.Error("the second rotation's previous key is not the first rotation's key")
	}
	waitEvent(t, "default", name, "PreviousMemberlistKeyDropped", "")
	third := s.Data[memberkey.DataKey]
	s = waitKey(t, name, grace+10*time.Second, func(s *corev1.Secret) bool {
		_, ok := s.Data[memberkey.PreviousDataKey]
		return !ok
	})
	if string(s.Data[memberkey.DataKey]) != string(third) {
		t.Error("dropping the previous key changed the key")
	}
	// The same value again asks for nothing.
	time.Sleep(2 * time.Second)
	if s := getKeySecret(t, name); string(s.Data[memberkey.DataKey]) != string(third) {
		t.Error("the key changed again with no new annotation value")
	}
}
