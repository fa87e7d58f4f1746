//go:build kind

package kind

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/testpoll"
)

// poolYAML is the layer 2 setup a user writes for kind: a pool from the end of the
// kind network's subnet, announced on every node.
func (c *cluster) poolYAML() string {
	return fmt.Sprintf(`apiVersion: herald.io/v1alpha1
kind: IPPool
metadata: {name: kind}
spec:
  addresses: [%q]
---
apiVersion: herald.io/v1alpha1
kind: L2Announcement
metadata: {name: kind}
spec:
  ipPools: [kind]
`, c.poolRange(63, 62))
}

func TestKind(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()

	// A run that stopped half-way leaves herald and the test objects behind.
	_, _ = c.kubectl("delete", "namespace", testNS, "--ignore-not-found", "--wait", "--timeout", "2m")
	c.uninstall(t)
	c.ensureNamespace(t)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.kubectl("-n", "herald-system", "get", "pods", "-o", "wide")
			t.Logf("herald pods:\n%s", out)
			out, _ = c.kubectl("-n", "herald-system", "logs", "-l", "app.kubernetes.io/component=speaker", "--tail", "40", "--prefix")
			t.Logf("speaker logs:\n%s", out)
		}
	})

	t.Run("install.yaml as shipped", func(t *testing.T) {
		c.install(t)
		pods, err := c.cs.CoreV1().Pods("herald-system").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		speakers := 0
		for _, p := range pods.Items {
			sa := p.Spec.ServiceAccountName
			if want := "herald-" + p.Labels["app.kubernetes.io/component"]; sa != want {
				t.Errorf("pod %s runs as ServiceAccount %q; want %q", p.Name, sa, want)
			}
			if p.Labels["app.kubernetes.io/component"] == "speaker" {
				speakers++
			}
		}
		if speakers != len(c.nodes) {
			t.Errorf("%d speakers for %d nodes", speakers, len(c.nodes))
		}
	})

	t.Run("least privilege", func(t *testing.T) {
		speaker := "system:serviceaccount:herald-system:herald-speaker"
		controller := "system:serviceaccount:herald-system:herald-controller"
		for _, tc := range []struct {
			as   string
			args string
			want bool
		}{
			{speaker, "list services", true},
			{speaker, "patch bgppeers.herald.io --subresource=status", true},
			{speaker, "update services", false},
			{speaker, "patch services", false},
			{speaker, "update services --subresource=status", false},
			{speaker, "get secrets -n kube-system", false},
			{speaker, "get secrets -n default", false},
			{speaker, "list secrets -A", false},
			{speaker, "create pods", false},
			{controller, "patch services --subresource=status", true},
			{controller, "update services", false},
			{controller, "get secrets -n kube-system", false},
			{controller, "list secrets -A", false},
			{controller, "delete nodes", false},
			{controller, "get configmaps/kube-proxy -n kube-system", true},
			{controller, "get configmaps/coredns -n kube-system", false},
			{controller, "list configmaps -A", false},
		} {
			args := append([]string{"auth", "can-i", "--as", tc.as}, strings.Fields(tc.args)...)
			out, _ := c.kubectl(args...) // can-i exits 1 for "no"
			// The answer is the last line (warnings come first).
			lines := strings.Split(strings.TrimSpace(out), "\n")
			answer := lines[len(lines)-1]
			if got := answer == "yes"; got != tc.want {
				t.Errorf("%s can-i %s = %q; want %v", tc.as, tc.args, answer, tc.want)
			}
		}
	})

	var ip string
	t.Run("pending says why, then an address curl reaches", func(t *testing.T) {
		c.apply(t, c.backend("web", 3, ""))
		c.apply(t, lbService("web", "web", false, nil))
		testpoll.Until(t, 30*time.Second, "the NoPool condition on Service web", func() (bool, string) {
			cond := c.condition(t, testNS, "web", heraldv1.ConditionIPAllocated)
			if cond == nil {
				return false, "no condition"
			}
			return cond.Status == metav1.ConditionFalse && cond.Reason == "NoPool", cond.Reason + ": " + cond.Message
		})
		testpoll.Until(t, 10*time.Second, "an AllocationFailed Event on Service web", func() (bool, string) {
			evs := c.events(t, "web")
			return slices.ContainsFunc(evs, func(e string) bool { return strings.HasPrefix(e, "AllocationFailed:") }), fmt.Sprint(evs)
		})

		c.apply(t, c.poolYAML())
		ip = c.waitIP(t, "web", 30*time.Second)
		expectCurl(t, ip, 60*time.Second)
		owner := c.waitOwner(t, ip, 10*time.Second, anyNode)
		testpoll.Until(t, 10*time.Second, "an Announcing Event naming the ARP owner", func() (bool, string) {
			a := c.announcer(t, "web")
			return a == owner, fmt.Sprintf("event names %q, ARP answered by %q", a, owner)
		})
	})
	if ip == "" {
		t.Fatal("no address to test further with")
	}

	t.Run("a client in a new address's first seconds gets through once kube-proxy has the rules", func(t *testing.T) {
		testFirstSeconds(t, c)
	})

	t.Run("externalTrafficPolicy Local follows the endpoint", func(t *testing.T) {
		w := c.workers()
		target := w[len(w)-1]
		c.apply(t, c.backend("local", 1, target))
		c.apply(t, lbService("local", "local", true, nil))
		lip := c.waitIP(t, "local", 30*time.Second)
		expectCurl(t, lip, 60*time.Second)
		if owner := c.waitOwner(t, lip, 15*time.Second, func(n string) bool { return n == target }); owner != target {
			t.Fatalf("Local Service announced by %s; its only endpoint is on %s", owner, target)
		}
	})

	t.Run("busy nodes: 40 pods per worker, speakers restarted", func(t *testing.T) {
		for _, w := range c.workers() {
			c.apply(t, c.backend("filler-"+w, 40, w))
		}
		for _, w := range c.workers() {
			c.mustKubectl(t, "-n", testNS, "rollout", "status", "deploy/filler-"+w, "--timeout", "6m")
			if n := c.linkCount(t, w); n < 40 {
				t.Errorf("node %s has %d links; want 40 or more", w, n)
			}
		}
		c.mustKubectl(t, "-n", "herald-system", "delete", "pod", "-l", "app.kubernetes.io/component=speaker", "--wait=false")
		time.Sleep(2 * time.Second)
		c.waitHerald(t)
		// A speaker that cannot start crash-loops after being Ready once at most:
		// look again a little later.
		time.Sleep(10 * time.Second)
		pods, err := c.cs.CoreV1().Pods("herald-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=speaker"})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			for _, st := range p.Status.ContainerStatuses {
				if st.RestartCount > 0 || !st.Ready {
					t.Errorf("speaker %s on %s: ready %v, %d restarts", p.Name, p.Spec.NodeName, st.Ready, st.RestartCount)
				}
			}
		}
		expectCurl(t, ip, 30*time.Second)
		c.waitOwner(t, ip, 10*time.Second, anyNode)
	})

	t.Run("speaker rollout: no failed request", func(t *testing.T) {
		expectCurl(t, ip, 30*time.Second)
		// The speakers delete flows left from before kube-proxy had rules for
		// the address; any left would fail requests the rollout did not.
		if n := c.untranslatedFlows(t, ip, "-D"); n > 0 {
			t.Errorf("%d untranslated flows to %s were left on the nodes (deleted now, so that the rollout alone is counted)", n, ip)
		}
		neigh := watchNeighbour(ip)
		p := startProbe(ip, time.Second)
		c.mustKubectl(t, "-n", "herald-system", "rollout", "restart", "ds/herald-speaker")
		c.waitHerald(t)
		time.Sleep(3 * time.Second)
		ok, failed, errs := p.finish()
		switches := neigh()
		excused := inFlightAtSwitch(p.failedSpans(), switches)
		t.Logf("speaker rollout: %d answered, %d failed (%d in flight when the host's neighbour entry changed, %d changes: %s)", ok, failed, excused, len(switches), spansText(switches))
		if failed > int64(excused) || ok == 0 {
			t.Errorf("%d of %d requests failed during the speaker rollout, %d of them not in flight at a neighbour change: %v (failed requests: %s)", failed, ok+failed, failed-int64(excused), errs, spansText(p.failedSpans()))
		}
	})

	t.Run("controller rollout: no address changed", func(t *testing.T) {
		before := map[string][]string{"web": c.ingress(t, "web"), "local": c.ingress(t, "local")}
		c.mustKubectl(t, "-n", "herald-system", "rollout", "restart", "deploy/herald-controller")
		c.waitHerald(t)
		c.apply(t, lbService("after-rollout", "web", false, nil))
		c.waitIP(t, "after-rollout", 60*time.Second)
		for name, ips := range before {
			if got := c.ingress(t, name); !slices.Equal(got, ips) {
				t.Errorf("Service %s: %v before the controller rollout, %v after", name, ips, got)
			}
		}
	})

	t.Run("BGP to an FRR router on the kind network", func(t *testing.T) {
		testBGP(t, c)
	})

	t.Run("uninstall and reinstall keep every address", func(t *testing.T) {
		names := []string{"web", "local", "after-rollout"}
		before := map[string][]string{}
		for _, n := range names {
			before[n] = c.ingress(t, n)
		}
		c.uninstall(t)
		for _, check := range [][]string{
			{"get", "namespace", "herald-system"},
			{"get", "crd", "ippools.herald.io"},
			{"get", "clusterrole", "herald-controller"},
			{"get", "clusterrole", "herald-speaker"},
			{"get", "clusterrolebinding", "herald-speaker"},
		} {
			if out, err := c.kubectl(check...); err == nil || !strings.Contains(out, "NotFound") {
				t.Errorf("after uninstall, kubectl %s: %s", strings.Join(check, " "), out)
			}
		}
		c.install(t)
		// The pools went with their CRD: the user applies them again.
		c.apply(t, c.poolYAML())
		time.Sleep(5 * time.Second) // let the new controller settle before looking
		for _, n := range names {
			if got := c.ingress(t, n); !slices.Equal(got, before[n]) {
				t.Errorf("Service %s: %v before uninstalling, %v after reinstalling", n, before[n], got)
			}
		}
		expectCurl(t, ip, 60*time.Second)
	})

	t.Run("node loss: the address answers from another node", func(t *testing.T) {
		// kubeadm labels the control plane exclude-from-external-load-balancers,
		// so a worker answers: killing it leaves the API server up.
		owner := c.waitOwner(t, ip, 10*time.Second, anyNode)
		res, err := newResolver(c)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Close()
		killed, killDone := c.killNode(owner)
		restarted := false
		t.Cleanup(func() {
			if restarted {
				return
			}
			if err := killDone(); err != nil {
				t.Error(err)
			}
			c.restartNode(t, owner)
		})
		var newOwner string
		for {
			if n, _ := res.owner(ip, 20*time.Millisecond); n != "" && n != owner {
				t.Logf("node %s killed: %s answers from %s after %v", owner, ip, n, time.Since(killed).Round(time.Millisecond))
				newOwner = n
				break
			}
			if time.Since(killed) > 20*time.Second {
				t.Fatalf("no other node answers for %s within 20 s of killing %s", ip, owner)
			}
		}
		expectCurl(t, ip, 30*time.Second)

		// The node comes back (container, kubelet, speaker): it takes nothing
		// back, during its hold-down (10 s) or after.
		if err := killDone(); err != nil {
			t.Fatal(err)
		}
		restarted = true
		before, _ := c.speakerRestarts(t, owner)
		started := time.Now()
		c.restartNode(t, owner)
		back := time.Now()
		// The node's containers died with it: the kubelet restarts the speaker
		// once for that. Any more is the speaker crashing while the node comes
		// up (before kube-proxy programs the API server's Service address), and
		// CrashLoopBackOff delaying its return.
		var after int32
		testpoll.Until(t, 30*time.Second, "the API server to show the speaker on "+owner+" ready", func() (bool, string) {
			var ready bool
			after, ready = c.speakerRestarts(t, owner)
			return ready, fmt.Sprintf("%d restarts", after)
		})
		t.Logf("bench-hint: kind: node %s started again: its speaker ready after %v, %d container restarts", owner, back.Sub(started).Round(time.Millisecond), after-before)
		if after-before > 1 {
			t.Errorf("the speaker on %s restarted %d times while its node came back; want 1 (its container died with the node)", owner, after-before)
		}
		for time.Since(back) < 15*time.Second {
			if n, why := res.owner(ip, 200*time.Millisecond); n != newOwner {
				t.Fatalf("%v after %s came back, %s answers from %q (%s); want %s, which took it over", time.Since(back).Round(time.Millisecond), owner, ip, n, why, newOwner)
			}
			time.Sleep(300 * time.Millisecond)
		}
		t.Logf("%s came back; %s stayed on %s for 15 s", owner, ip, newOwner)
	})
}

