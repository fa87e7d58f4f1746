//go:build e2e

package e2e

import (
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

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/internal/testpoll"
)

// Issue 9: BFD, graceful restart, next hop and deleted Nodes, against FRR.
func TestBGPRobust(t *testing.T) {
	l := bgpLab(t)
	ctx := context.Background()
	patchPeer := func(t *testing.T, patch string) {
		t.Helper()
		if out, err := l.Kubectl("patch", "bgppeer", "router", "--type", "merge", "-p", patch); err != nil {
			t.Fatalf("patching BGPPeer router: %v\n%s", err, out)
		}
	}
	// Each subtest puts the router peer and FRR back as the example has them.
	// A subtest whose restore fails fails itself: the next one would start from
	// its peer (CI once saw a subtest wait 20 s for a route after the one that
	// had moved the peer to an address it then removed, with this error unread).
	restore := func(t *testing.T) {
		t.Cleanup(func() {
			root, err := lab.RepoRoot()
			if err != nil {
				t.Fatal(err)
			}
			// kubectl replace reads each object's resourceVersion, then writes: a
			// status write in between (the controller's or a speaker's) is a
			// conflict, so it tries again.
			testpoll.Until(t, 20*time.Second, "the example's BGP objects put back", func() (bool, string) {
				if _, err := l.Kubectl("replace", "-f", root+"/manifests/examples/bgp.yaml"); err != nil {
					t.Logf("putting the example's BGP objects back (trying again): %v", err)
					return false, err.Error()
				}
				return true, ""
			})
			if err := l.ConfigureRouter(ctx, lab.RouterConfig{}); err != nil {
				t.Fatalf("putting the router's configuration back: %v", err)
			}
		})
	}

	t.Run("BFD: a node's link cut drops its nexthop within the detection time", func(t *testing.T) {
		restore(t)
		if err := l.ConfigureRouter(ctx, lab.RouterConfig{BFD: true}); err != nil {
			t.Fatal(err)
		}
		patchPeer(t, `{"spec":{"bfd":{"receiveIntervalMilliseconds":300,"transmitIntervalMilliseconds":300,"detectMultiplier":3}}}`)
		ips := whoamiServiceFrom(t, l, "routed", "bgp", "web", false, "node1", "node2", "node3")
		p := hostPrefix(firstV4(ips))
		expectNexthops(t, l, p, 20*time.Second, "node1", "node2", "node3")
		testpoll.Until(t, 20*time.Second, "FRR's BFD sessions with the three nodes up", func() (bool, string) {
			out, err := l.Vtysh(ctx, "show bfd peers json")
			if err != nil {
				return false, err.Error()
			}
			var peers []struct {
				Peer   string `json:"peer"`
				Status string `json:"status"`
			}
			_ = json.Unmarshal([]byte(out), &peers)
			up := 0
			for _, bp := range peers {
				if bp.Status == "up" && !strings.Contains(bp.Peer, ":") {
					up++
				}
			}
			return up == 3, out
		})
		bfdUp := func() {
			t.Helper()
			testpoll.Until(t, 20*time.Second, "BGPPeer status shows BFD Up on every node", func() (bool, string) {
				pe := getPeer(t, l, "router")
				for _, n := range pe.Status.Nodes {
					if n.BFD != "Up" {
						return false, fmt.Sprintf("%+v", pe.Status.Nodes)
					}
				}
				return len(pe.Status.Nodes) == 3, fmt.Sprintf("%+v", pe.Status.Nodes)
			})
		}
		bfdUp()
		gone := watchNexthops(l, p, func(n int) bool { return n == 2 }, 10*time.Second)
		start := time.Now()
		if err := l.CutLink("node3"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.RestoreLink("node3") })
		at := <-gone
		if at.IsZero() {
			t.Fatal("node3's nexthop stayed 10 s after its link was cut")
		}
		took := at.Sub(start)
		t.Logf("bench: BGP BFD 300ms x3 link cut -> nexthop gone at FRR: %v (hold time 3 s)", took.Round(time.Millisecond))
		if took > 1500*time.Millisecond {
			t.Errorf("nexthop gone %v after the link cut; BFD should take about 0.9 s", took)
		}
		if err := l.RestoreLink("node3"); err != nil {
			t.Fatal(err)
		}
		expectNexthops(t, l, p, 30*time.Second, "node1", "node2", "node3")
		waitSummary(t, l, "router", "3/3", 30*time.Second)
		bfdUp()

		// The router goes silent (BGP and BFD dropped at its interface): the
		// nodes reset their sessions on BFD's word, not after the hold time.
		marks := map[string]int{}
		for _, n := range l.NodeNames() {
			b, _ := os.ReadFile(l.LogPath("speaker-" + n))
			marks[n] = len(b)
		}
		rules := [][]string{
			{"INPUT", "-p", "udp", "--dport", "3784", "-j", "DROP"},
			{"INPUT", "-p", "tcp", "--dport", "179", "-j", "DROP"},
			{"OUTPUT", "-p", "udp", "--sport", "49152:65535", "--dport", "3784", "-j", "DROP"},
			{"OUTPUT", "-p", "tcp", "--sport", "179", "-j", "DROP"},
		}
		silence := time.Now()
		for _, r := range rules {
			if out, err := l.Exec(lab.NSRouter, append([]string{"iptables", "-I"}, r...)...); err != nil {
				t.Fatalf("silencing the router: %v\n%s", err, out)
			}
		}
		t.Cleanup(func() {
			for _, r := range rules {
				_, _ = l.Exec(lab.NSRouter, append([]string{"iptables", "-D"}, r...)...)
			}
		})
		testpoll.Until(t, 5*time.Second, "every node resets its session on BFD down", func() (bool, string) {
			n := 0
			for _, node := range l.NodeNames() {
				b, _ := os.ReadFile(l.LogPath("speaker-" + node))
				if len(b) > marks[node] && strings.Contains(string(b[marks[node]:]), "BFD session down; resetting the BGP session") {
					n++
				}
			}
			return n == 3, fmt.Sprintf("%d of 3", n)
		})
		t.Logf("bench: BGP BFD 300ms x3 router silent -> every node reset its session within %v (hold time 3 s)", time.Since(silence).Round(10*time.Millisecond))
		if d := time.Since(silence); d > 2*time.Second {
			t.Errorf("the nodes took %v to drop a silent router's sessions; BFD should take about 0.9 s", d)
		}
	})

	t.Run("graceful restart: a rollout restarts a speaker without a route change or a failed request", func(t *testing.T) {
		restore(t)
		patchPeer(t, `{"spec":{"gracefulRestart":{"restartTimeSeconds":60}}}`)
		ips := whoamiServiceFrom(t, l, "routed", "bgp", "web", false, "node1", "node2", "node3")
		ip := firstV4(ips)
		p := hostPrefix(ip)
		expectNexthops(t, l, p, 20*time.Second, "node1", "node2", "node3")
		// Sessions re-made with the graceful restart capability.
		remoteGR := regexp.MustCompile(`"remoteGrMode":\s*"Restart"`)
		testpoll.Until(t, 20*time.Second, "FRR sees graceful restart from the nodes", func() (bool, string) {
			out, err := l.Vtysh(ctx, "show bgp neighbors 10.77.0.12 json")
			return err == nil && remoteGR.MatchString(out), out
		})
		reachableThroughAll(t, l, ip)
		ds, pod := fakeRollout(t, l, "node2")
		_ = ds

		changes := watchRouteChanges(l, p)
		probe := startProbeFrom(t, l, lab.NSExternal, ip, 400*time.Millisecond)
		time.Sleep(500 * time.Millisecond)
		if err := l.KillSpeaker("node2", syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.StartSpeaker(context.Background(), "node2") })
		if err := l.StartSpeaker(ctx, "node2"); err != nil {
			t.Fatal(err)
		}
		restarted := time.Now()
		waitSummary(t, l, "router", "3/3", 20*time.Second)
		time.Sleep(5 * time.Second) // End-of-RIB, stale routes swept
		ok, failed, _ := probe.finish(t)
		n, seen := changes()
		t.Logf("bench: BGP graceful restart rollout of one speaker: %d route changes at the router, %d of %d requests failed (restarted in %v)", n, failed, ok+failed, time.Since(restarted).Round(time.Second))
		if n != 0 {
			t.Errorf("the router's route changed %d times across a graceful restart: %v", n, seen)
		}
		if failed != 0 || ok == 0 {
			t.Errorf("%d of %d requests failed across a graceful restart", failed, ok+failed)
		}
		log, err := os.ReadFile(l.LogPath("speaker-node2"))
		if err != nil || !strings.Contains(string(log), "Restarting: BGP sessions with graceful restart stay up") {
			t.Errorf("the restarted speaker's log does not say it restarted gracefully (pod %s)", pod)
		}
	})

	t.Run("password rotation: the Secret first keeps the sessions, the router's change reconnects them", func(t *testing.T) {
		restore(t)
		secret := func(pw string) {
			apply(t, l, "apiVersion: v1\nkind: Secret\nmetadata: {name: rotate-password, namespace: herald-system}\nstringData: {password: "+pw+"}\n")
		}
		secret("old-password")
		t.Cleanup(func() {
			_, _ = l.Kubectl("-n", "herald-system", "delete", "secret", "rotate-password", "--ignore-not-found")
		})
		start := time.Now()
		if err := l.ConfigureRouter(ctx, lab.RouterConfig{Password: "old-password"}); err != nil {
			t.Fatal(err)
		}
		apply(t, l, peerYAML("router", "10.77.0.1", lab.NodeASN, "rotate-password"))
		waitReconnected(t, l, "router", start, "node1", "node2", "node3")
		before := getPeer(t, l, "router").Status.Nodes
		secret("new-password")
		time.Sleep(4 * time.Second)
		after := getPeer(t, l, "router")
		if after.Status.Summary != "3/3" {
			t.Errorf("sessions after the Secret changed: %+v", after.Status.Nodes)
		}
		for i, n := range after.Status.Nodes {
			if i < len(before) && !n.Since.Equal(&before[i].Since) {
				t.Errorf("node %s's session was reset by the Secret change", n.Node)
			}
		}
		start = time.Now()
		if err := l.ConfigureRouter(ctx, lab.RouterConfig{Password: "new-password"}); err != nil {
			t.Fatal(err)
		}
		waitReconnected(t, l, "router", start, "node1", "node2", "node3")
		t.Logf("bench: BGP password rotation: sessions up with the new password %v after the router's change", time.Since(start).Round(100*time.Millisecond))
	})

	t.Run("next hop follows sourceAddress", func(t *testing.T) {
		restore(t)
		const src = "10.77.0.211"
		if out, err := l.Exec("lab-node1", "ip", "addr", "add", src+"/24", "dev", "eth0"); err != nil {
			t.Fatalf("adding %s to node1: %v\n%s", src, err, out)
		}
		t.Cleanup(func() { _, _ = l.Exec("lab-node1", "ip", "addr", "del", src+"/24", "dev", "eth0") })
		patchPeer(t, `{"spec":{"sourceAddress":"`+src+`","nodeSelector":{"matchLabels":{"kubernetes.io/hostname":"node1"}}}}`)
		ips := whoamiServiceFrom(t, l, "routed", "bgp", "web", false, "node1", "node2", "node3")
		p := hostPrefix(firstV4(ips))
		expectNexthops(t, l, p, 20*time.Second, src)
	})

	t.Run("a deleted Node's routes are withdrawn at once", func(t *testing.T) {
		restore(t)
		ips := whoamiServiceFrom(t, l, "routed", "bgp", "web", false, "node1", "node2", "node3")
		p := hostPrefix(firstV4(ips))
		expectNexthops(t, l, p, 20*time.Second, "node1", "node2", "node3")
		nodes := l.Client().CoreV1().Nodes()
		saved, err := nodes.Get(ctx, "node3", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			n := saved.DeepCopy()
			n.ResourceVersion, n.UID, n.CreationTimestamp = "", "", metav1.Time{}
			if _, err := nodes.Create(context.Background(), n, metav1.CreateOptions{}); err == nil {
				st := saved.Status
				if cur, err := nodes.Get(context.Background(), "node3", metav1.GetOptions{}); err == nil {
					cur.Status = st
					_, _ = nodes.UpdateStatus(context.Background(), cur, metav1.UpdateOptions{})
				}
			}
		})
		start := time.Now()
		if err := nodes.Delete(ctx, "node3", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		took := expectNexthops(t, l, p, 10*time.Second, "node1", "node2")
		t.Logf("bench: BGP deleted Node -> nexthop gone at FRR: %v", took.Round(time.Millisecond))
		if took > 3*time.Second {
			t.Errorf("withdrawn %v after the Node was deleted (hold time 3 s): not at once", took)
		}
		_ = start
	})
}

