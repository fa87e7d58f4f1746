//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/internal/memberkey"
	"github.com/heraldlb/herald/internal/testpoll"
	"github.com/heraldlb/herald/speaker/membership"
)

const keySecret = "herald-memberlist"

// TestKeyRotation rotates the memberlist key while a layer 2 Service is served:
// every speaker ends with the new key alone, no speaker ever declares another
// failed, the address stays on its node and no request fails. It does the same
// for a deleted key Secret, which comes back with a new key. Then it replaces
// the key by hand and restarts a speaker, the way a key was changed before
// rotation existed: the restarted speaker (new key only) must rejoin the others,
// which roll the new key in from the Secret. Before keyring rotation, speakers
// never reread the Secret and the restarted one was split from the rest.
func TestKeyRotation(t *testing.T) {
	l := heraldLab(t)
	cs := l.Client()
	ips := whoamiService(t, l, "keyrot", "whoami", false, "node1", "node2", "node3")
	v4 := firstV4(ips)
	owner := resolvedOwner(t, l, v4)
	t.Logf("%s answers from %s", v4, owner)
	fp := waitSecretKey(t, l, "")
	waitSpeakerKeys(t, l, []string{fp}, 30*time.Second)
	marks := logMarks(t, l)

	t.Run("annotation", func(t *testing.T) {
		probe := startKeyProbe(t, l, v4)
		start := time.Now()
		annotateSecret(t, l, memberkey.AnnotationRotate, fmt.Sprint(time.Now().UnixNano()))
		newFP := waitSecretKey(t, l, fp)
		t.Logf("the controller rotated the key %v after the annotation", time.Since(start).Round(time.Millisecond))
		waitSpeakerKeys(t, l, []string{newFP}, 30*time.Second)
		t.Logf("every speaker holds the new key alone %v after the annotation", time.Since(start).Round(time.Millisecond))
		staysOn(t, l, v4, owner, 3*time.Second, "the key rotation")
		ok, failed, _ := probe.finish(t)
		if failed > 0 {
			t.Errorf("%d of %d requests failed during the rotation", failed, ok+failed)
		}
		if n := announcer(t, cs, "keyrot", "whoami"); n != owner {
			t.Errorf("the latest Announcing Event names %s; want %s (no move)", n, owner)
		}
		if lost := memberLosses(t, l, marks); len(lost) > 0 {
			t.Errorf("speakers saw members leave or fail during the rotation: %v", lost)
		}
		s := secret(t, l)
		if _, ok := s.Data[memberkey.PreviousDataKey]; !ok {
			t.Error("the Secret dropped the previous key within the grace period")
		}
		fp = newFP
	})

	t.Run("deleted", func(t *testing.T) {
		// A deleted Secret comes back with a new key; running speakers roll it
		// in as in a rotation, without a split.
		marks := logMarks(t, l)
		probe := startKeyProbe(t, l, v4)
		if err := l.Client().CoreV1().Secrets(lab.SystemNamespace).Delete(context.Background(), keySecret, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		newFP := waitSecretKey(t, l, fp)
		t.Logf("the controller recreated the Secret %v after the delete", time.Since(start).Round(time.Millisecond))
		waitSpeakerKeys(t, l, []string{newFP}, 30*time.Second)
		t.Logf("every speaker holds the recreated key alone %v after the delete", time.Since(start).Round(time.Millisecond))
		staysOn(t, l, v4, owner, 2*time.Second, "the key Secret's recreation")
		if ok, failed, _ := probe.finish(t); failed > 0 {
			t.Errorf("%d of %d requests failed", failed, ok+failed)
		}
		if lost := memberLosses(t, l, marks); len(lost) > 0 {
			t.Errorf("speakers saw members leave or fail: %v", lost)
		}
		fp = newFP
	})

	t.Run("replaced-by-hand", func(t *testing.T) {
		// A node other than the owner restarts with the new key alone.
		other := "node1"
		if owner == other {
			other = "node2"
		}
		marks := logMarks(t, l)
		key := make([]byte, 32)
		copy(key, fmt.Sprintf("replaced-by-hand-%d", time.Now().UnixNano()))
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			s, err := l.Client().CoreV1().Secrets(lab.SystemNamespace).Get(context.Background(), keySecret, metav1.GetOptions{})
			if err != nil {
				return err
			}
			s.Data = map[string][]byte{memberkey.DataKey: key}
			_, err = l.Client().CoreV1().Secrets(lab.SystemNamespace).Update(context.Background(), s, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.KillSpeaker(other, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		// The stopping speaker's own view of the others as it leaves is no
		// loss; the restarted one's is.
		marks[other] = logMarks(t, l)[other]
		if err := l.StartSpeaker(context.Background(), other); err != nil {
			t.Fatal(err)
		}
		testpoll.Until(t, 30*time.Second, "every speaker sees 3 members", func() (bool, string) {
			var got []string
			for _, n := range l.Nodes() {
				got = append(got, fmt.Sprintf("%s:%v", n.Name, metric(l, n, "herald_speaker_members_alive")))
			}
			return !slices.ContainsFunc(got, func(s string) bool { return !strings.HasSuffix(s, ":3") }), strings.Join(got, " ")
		})
		waitSpeakerKeys(t, l, []string{membership.Fingerprint(key)}, 30*time.Second)
		staysOn(t, l, v4, owner, 2*time.Second, "a speaker's restart with a replaced key")
		for _, lost := range memberLosses(t, l, marks) {
			if lost != owner+"->"+other && lost != third(owner, other)+"->"+other {
				t.Errorf("a speaker saw a member other than the restarted one leave or fail: %s", lost)
			}
		}
	})
}

// startKeyProbe probes ip from the client with a 1 s timeout per request: a
// rotation leaves ARP and routes alone, so a request fails only if the address
// stops answering (a split, a move); the 400 ms of the failover tests also
// failed once per run on this 2-core machine at load 8 with nothing moving.
func startKeyProbe(t testing.TB, l *lab.Lab, ip string) *probeLoop {
	return startProbeFrom(t, l, lab.NSClient, ip, time.Second)
}

// third returns the lab node that is neither a nor b.
func third(a, b string) string {
	for _, n := range []string{"node1", "node2", "node3"} {
		if n != a && n != b {
			return n
		}
	}
	return ""
}

func secret(t testing.TB, l *lab.Lab) *corev1.Secret {
	t.Helper()
	s, err := l.Client().CoreV1().Secrets(lab.SystemNamespace).Get(context.Background(), keySecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitSecretKey waits for the Secret's key to differ from the one whose
// fingerprint is not ("" for any key) and returns its fingerprint.
func waitSecretKey(t testing.TB, l *lab.Lab, not string) string {
	t.Helper()
	var fp string
	testpoll.Until(t, 20*time.Second, "the memberlist key", func() (bool, string) {
		s, err := l.Client().CoreV1().Secrets(lab.SystemNamespace).Get(context.Background(), keySecret, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		fp = membership.Fingerprint(s.Data[memberkey.DataKey])
		return fp != not, fp
	})
	return fp
}

func annotateSecret(t testing.TB, l *lab.Lab, k, v string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := l.Client().CoreV1().Secrets(lab.SystemNamespace).Get(context.Background(), keySecret, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
		_, err = l.Client().CoreV1().Secrets(lab.SystemNamespace).Update(context.Background(), s, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitSpeakerKeys waits until every speaker's keyring is want (fingerprints, the
// primary first): by its herald_speaker_memberlist_keys gauges, then by its last
// "Memberlist keyring changed" or "Speaker started" log line.
func waitSpeakerKeys(t testing.TB, l *lab.Lab, want []string, within time.Duration) {
	t.Helper()
	testpoll.Until(t, within, fmt.Sprintf("every speaker holding keys %v", want), func() (bool, string) {
		var bad []string
		for _, n := range l.Nodes() {
			primary := metricLabel(l, n, "herald_speaker_memberlist_keys", `state="primary"`)
			secondary := metricLabel(l, n, "herald_speaker_memberlist_keys", `state="secondary"`)
			if primary != "1" || secondary != fmt.Sprint(len(want)-1) {
				bad = append(bad, fmt.Sprintf("%s: primary %s, secondary %s", n.Name, primary, secondary))
			}
		}
		if len(bad) > 0 {
			return false, strings.Join(bad, "; ")
		}
		// The gauges count keys; the logs name them.
		for _, n := range l.Nodes() {
			if got := lastKeys(t, l, n.Name); !slices.Equal(got, want) {
				bad = append(bad, fmt.Sprintf("%s: %v", n.Name, got))
			}
		}
		return len(bad) == 0, strings.Join(bad, "; ")
	})
}

// logLine is the part of a speaker's JSON log line the test reads.
type logLine struct {
	Msg    string   `json:"msg"`
	Keys   []string `json:"keys"`
	Member string   `json:"member"`
}

func readLog(t testing.TB, l *lab.Lab, node string, from int64, each func(logLine)) int64 {
	t.Helper()
	f, err := os.Open(l.LogPath("speaker-" + node))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(from, 0); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := from
	for sc.Scan() {
		n += int64(len(sc.Bytes())) + 1
		var ll logLine
		if json.Unmarshal(sc.Bytes(), &ll) == nil {
			each(ll)
		}
	}
	return n
}

// lastKeys returns the speaker's keyring as its log last reported it.
func lastKeys(t testing.TB, l *lab.Lab, node string) []string {
	var keys []string
	readLog(t, l, node, 0, func(ll logLine) {
		if ll.Msg == "Memberlist keyring changed" || ll.Msg == "Speaker started" {
			keys = ll.Keys
		}
	})
	return keys
}

// logMarks returns where each speaker's log ends now.
func logMarks(t testing.TB, l *lab.Lab) map[string]int64 {
	out := map[string]int64{}
	for _, n := range l.Nodes() {
		out[n.Name] = readLog(t, l, n.Name, 0, func(logLine) {})
	}
	return out
}

// memberLosses returns "observer->member" for every member a speaker saw leave
// or fail since marks.
func memberLosses(t testing.TB, l *lab.Lab, marks map[string]int64) []string {
	var out []string
	for _, n := range l.Nodes() {
		readLog(t, l, n.Name, marks[n.Name], func(ll logLine) {
			if ll.Msg == "Member left or failed" {
				out = append(out, n.Name+"->"+ll.Member)
			}
		})
	}
	return out
}

// metric returns the value of an unlabelled metric of the node's speaker.
func metric(l *lab.Lab, n lab.Node, name string) string {
	return metricLabel(l, n, name, "")
}

// metricLabel returns the value of the metric's series whose labels contain
// label ("" for an unlabelled metric), or "".
func metricLabel(l *lab.Lab, n lab.Node, name, label string) string {
	out, err := l.Exec(n.NS, "curl", "-sS", "--noproxy", "*", "--max-time", "1", "http://127.0.0.1:7474/metrics")
	if err != nil {
		return ""
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		if strings.Contains(m[1], label) {
			return m[2]
		}
	}
	return ""
}