// speakerRestarts is the restart count of the speaker container on node and
// whether it is ready, as the kubelet last reported them.
func (c *cluster) speakerRestarts(t testing.TB, node string) (int32, bool) {
	t.Helper()
	pods, err := c.cs.CoreV1().Pods("herald-system").List(context.Background(), metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/component=speaker", FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		t.Fatal(err)
	}
	var n int32
	ready := len(pods.Items) == 1
	for _, p := range pods.Items {
		for _, st := range p.Status.ContainerStatuses {
			n += st.RestartCount
			ready = ready && st.Ready
		}
	}
	return n, ready
}

// killNode kills a node container (SIGKILL to its init, so everything on it dies
// at once) and returns when the kill was sent, and a function that waits until
// docker is done with it. `docker kill` returns only once the container has been
// torn down, seconds later on a node with dozens of pods: the caller watches the
// failover meanwhile.
func (c *cluster) killNode(name string) (time.Time, func() error) {
	done := make(chan error, 1)
	at := time.Now()
	go func() {
		out, err := exec.Command("docker", "kill", name).CombinedOutput()
		if err != nil {
			err = fmt.Errorf("docker kill %s: %v: %s", name, err, out)
		}
		done <- err
	}()
	return at, func() error { return <-done }
}

// restartNode starts a killed node container again and waits until its speaker
// is ready (announcing, past its hold-down), so what follows finds the cluster
// whole. The API server's view is no help here: the Node and the speaker pod keep
// their last Ready status for a while after the container died.
func (c *cluster) restartNode(t testing.TB, name string) {
	t.Helper()
	c.docker(t, "start", name)
	ready := "http://" + c.nodes[name].IP.String() + ":7475/readyz"
	client := &http.Client{Timeout: time.Second}
	testpoll.Until(t, 4*time.Minute, "the speaker on restarted node "+name+" to be ready", func() (bool, string) {
		resp, err := client.Get(ready)
		if err != nil {
			return false, err.Error()
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, strings.TrimSpace(string(body))
	})
}