// fakeRollout makes what a DaemonSet rollout looks like to node's speaker (the
// lab has no kubelet or DaemonSet controller): the speakers' DaemonSet at a new
// generation, and the speaker's Pod, of the old one, being deleted.
func fakeRollout(t *testing.T, l *lab.Lab, node string) (*appsv1.DaemonSet, string) {
	t.Helper()
	ctx := context.Background()
	cs := l.Client()
	labels := map[string]string{"app.kubernetes.io/name": "herald", "app.kubernetes.io/component": "speaker"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "herald-speaker", Namespace: lab.SystemNamespace},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "speaker", Image: "herald:lab"}}},
			},
		},
	}
	ds, err := cs.AppsV1().DaemonSets(lab.SystemNamespace).Create(ctx, ds, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating the DaemonSet: %v", err)
	}
	t.Cleanup(func() {
		_ = cs.AppsV1().DaemonSets(lab.SystemNamespace).Delete(context.Background(), "herald-speaker", metav1.DeleteOptions{})
	})
	// No controller-manager makes the namespace's default ServiceAccount, which
	// admission wants for a Pod.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: lab.SystemNamespace}}
	if _, err := cs.CoreV1().ServiceAccounts(lab.SystemNamespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating the default ServiceAccount: %v", err)
	}
	podLabels := map[string]string{"pod-template-generation": fmt.Sprint(ds.Generation)}
	for k, v := range labels {
		podLabels[k] = v
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "herald-speaker-" + node, Namespace: lab.SystemNamespace, Labels: podLabels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: ds.UID, Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{NodeName: node, AutomountServiceAccountToken: ptr.To(false), Containers: []corev1.Container{{Name: "speaker", Image: "herald:lab"}}},
	}
	if _, err := cs.CoreV1().Pods(lab.SystemNamespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the speaker Pod: %v", err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Pods(lab.SystemNamespace).Delete(context.Background(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	})
	// The rollout: a new template generation, then the old Pod deleted (with
	// no kubelet it stays Terminating).
	ds.Spec.Template.Annotations = map[string]string{"kubectl.kubernetes.io/restartedAt": time.Now().Format(time.RFC3339)}
	if ds, err = cs.AppsV1().DaemonSets(lab.SystemNamespace).Update(ctx, ds, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("updating the DaemonSet: %v", err)
	}
	if err := cs.CoreV1().Pods(lab.SystemNamespace).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting the speaker Pod: %v", err)
	}
	return ds, pod.Name
}

// watchRouteChanges polls the router's kernel route for prefix every 5 ms from
// now on; the function it returns stops and says how many times its nexthops
// changed, and to what.
func watchRouteChanges(l *lab.Lab, prefix interface{ String() string }) func() (int, []string) {
	stop := make(chan struct{})
	done := make(chan struct{})
	var seen []string
	go func() {
		defer close(done)
		last := ""
		for {
			select {
			case <-stop:
				return
			default:
			}
			hops, err := l.RouterRoute(context.Background(), hostPrefix(strings.TrimSuffix(strings.TrimSuffix(prefix.String(), "/32"), "/128")))
			if err == nil {
				names := nexthopNodes(l, hops)
				slices.Sort(names)
				cur := strings.Join(names, ",")
				if last != "" && cur != last {
					seen = append(seen, cur)
				}
				last = cur
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return func() (int, []string) {
		close(stop)
		<-done
		return len(seen), seen
	}
}
