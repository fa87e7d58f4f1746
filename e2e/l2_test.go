//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/internal/testevents"
	"github.com/heraldlb/herald/internal/testpoll"
)

// holdDown is the speakers' hold-down in the lab: short, so tests can watch a
// returning node take its addresses back.
const holdDown = 4 * time.Second

// heraldLab brings up the lab with the controller and a speaker per node, built
// from this tree, and the example pool and L2Announcement applied.
func heraldLab(t testing.TB) *lab.Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the e2e lab needs root")
	}
	root, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	for _, cmd := range []string{"controller", "speaker"} {
		build := exec.Command("go", "build", "-o", filepath.Join(bin, "herald-"+cmd), "./"+cmd)
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", cmd, err, out)
		}
	}
	cfg := lab.Config{
		Logf:             t.Logf,
		ControllerBinary: filepath.Join(bin, "herald-controller"),
		SpeakerBinary:    filepath.Join(bin, "herald-speaker"),
		SpeakerArgs:      []string{"--hold-down=" + holdDown.String(), "--log-level=debug"},
	}
	// Registered before Up, so a lab that fails half-built goes too.
	var l *lab.Lab
	t.Cleanup(func() {
		if t.Failed() && l != nil {
			// Keep the processes' logs: Down removes the state directory.
			keep := filepath.Join(os.TempDir(), "herald-e2e-logs")
			_ = os.RemoveAll(keep)
			if out, err := exec.Command("cp", "-r", filepath.Dir(l.LogPath("controller")), keep).CombinedOutput(); err != nil {
				t.Logf("keeping logs: %v: %s", err, out)
			} else {
				t.Logf("process logs kept in %s", keep)
			}
		}
		if err := lab.Down(cfg); err != nil {
			t.Errorf("tearing the lab down: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if l, err = lab.Up(ctx, cfg); err != nil {
		t.Fatalf("bringing the lab up: %v", err)
	}
	if out, err := l.Kubectl("apply", "-f", filepath.Join(root, "manifests", "examples", "l2.yaml")); err != nil {
		t.Fatalf("applying the example pool: %v\n%s", err, out)
	}
	return l
}

// whoamiService creates pods (one per named node) and a dual-stack LoadBalancer
// Service in front of them, and returns the Service's addresses once assigned.
func whoamiService(t testing.TB, l *lab.Lab, ns, name string, local bool, nodes ...string) []string {
	t.Helper()
	return whoamiServiceFrom(t, l, "", ns, name, local, nodes...)
}

// whoamiServiceFrom is whoamiService with the Service asking for a pool (annotation
// herald.io/pool) unless pool is empty.
func whoamiServiceFrom(t testing.TB, l *lab.Lab, pool, ns, name string, local bool, nodes ...string) []string {
	t.Helper()
	ctx := context.Background()
	cs := l.Client()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	var pods []string
	for i, node := range nodes {
		p := fmt.Sprintf("%s-%d", name, i+1)
		if _, err := l.AddPod(ctx, node, p); err != nil {
			t.Fatal(err)
		}
		pods = append(pods, p)
	}
	createService(ctx, t, cs, ns, name, corev1.ServiceTypeLoadBalancer, func(s *corev1.Service) {
		if pool != "" {
			s.Annotations = map[string]string{heraldv1.AnnotationPool: pool}
		}
	})
	if local {
		updateService(t, cs, ns, name, func(s *corev1.Service) {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		})
	}
	if err := l.SetEndpoints(ctx, name, ns, pods...); err != nil {
		t.Fatal(err)
	}
	var ips []string
	testpoll.Until(t, 20*time.Second, "addresses on "+name, func() (bool, string) {
		s, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ips = nil
		for _, ing := range s.Status.LoadBalancer.Ingress {
			ips = append(ips, ing.IP)
		}
		return len(ips) == 2, fmt.Sprint(ips)
	})
	return ips
}

// url is http://ip/ with IPv6 bracketed.
func url(ip string) string {
	if strings.Contains(ip, ":") {
		return "http://[" + ip + "]/"
	}
	return "http://" + ip + "/"
}

// announcer returns the node whose latest Announcing Event names the Service.
func announcer(t testing.TB, cs kubernetes.Interface, ns, name string) string {
	t.Helper()
	node, err := testevents.Announcer(context.Background(), cs, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return node
}

// neighMAC returns the MAC the client's neighbour table holds for ip.
func neighMAC(l *lab.Lab, ip string) string {
	out, _ := l.Exec(lab.NSClient, "ip", "neigh", "show", ip)
	f := strings.Fields(out)
	for i := range f {
		if f[i] == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

func nodeOfMAC(l *lab.Lab, mac string) string {
	for _, n := range l.Nodes() {
		if strings.EqualFold(n.MAC.String(), mac) {
			return n.Name
		}
	}
	return ""
}

var anyWhoami = regexp.MustCompile(`^pod=\S+ node=node[0-9]+\n$`)

// expectReply curls u from the client until a pod answers, for at most 15 s.
func expectReply(t testing.TB, l *lab.Lab, u string) {
	t.Helper()
	expectReplyFrom(t, l, lab.NSClient, u)
}

// expectReplyFrom is expectReply from namespace ns.
func expectReplyFrom(t testing.TB, l *lab.Lab, ns, u string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		body, err := l.Curl(ns, u)
		if err == nil && anyWhoami.MatchString(body) {
			return
		}
		if err == nil {
			err = fmt.Errorf("unexpected reply %q", body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("curl %s: %v", u, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// servedBy curls ip until it answers and returns the node the client's neighbour
// entry points at.
func servedBy(t testing.TB, l *lab.Lab, ip string) string {
	t.Helper()
	expectReply(t, l, url(ip))
	return nodeOfMAC(l, neighMAC(l, ip))
}

// resolvedOwner flushes the client's neighbour entry for ip, curls it and returns
// the node whose MAC answered the fresh ARP/NDP resolution: the current owner.
func resolvedOwner(t testing.TB, l *lab.Lab, ip string) string {
	t.Helper()
	_, _ = l.Exec(lab.NSClient, "ip", "neigh", "flush", "to", ip)
	return servedBy(t, l, ip)
}

// updateService changes a Service, retrying when the controller's status write got
// there first.
func updateService(t testing.TB, cs kubernetes.Interface, ns, name string, change func(*corev1.Service)) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(s)
		_, err = cs.CoreV1().Services(ns).Update(ctx, s, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("updating Service %s: %v", name, err)
	}
}

// probeLoop curls ip every 20 ms until stop, counting failures and recording when
// the last failure ended.
type probeLoop struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	firstFail  time.Time
	lastFail   time.Time
	ip         string
	start      time.Time
	failures   []string // the first few failures, for the log of a failing test
	// spans are the start and end of every failed request.
	spans    [][2]time.Time
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

func startProbe(t testing.TB, l *lab.Lab, ip string) *probeLoop {
	return startProbeFrom(t, l, lab.NSClient, ip, 400*time.Millisecond)
}

// startProbeFrom is startProbe from namespace ns, each request failing after
// timeout: a request that stalls on a lost ARP answer or a dead next hop takes a
// second or more (TCP retransmits), one delayed by a busy machine far less.
// The loop also stops when the test ends, should it fail before finish.
func startProbeFrom(t testing.TB, l *lab.Lab, ns, ip string, timeout time.Duration) *probeLoop {
	p := &probeLoop{ip: ip, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout+100*time.Millisecond)
			began := time.Now()
			out, err := l.ExecContext(ctx, ns, "curl", "-sS", "--fail", "--max-time", fmt.Sprint(timeout.Seconds()), "-o", "/dev/null", url(ip))
			cancel()
			now := time.Now()
			if err != nil {
				p.failed.Add(1)
				p.mu.Lock()
				if p.firstFail.IsZero() {
					p.firstFail = now
				}
				if len(p.failures) < 5 {
					p.failures = append(p.failures, fmt.Sprintf("at +%v (took %v): %v: %s",
						began.Sub(p.start).Round(time.Millisecond), now.Sub(began).Round(time.Millisecond), err, strings.TrimSpace(string(out))))
				}
				p.lastFail = now
				p.spans = append(p.spans, [2]time.Time{began, now})
				p.mu.Unlock()
			} else {
				p.ok.Add(1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	t.Cleanup(p.halt)
	return p
}

// halt stops the loop and waits for it; it may be called more than once.
func (p *probeLoop) halt() {
	p.stopOnce.Do(func() { close(p.stop) })
	<-p.done
}

func (p *probeLoop) finish(t testing.TB) (ok, failed int64, outage time.Duration) {
	p.halt()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.failures {
		t.Logf("probe of %s failed %s", p.ip, f)
	}
	if !p.firstFail.IsZero() {
		outage = p.lastFail.Sub(p.firstFail)
	}
	return p.ok.Load(), p.failed.Load(), outage
}

// staysOn checks, by fresh resolutions every 300 ms for d, that ip keeps
// answering from owner after what happened.
func staysOn(t *testing.T, l *lab.Lab, ip, owner string, d time.Duration, what string) {
	t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		if n := resolvedOwner(t, l, ip); n != owner {
			t.Fatalf("%s moved from %s to %s %v after %s; want no move", ip, owner, n, time.Since(start).Round(time.Millisecond), what)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// failedAcross returns how many failed requests were not in flight at any of the
// given moments: requests that failed for another reason than being cut in two.
func (p *probeLoop) failedAcross(at []time.Time) (others int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.spans {
		cut := false
		for _, a := range at {
			// The watcher reads the change a little after the kernel made it.
			if !a.Before(s[0]) && !a.After(s[1].Add(20*time.Millisecond)) {
				cut = true
			}
		}
		if !cut {
			others++
		}
	}
	return others
}

func TestLayer2(t *testing.T) {
	l := heraldLab(t)
	cs := l.Client()

	t.Run("reachable on both families from the elected node", func(t *testing.T) {
		ips := whoamiService(t, l, "l2", "web", false, "node1", "node2", "node3")
		for _, ip := range ips {
			node := servedBy(t, l, ip)
			testpoll.Until(t, 10*time.Second, "Announcing Event", func() (bool, string) {
				a := announcer(t, cs, "l2", "web")
				return a == node, fmt.Sprintf("event names %q, client neighbour entry points at %q", a, node)
			})
			t.Logf("%s answered by %s", ip, node)
		}
	})

	t.Run("twelve Services spread over three nodes", func(t *testing.T) {
		ctx := context.Background()
		count := map[string]int{}
		for i := range 12 {
			name := fmt.Sprintf("spread-%d", i)
			createService(ctx, t, cs, "l2", name, corev1.ServiceTypeLoadBalancer)
			if err := l.SetEndpoints(ctx, name, "l2", "web-1"); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 12 {
			name := fmt.Sprintf("spread-%d", i)
			var node string
			testpoll.Until(t, 20*time.Second, "an announcer for "+name, func() (bool, string) {
				node = announcer(t, cs, "l2", name)
				return node != "", "none yet"
			})
			count[node]++
		}
		t.Logf("owners: %v", count)
		for _, n := range l.NodeNames() {
			if count[n] < 2 {
				t.Errorf("%s owns %d of 12 Services; want at least 2 (%v)", n, count[n], count)
			}
		}
		for i := range 12 {
			_ = cs.CoreV1().Services("l2").Delete(ctx, fmt.Sprintf("spread-%d", i), metav1.DeleteOptions{})
		}
	})

	t.Run("kill -9 of the owner moves the address", func(t *testing.T) {
		ip := whoamiService(t, l, "l2", "crash", false, "node1", "node2", "node3")[0]
		owner := servedBy(t, l, ip)
		if err := l.KillSpeaker(owner, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Undone even if the subtest fails first, so later subtests start whole.
		t.Cleanup(func() { _ = l.StartSpeaker(context.Background(), owner) })
		start := time.Now()
		testpoll.Until(t, 10*time.Second, "the client's neighbour entry to leave "+owner, func() (bool, string) {
			n := nodeOfMAC(l, neighMAC(l, ip))
			return n != "" && n != owner, n
		})
		t.Logf("bench-hint: neighbour entry moved off %s %v after kill -9", owner, time.Since(start).Round(time.Millisecond))
		expectReply(t, l, url(ip))
		newOwner := nodeOfMAC(l, neighMAC(l, ip))
		if err := l.StartSpeaker(context.Background(), owner); err != nil {
			t.Fatal(err)
		}
		// The restarted speaker takes nothing back, during its hold-down or
		// after: a second move would reset every connection through it.
		staysOn(t, l, ip, newOwner, holdDown+2*time.Second, owner+"'s speaker restarted")
	})

	t.Run("SIGTERM hands over: the client switches once, nothing fails but a request in flight at the switch", func(t *testing.T) {
		ip := whoamiService(t, l, "l2", "graceful", false, "node1", "node2", "node3")[0]
		servedBy(t, l, ip)
		// Let any restarted speaker settle so the hand-over is the only change.
		time.Sleep(holdDown + time.Second)
		owner := servedBy(t, l, ip)
		nw := watchNeigh(t, l, lab.NSClient, ip)
		p := startProbe(t, l, ip)
		time.Sleep(500 * time.Millisecond)
		if err := l.KillSpeaker(owner, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		// Undone even if the subtest fails first, so later subtests start whole.
		t.Cleanup(func() { _ = l.StartSpeaker(context.Background(), owner) })
		// The speaker is gone (KillSpeaker waits); give the client time to use
		// whatever its neighbour entry says, then count.
		time.Sleep(2 * time.Second)
		ok, failed, _ := p.finish(t)
		changes := nw.Changes()
		t.Logf("hand-over: %d requests, %d failed; the client's neighbour entry changed %d times %v", ok+failed, failed, len(changes), changes)
		// The client switches nodes once. A request in flight at that moment
		// can be reset: its connection's state is in the old node's conntrack,
		// and the new node's kube-proxy does not know it. That is the price of
		// any layer 2 move; herald's part is to move once and lose nothing
		// else.
		if len(changes) != 1 {
			t.Errorf("the client's neighbour entry for %s changed %d times, want once: %v", ip, len(changes), changes)
		}
		var at []time.Time
		for _, c := range changes {
			at = append(at, c.at)
		}
		if others := p.failedAcross(at); others != 0 {
			t.Errorf("%d of %d requests failed during the hand-over that were not in flight when the client switched nodes", others, ok+failed)
		}
		if failed > 1 {
			t.Errorf("%d of %d requests failed during the hand-over; at most the one in flight at the switch may", failed, ok+failed)
		}
		if n := resolvedOwner(t, l, ip); n == owner || n == "" {
			t.Errorf("after %s stopped, a fresh resolution of %s answers from %q", owner, ip, n)
		}
		if err := l.StartSpeaker(context.Background(), owner); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("link cut moves the address once; the node's return moves nothing", func(t *testing.T) {
		ip := whoamiService(t, l, "l2", "cut", false, "node1", "node2", "node3")[0]
		time.Sleep(holdDown + time.Second)
		owner := servedBy(t, l, ip)
		if err := l.CutLink(owner); err != nil {
			t.Fatal(err)
		}
		// Undone even if the subtest fails first, so later subtests start whole.
		t.Cleanup(func() { _ = l.RestoreLink(owner) })
		start := time.Now()
		testpoll.Until(t, 10*time.Second, "the address to answer from another node", func() (bool, string) {
			n := nodeOfMAC(l, neighMAC(l, ip))
			return n != owner && n != "", n
		})
		t.Logf("bench-hint: link cut moved %s off %s in %v", ip, owner, time.Since(start).Round(time.Millisecond))
		expectReply(t, l, url(ip))
		newOwner := nodeOfMAC(l, neighMAC(l, ip))
		if err := l.RestoreLink(owner); err != nil {
			t.Fatal(err)
		}
		// While cut off, the node was alone and claimed everything, which
		// nobody could see. Back, it must give all of it up, and take nothing
		// back: not during its hold-down, not after.
		staysOn(t, l, ip, newOwner, holdDown+3*time.Second, owner+"'s link returned")
	})

	t.Run("gossip cut with the LAN up: nothing moves, and nothing when gossip returns", func(t *testing.T) {
		ip := whoamiService(t, l, "l2", "gossipcut", false, "node1", "node2", "node3")[0]
		time.Sleep(holdDown + time.Second)
		owner := servedBy(t, l, ip)
		nw := watchNeigh(t, l, lab.NSClient, ip)
		p := startProbe(t, l, ip)
		// A firewall on the owner drops memberlist both ways: the others see it
		// fail and it sees them fail, while ARP and traffic flow as before.
		unblock := func() { _ = gossipCut(l, owner, "-D") }
		t.Cleanup(unblock)
		if err := gossipCut(l, owner, "-I"); err != nil {
			t.Fatal(err)
		}
		// Long enough for both sides to declare each other dead and act.
		time.Sleep(4 * time.Second)
		if n := resolvedOwner(t, l, ip); n != owner {
			t.Errorf("during the gossip cut %s answers from %s; want %s, which never stopped serving", ip, n, owner)
		}
		unblock()
		time.Sleep(holdDown)
		if n := resolvedOwner(t, l, ip); n != owner {
			t.Errorf("after the gossip returned %s answers from %s; want %s", ip, n, owner)
		}
		ok, failed, _ := p.finish(t)
		changes := nw.Changes()
		t.Logf("gossip cut and heal: %d requests, %d failed; the client's neighbour entry changed %d times %v", ok+failed, failed, len(changes), changes)
		if failed != 0 {
			t.Errorf("%d of %d requests failed over the gossip cut", failed, ok+failed)
		}
		testpoll.Until(t, 5*time.Second, "a SplitBrain Event", func() (bool, string) {
			evs, err := cs.CoreV1().Events("l2").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=gossipcut,reason=SplitBrain"})
			if err != nil || len(evs.Items) == 0 {
				return false, fmt.Sprint(err)
			}
			t.Logf("event: %s", evs.Items[0].Message)
			return true, ""
		})
	})

	t.Run("externalTrafficPolicy Local announces from the endpoint's node and follows it", func(t *testing.T) {
		ips := whoamiService(t, l, "l2", "local", true, "node3")
		testpoll.Until(t, 10*time.Second, "node3 to answer", func() (bool, string) {
			n := resolvedOwner(t, l, ips[0])
			return n == "node3", n
		})
		ctx := context.Background()
		if _, err := l.AddPod(ctx, "node2", "local-moved"); err != nil {
			t.Fatal(err)
		}
		if err := l.SetEndpoints(ctx, "local", "l2", "local-moved"); err != nil {
			t.Fatal(err)
		}
		testpoll.Until(t, 10*time.Second, "node2 to answer after the endpoint moved", func() (bool, string) {
			n := resolvedOwner(t, l, ips[0])
			return n == "node2", n
		})
	})

	t.Run("an excluded node never announces", func(t *testing.T) {
		ctx := context.Background()
		for _, n := range l.NodeNames() {
			if n == "node1" {
				continue
			}
			patch := []byte(`{"metadata":{"labels":{"node.kubernetes.io/exclude-from-external-load-balancers":""}}}`)
			if _, err := cs.CoreV1().Nodes().Patch(ctx, n, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		defer func() {
			for _, n := range l.NodeNames() {
				patch := []byte(`{"metadata":{"labels":{"node.kubernetes.io/exclude-from-external-load-balancers":null}}}`)
				_, _ = cs.CoreV1().Nodes().Patch(ctx, n, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			}
		}()
		ips := whoamiService(t, l, "l2", "excl", false, "node1", "node2")
		if n := resolvedOwner(t, l, ips[0]); n != "node1" {
			t.Errorf("answered by %s; only node1 is not excluded", n)
		}
	})

	t.Run("a node outside the nodeSelector never announces", func(t *testing.T) {
		ctx := context.Background()
		patch := []byte(`{"metadata":{"labels":{"herald-e2e/announce":"yes"}}}`)
		if _, err := cs.CoreV1().Nodes().Patch(ctx, "node3", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		sel := []byte(`{"spec":{"nodeSelector":{"matchLabels":{"herald-e2e/announce":"yes"}}}}`)
		if out, err := l.Kubectl("patch", "l2announcement", "lan", "--type=merge", "-p", string(sel)); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		defer func() {
			_, _ = l.Kubectl("patch", "l2announcement", "lan", "--type=json", "-p", `[{"op":"remove","path":"/spec/nodeSelector"}]`)
		}()
		ips := whoamiService(t, l, "l2", "selected", false, "node1", "node2", "node3")
		for _, ip := range ips {
			testpoll.Until(t, 10*time.Second, "node3 to answer for "+ip, func() (bool, string) {
				n := resolvedOwner(t, l, ip)
				return n == "node3", n
			})
		}
	})

	t.Run("an address a foreign host answers for is not announced", func(t *testing.T) {
		// The client itself takes 10.77.0.220, the pool's last address, before a
		// Service asks for it.
		if out, err := l.Exec(lab.NSClient, "ip", "addr", "add", "10.77.0.220/32", "dev", "eth0"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		defer l.Exec(lab.NSClient, "ip", "addr", "del", "10.77.0.220/32", "dev", "eth0")
		ctx := context.Background()
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "stolen", Namespace: "l2", Annotations: map[string]string{"herald.io/ips": "10.77.0.220"}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer,
				Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(lab.PodPort)}}},
		}
		if _, err := cs.CoreV1().Services("l2").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		testpoll.Until(t, 15*time.Second, "an IPConflict Event", func() (bool, string) {
			evs, err := cs.CoreV1().Events("l2").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=stolen,reason=IPConflict"})
			if err != nil || len(evs.Items) == 0 {
				return false, fmt.Sprint(err)
			}
			t.Logf("event: %s", evs.Items[0].Message)
			return strings.Contains(evs.Items[0].Message, "not a herald speaker"), evs.Items[0].Message
		})
		if a := announcer(t, cs, "l2", "stolen"); a != "" {
			t.Errorf("%s announces an address another host answers for", a)
		}
	})

	t.Run("API server gone for 30 s: announcements and traffic continue", func(t *testing.T) {
		ip := whoamiService(t, l, "l2", "static", false, "node1", "node2", "node3")[0]
		servedBy(t, l, ip)
		if err := l.StopAPIServer(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := l.StartAPIServer(context.Background()); err != nil {
				t.Errorf("restarting the API server: %v", err)
			}
		}()
		owner := resolvedOwner(t, l, ip)
		// Requests may be slowed, not failed: every process in the lab retries
		// the API server meanwhile, on a machine with two cores.
		p := startProbeFrom(t, l, lab.NSClient, ip, 900*time.Millisecond)
		time.Sleep(30 * time.Second)
		ok, failed, _ := p.finish(t)
		t.Logf("without the API server: %d requests, %d failed", ok+failed, failed)
		if failed != 0 || ok == 0 {
			t.Errorf("%d of %d requests failed while the API server was down", failed, ok+failed)
		}
		// The client's neighbour entry could outlive silent speakers: a fresh
		// resolution proves the owner still answers.
		if now := resolvedOwner(t, l, ip); now != owner {
			t.Errorf("after 30 s without the API server, %s answers for %s; before, %s did", now, ip, owner)
		}
	})
}
