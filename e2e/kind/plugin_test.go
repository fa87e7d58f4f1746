//go:build kind

package kind

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/testpoll"
	"github.com/heraldlb/herald/kubectl-herald/doctor"
)

// updateGolden rewrites testdata/plugin/*.golden from the run instead of
// comparing. hack/kind-e2e.sh runs every test; TestPlugin alone, on the cluster
// hack/kind-prepare.sh made (it prints the kubeconfig's path):
//
//	HERALD_KIND_KUBECONFIG=/var/cache/herald/kind-herald.kubeconfig \
//	KUBECTL=/var/cache/herald/kind-bin/kubectl HERALD_UPDATE_GOLDEN=1 \
//	go test -tags kind -count=1 -run TestPlugin -v ./e2e/kind/
//
// (or -update-golden after the package). Review the rewritten files by eye.
var updateGolden = flag.Bool("update-golden", os.Getenv("HERALD_UPDATE_GOLDEN") == "1", "rewrite testdata/plugin/*.golden with this run's output")

// pluginNS holds TestPlugin's Services and backends.
const pluginNS = "herald-plugin"

// Where TestPlugin's pools lie, counted back from the end of the kind subnet:
// clear of TestKind's pool (the last 63) and BenchmarkKind's (1023 to 424).
var pluginPools = []struct {
	name           string
	fromEnd, count int
}{
	{"plugin-nsonly", 90, 2},
	{"plugin-edge", 86, 2},
	{"plugin-small", 80, 1},
	{"plugin-shared", 78, 6},
}

// plugin runs the real kubectl-herald binary against the kind cluster.
type plugin struct {
	c   *cluster
	bin string
	// masks turn what differs from run to run or cluster to cluster (the kind
	// subnet's addresses) into placeholders, in order.
	masks []mask
}

type mask struct{ from, to string }

func (p *plugin) run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(p.bin, append([]string{"--kubeconfig", p.c.kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("kubectl-herald %q: %v", args, err)
	}
	if stderr.Len() > 0 {
		t.Logf("kubectl-herald %q stderr: %s", args, stderr.String())
	}
	return stdout.String(), code
}

var (
	// "(Announced, 3m ago)" in a condition.
	conditionAge = regexp.MustCompile(`\((\w+), [0-9a-z<>]+ ago\)`)
	cellGap      = regexp.MustCompile(` {2,}`)
	leaderName   = regexp.MustCompile(`leader herald-controller-\S+`)
)

// maskText applies the plugin's masks and any extra ones (node names where the
// elected node is not deterministic), then the ages and Event counts, and, in
// status reports, realigns the tables so that a placeholder of another width
// than what it hides changes no padding. (The doctor's report has no table, and
// the pools table has no masked cell.)
func (p *plugin) maskText(s string, status bool, extra ...mask) string {
	for _, m := range slices.Concat(extra, p.masks) {
		s = strings.ReplaceAll(s, m.from, m.to)
	}
	s = conditionAge.ReplaceAllString(s, "($1, <age> ago)")
	s = leaderName.ReplaceAllString(s, "leader <controller pod>")
	if !status {
		return s
	}
	return realign(s)
}

// realign re-renders every table of a kubectl herald text report (runs of
// lines with the same indentation whose cells are two or more spaces apart),
// as render's tabwriter does, after replacing the LAST SEEN cell of each Event
// with <age> (and dropping its count).
func realign(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	var out []string
	var group [][]string
	groupIndent := ""
	section := ""
	flush := func() {
		if len(group) == 0 {
			return
		}
		var b bytes.Buffer
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, cells := range group {
			fmt.Fprintln(tw, groupIndent+strings.Join(cells, "\t"))
		}
		_ = tw.Flush()
		for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
			out = append(out, strings.TrimRight(l, " "))
		}
		group = nil
	}
	for _, l := range lines {
		body := strings.TrimLeft(l, " ")
		indent := l[:len(l)-len(body)]
		if indent == "" && strings.HasSuffix(body, ":") {
			section = body
		}
		cells := cellGap.Split(body, -1)
		if len(cells) < 2 {
			flush()
			out = append(out, l)
			continue
		}
		if section == "Events:" && indent != "" && cells[0] != "LAST SEEN" {
			cells[0] = "<age>"
		}
		if len(group) > 0 && indent != groupIndent {
			flush()
		}
		groupIndent = indent
		group = append(group, cells)
	}
	flush()
	return strings.Join(out, "\n") + "\n"
}

// golden compares text with testdata/plugin/name.golden, or writes it there
// under -update-golden.
func golden(t *testing.T, name, text string) bool {
	t.Helper()
	path := filepath.Join("testdata", "plugin", name+".golden")
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s:\n%s", path, text)
		return true
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden (HERALD_UPDATE_GOLDEN=1 writes it): %v", err)
	}
	if d := cmp.Diff(string(want), text); d != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, d)
		return false
	}
	return true
}

// settled runs the plugin until its masked output has stayed the same for 3 s
// (the controller's and speakers' Events and conditions arrive on their own
// time), or, when comparing, until it equals the golden; then compares or
// writes it. It returns the last masked output.
func (p *plugin) settled(t *testing.T, name string, wantCode int, args []string, extra ...mask) string {
	t.Helper()
	path := filepath.Join("testdata", "plugin", name+".golden")
	want, _ := os.ReadFile(path)
	var last string
	var code int
	since := time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, c := p.run(t, args...)
		masked := p.maskText(out, args[0] == "status", extra...)
		if masked != last || c != code {
			last, code, since = masked, c, time.Now()
		}
		if !*updateGolden && masked == string(want) && c == wantCode {
			break
		}
		if *updateGolden && c == wantCode && time.Since(since) > 3*time.Second {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if code != wantCode {
		t.Errorf("kubectl herald %s: exit status %d; want %d", strings.Join(args, " "), code, wantCode)
	}
	golden(t, name, last)
	return last
}

// ipFromEnd is the address n before the end of the kind subnet.
func (c *cluster) ipFromEnd(n int) netip.Addr {
	r := c.poolRange(n, 1)
	a, _ := netip.ParseAddr(r[:strings.Index(r, "-")])
	return a
}

func (c *cluster) waitAnnounced(t testing.TB, ns, name string, within time.Duration, ok func(*metav1.Condition) bool) *metav1.Condition {
	t.Helper()
	var cond *metav1.Condition
	testpoll.Until(t, within, "the Announced condition of "+ns+"/"+name, func() (bool, string) {
		cond = c.condition(t, ns, name, heraldv1.ConditionAnnounced)
		if cond == nil {
			return false, "none"
		}
		return ok(cond), fmt.Sprintf("%s %s: %s", cond.Status, cond.Reason, cond.Message)
	})
	return cond
}

func (c *cluster) ingressIn(t testing.TB, ns, name string) []string {
	t.Helper()
	s, err := c.cs.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, ing := range s.Status.LoadBalancer.Ingress {
		ips = append(ips, ing.IP)
	}
	return ips
}

func (c *cluster) waitIPIn(t testing.TB, ns, name string) string {
	t.Helper()
	var ips []string
	testpoll.Until(t, 30*time.Second, "an address on Service "+ns+"/"+name, func() (bool, string) {
		ips = c.ingressIn(t, ns, name)
		return len(ips) > 0, fmt.Sprint(ips)
	})
	return ips[0]
}

// pluginService is a LoadBalancer Service in pluginNS.
func pluginService(name, app string, port int, local bool, labels, annotations map[string]string) string {
	etp := "Cluster"
	if local {
		etp = "Local"
	}
	meta := ""
	for _, kv := range []struct {
		key string
		m   map[string]string
	}{{"labels", labels}, {"annotations", annotations}} {
		if len(kv.m) == 0 {
			continue
		}
		meta += "\n  " + kv.key + ":"
		keys := make([]string, 0, len(kv.m))
		for k := range kv.m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			meta += fmt.Sprintf("\n    %s: %q", k, kv.m[k])
		}
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %s
  namespace: %s%s
spec:
  type: LoadBalancer
  externalTrafficPolicy: %s
  selector: {app: %s}
  ports: [{port: %d, targetPort: 8080}]
`, name, pluginNS, meta, etp, app, port)
}

// conditionLog watches a Service and records when its Announced condition
// changed, as seen by the watch.
type conditionLog struct {
	mu      sync.Mutex
	changes []conditionChange
	stop    context.CancelFunc
	done    chan struct{}
}

type conditionChange struct {
	at                      time.Time
	status, reason, message string
}

func (c *cluster) watchAnnounced(t testing.TB, ns, name string) *conditionLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := c.cs.CoreV1().Services(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	l := &conditionLog{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		defer w.Stop()
		var last conditionChange
		for ev := range w.ResultChan() {
			at := time.Now()
			if ev.Type != watch.Added && ev.Type != watch.Modified {
				continue
			}
			s, ok := ev.Object.(*corev1.Service)
			if !ok {
				continue
			}
			for _, cond := range s.Status.Conditions {
				if cond.Type != heraldv1.ConditionAnnounced {
					continue
				}
				cur := conditionChange{at: at, status: string(cond.Status), reason: cond.Reason, message: cond.Message}
				if cur.status != last.status || cur.reason != last.reason || cur.message != last.message {
					l.mu.Lock()
					l.changes = append(l.changes, cur)
					l.mu.Unlock()
					last = cur
				}
			}
		}
	}()
	return l
}

// first returns the first recorded change accepted by ok.
func (l *conditionLog) first(ok func(conditionChange) bool) (conditionChange, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ch := range l.changes {
		if ok(ch) {
			return ch, true
		}
	}
	return conditionChange{}, false
}

func (l *conditionLog) close() {
	l.stop()
	<-l.done
}

// TestPlugin runs the kubectl-herald binary, built from this tree, against herald
// installed from its image and install.yaml on the kind cluster, and compares
// its text reports with testdata/plugin/*.golden (ages, Event counts, the kind
// subnet's addresses and, where the election decides, node names masked): an
// assigned Service, a pending one three pools turn down for three reasons, a
// shared address, an externalTrafficPolicy Local Service without endpoints, a
// failover, and the doctor on a healthy cluster and on two misconfigurations.
func TestPlugin(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	workers := c.workers()
	if len(workers) < 2 {
		t.Fatalf("workers %v: the failover needs two", workers)
	}

	// herald as shipped; the cluster-wide herald objects other tests left
	// behind would change every pool list and every count, so they go.
	c.install(t)
	_, _ = c.kubectl("delete", "namespace", pluginNS, "--ignore-not-found", "--wait", "--timeout", "2m")
	c.mustKubectl(t, "delete", "ippools,l2announcements,bgpannouncements,bgppeers", "--all", "--wait", "--timeout", "1m")
	c.mustKubectl(t, "create", "namespace", pluginNS)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.kubectl("-n", "herald-system", "logs", "-l", "app.kubernetes.io/component=speaker", "--tail", "30", "--prefix")
			t.Logf("speaker logs:\n%s", out)
		}
		_, _ = c.kubectl("delete", "namespace", pluginNS, "--ignore-not-found", "--wait=false")
		_, _ = c.kubectl("delete", "ippools,l2announcements", "-l", "herald.io/test=plugin", "--ignore-not-found")
	})

	dir := t.TempDir()
	p := &plugin{c: c, bin: filepath.Join(dir, "kubectl-herald")}
	build := exec.Command("go", "build", "-o", p.bin, "./kubectl-herald")
	build.Dir = c.repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building kubectl-herald: %v\n%s", err, out)
	}
	var poolNames []string
	for _, pl := range pluginPools {
		first := c.ipFromEnd(pl.fromEnd)
		for i, a := 0, first; i < pl.count; i, a = i+1, a.Next() {
			p.masks = append(p.masks, mask{a.String(), fmt.Sprintf("<%s:%d>", pl.name, i)})
		}
		poolNames = append(poolNames, pl.name)
	}
	// Replace longer addresses first, so that 172.18.255.17 never eats the
	// front of 172.18.255.170.
	slices.SortStableFunc(p.masks, func(a, b mask) int { return len(b.from) - len(a.from) })
	poolYAML := func(name, spec string) string {
		for _, pl := range pluginPools {
			if pl.name == name {
				spec = fmt.Sprintf("addresses: [%q]\n", c.poolRange(pl.fromEnd, pl.count)) + spec
			}
		}
		return fmt.Sprintf("apiVersion: herald.io/v1alpha1\nkind: IPPool\nmetadata: {name: %s, labels: {herald.io/test: plugin}}\nspec:\n%s",
			name, "  "+strings.ReplaceAll(strings.TrimSuffix(spec, "\n"), "\n", "\n  ")+"\n")
	}
	c.apply(t, poolYAML("plugin-nsonly", "allocation: {namespaces: [payments], priority: 1}")+"---\n"+
		poolYAML("plugin-edge", "allocation: {serviceSelector: {matchLabels: {tier: edge}}}")+"---\n"+
		poolYAML("plugin-small", "")+"---\n"+
		fmt.Sprintf("apiVersion: herald.io/v1alpha1\nkind: L2Announcement\nmetadata: {name: plugin-l2, labels: {herald.io/test: plugin}}\nspec:\n  ipPools: [%s]\n", strings.Join(poolNames, ", ")))
	workerMask := func(to string) []mask {
		// herald-worker2 before herald-worker, which is its prefix.
		ms := slices.Clone(workers)
		slices.SortFunc(ms, func(a, b string) int { return len(b) - len(a) })
		var out []mask
		for _, w := range ms {
			out = append(out, mask{w, to})
		}
		return out
	}
	isTrue := func(cond *metav1.Condition) bool { return cond.Status == metav1.ConditionTrue }

	// The Cluster Services' backend, as users have one.
	c.apply(t, c.backendIn(pluginNS, "web", 2, ""))

	t.Run("status: assigned", func(t *testing.T) {
		c.apply(t, pluginService("taker", "web", 80, false, nil, nil))
		c.waitIPIn(t, pluginNS, "taker")
		c.waitAnnounced(t, pluginNS, "taker", 30*time.Second, isTrue)
		// Which worker the election picks is not fixed: mask it.
		p.settled(t, "status_assigned", 0, []string{"status", "-n", pluginNS, "taker"}, workerMask("<node>")...)
	})

	t.Run("status: pending, three pools rejected for three reasons", func(t *testing.T) {
		c.apply(t, pluginService("api", "web", 80, false, nil, nil))
		testpoll.Until(t, 30*time.Second, "PoolExhausted on Service api", func() (bool, string) {
			s, err := c.cs.CoreV1().Services(pluginNS).Get(ctx, "api", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			for _, cond := range s.Status.Conditions {
				if cond.Type == heraldv1.ConditionIPAllocated {
					return cond.Status == metav1.ConditionFalse && cond.Reason == "PoolExhausted", cond.Reason + ": " + cond.Message
				}
			}
			return false, "no condition"
		})
		out := p.settled(t, "status_pending", 0, []string{"status", pluginNS + "/api"}, workerMask("<node>")...)
		for _, want := range []string{"plugin-nsonly", "plugin-edge", "plugin-small"} {
			if !regexp.MustCompile(`(?m)^  ` + want + ` +rejected `).MatchString(out) {
				t.Errorf("pool %s is not shown rejected:\n%s", want, out)
			}
		}
	})

	// Pools that are not picked automatically from here on: the pending
	// Service's report above stays what it was.
	c.apply(t, poolYAML("plugin-shared", "autoAssign: false"))
	pinned := map[string]string{heraldv1.AnnotationPool: "plugin-shared"}

	t.Run("status: a shared address", func(t *testing.T) {
		share := map[string]string{heraldv1.AnnotationPool: "plugin-shared", heraldv1.AnnotationSharingKey: "web"}
		c.apply(t, pluginService("shared-http", "web", 80, false, nil, share))
		ip := c.waitIPIn(t, pluginNS, "shared-http")
		c.apply(t, pluginService("shared-alt", "web", 8080, false, nil, share))
		testpoll.Until(t, 30*time.Second, "shared-alt on the address of shared-http", func() (bool, string) {
			got := c.ingressIn(t, pluginNS, "shared-alt")
			return slices.Equal(got, []string{ip}), fmt.Sprint(got)
		})
		c.waitAnnounced(t, pluginNS, "shared-alt", 30*time.Second, isTrue)
		p.settled(t, "status_shared", 0, []string{"status", "-n", pluginNS, "shared-alt"}, workerMask("<node>")...)
	})

	t.Run("status: externalTrafficPolicy Local without endpoints, then with one", func(t *testing.T) {
		c.apply(t, pluginService("local", "local-backend", 80, true, nil, pinned))
		c.waitIPIn(t, pluginNS, "local")
		c.waitAnnounced(t, pluginNS, "local", 30*time.Second, func(cond *metav1.Condition) bool {
			return cond.Status == metav1.ConditionFalse && cond.Reason == heraldv1.AnnouncedReasonNoReadyEndpoint
		})
		p.settled(t, "status_local_no_endpoints", 0, []string{"status", "-n", pluginNS, "local"})

		// A ready endpoint appears: the condition turns True, naming its node.
		target := workers[len(workers)-1]
		conds := c.watchAnnounced(t, pluginNS, "local")
		defer conds.close()
		ready := c.watchReadyEndpoint(t, pluginNS, "local")
		c.apply(t, c.backendIn(pluginNS, "local-backend", 1, target))
		var readyAt time.Time
		select {
		case readyAt = <-ready:
		case <-time.After(2 * time.Minute):
			t.Fatal("no ready endpoint of Service local within 2 minutes")
		}
		var announced conditionChange
		testpoll.Until(t, 15*time.Second, "Announced True on Service local", func() (bool, string) {
			var ok bool
			announced, ok = conds.first(func(ch conditionChange) bool { return ch.status == "True" })
			return ok, ""
		})
		took := announced.at.Sub(readyAt)
		t.Logf("bench-hint: kind: Local Service, ready endpoint in its EndpointSlice → Announced True: %s (%q)", ms(took), announced.message)
		if took > 1500*time.Millisecond {
			t.Errorf("Announced turned True %v after the endpoint was ready; want about a second at most", took)
		}
		if !strings.Contains(announced.message, target) {
			t.Errorf("Announced %q does not name %s, the endpoint's node", announced.message, target)
		}
		p.settled(t, "status_local_ready", 0, []string{"status", "-n", pluginNS, "local"})
	})

	t.Run("pools", func(t *testing.T) {
		p.settled(t, "pools", 0, []string{"pools"})
	})

	t.Run("doctor: healthy", func(t *testing.T) {
		p.settled(t, "doctor_healthy", 0, []string{"doctor"})
		out, code := p.run(t, "doctor", "-o", "json")
		var r doctor.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 {
			t.Fatalf("doctor -o json: exit %d, %v:\n%s", code, err, out)
		}
		var names []string
		for _, ch := range r.Checks {
			names = append(names, ch.Name)
			if ch.Status != doctor.StatusOK {
				t.Errorf("doctor -o json: %s is %s: %s", ch.Name, ch.Status, ch.Message)
			}
		}
		want := []string{doctor.CheckCRDs, doctor.CheckController, doctor.CheckSpeakers, doctor.CheckVersions, doctor.CheckKubeProxy,
			doctor.CheckNodeAddresses, doctor.CheckPoolOverlap, doctor.CheckMemberlist, doctor.CheckBGPSessions}
		if !slices.Equal(names, want) {
			t.Errorf("doctor -o json checks %v; want %v", names, want)
		}
	})

	t.Run("doctor: a pool holding a node's address", func(t *testing.T) {
		victim := workers[0]
		nodeIP := c.nodes[victim].IP.String()
		c.apply(t, fmt.Sprintf("apiVersion: herald.io/v1alpha1\nkind: IPPool\nmetadata: {name: plugin-nodeaddr, labels: {herald.io/test: plugin}}\nspec:\n  addresses: [%q]\n  autoAssign: false\n", nodeIP))
		defer func() { _, _ = c.kubectl("delete", "ippool", "plugin-nodeaddr", "--ignore-not-found") }()
		out := p.settled(t, "doctor_node_address", 1, []string{"doctor"}, mask{nodeIP, "<" + victim + " InternalIP>"})
		if !strings.Contains(out, "[FAIL] node-addresses") || !strings.Contains(out, victim) {
			t.Errorf("doctor does not fail node-addresses naming %s:\n%s", victim, out)
		}
	})

	t.Run("doctor: kube-proxy in IPVS mode without strictARP", func(t *testing.T) {
		// kubeadm's ConfigMap; kube-proxy reads it at start only, so the edit
		// leaves the running proxies (and traffic) alone. Restored before the
		// failover below, which restarts a node's kube-proxy.
		cms := c.cs.CoreV1().ConfigMaps("kube-system")
		cm, err := cms.Get(ctx, "kube-proxy", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		orig := cm.Data["config.conf"]
		restored := false
		restore := func() {
			if restored {
				return
			}
			cur, err := cms.Get(context.Background(), "kube-proxy", metav1.GetOptions{})
			if err == nil {
				cur.Data["config.conf"] = orig
				_, err = cms.Update(context.Background(), cur, metav1.UpdateOptions{})
			}
			if err != nil {
				t.Errorf("restoring kube-system/kube-proxy: %v", err)
				return
			}
			restored = true
		}
		t.Cleanup(restore)
		conf := regexp.MustCompile(`(?m)^mode:.*$`).ReplaceAllString(orig, "mode: ipvs")
		conf = regexp.MustCompile(`(?m)^(\s+)strictARP:.*$`).ReplaceAllString(conf, "${1}strictARP: false")
		if !strings.Contains(conf, "mode: ipvs") || !strings.Contains(conf, "strictARP: false") {
			t.Fatalf("kube-proxy's config.conf has no mode or strictARP line to edit:\n%s", orig)
		}
		cm.Data["config.conf"] = conf
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		out := p.settled(t, "doctor_kube_proxy", 1, []string{"doctor"})
		if !strings.Contains(out, "[FAIL] kube-proxy") {
			t.Errorf("doctor does not fail kube-proxy:\n%s", out)
		}
		restore()
	})

	t.Run("status: failover", func(t *testing.T) {
		c.apply(t, pluginService("failover", "web", 80, false, nil, pinned))
		ip := c.waitIPIn(t, pluginNS, "failover")
		res, err := newResolver(c)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Close()
		owner := c.waitOwner(t, ip, 15*time.Second, func(n string) bool { return slices.Contains(workers, n) })
		c.waitAnnounced(t, pluginNS, "failover", 15*time.Second, func(cond *metav1.Condition) bool {
			return cond.Status == metav1.ConditionTrue && strings.Contains(cond.Message, owner)
		})
		conds := c.watchAnnounced(t, pluginNS, "failover")
		defer conds.close()
		killed, killDone := c.killNode(owner)
		restarted := false
		restart := func() {
			if restarted {
				return
			}
			restarted = true
			if err := killDone(); err != nil {
				t.Error(err)
			}
			c.restartNode(t, owner)
		}
		t.Cleanup(restart)
		var newOwner string
		var visible time.Time
		for {
			if n, _ := res.owner(ip, 20*time.Millisecond); n != "" && n != owner {
				visible, newOwner = time.Now(), n
				break
			}
			if time.Since(killed) > 30*time.Second {
				t.Fatalf("no other node answers for %s within 30 s of stopping %s", ip, owner)
			}
		}
		var moved conditionChange
		testpoll.Until(t, 30*time.Second, "Announced naming "+newOwner, func() (bool, string) {
			var ok bool
			moved, ok = conds.first(func(ch conditionChange) bool {
				return ch.status == "True" && strings.Contains(ch.message, newOwner) && !strings.Contains(ch.message, owner)
			})
			return ok, ""
		})
		took := moved.at.Sub(visible)
		t.Logf("bench-hint: kind: node %s stopped: %s answered from %s after %s; Announced named it %s after that (%q)",
			owner, ip, newOwner, ms(visible.Sub(killed)), ms(took), moved.message)
		conds.mu.Lock()
		for _, ch := range conds.changes {
			t.Logf("  Announced at +%s: %s %s: %s", ms(ch.at.Sub(killed)), ch.status, ch.reason, ch.message)
		}
		conds.mu.Unlock()
		if took > 2*time.Second {
			t.Errorf("Announced named the new node %v after the failover was visible; want about 2 s at most", took)
		}
		p.settled(t, "status_failover", 0, []string{"status", "-n", pluginNS, "failover"},
			mask{owner, "<stopped node>"}, mask{newOwner, "<new node>"})
		restart()
	})
}

// watchReadyEndpoint watches the EndpointSlices of a Service and sends the time
// a ready endpoint first shows.
func (c *cluster) watchReadyEndpoint(t testing.TB, ns, svc string) <-chan time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	w, err := c.cs.DiscoveryV1().EndpointSlices(ns).Watch(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ch := make(chan time.Time, 1)
	go func() {
		defer cancel()
		defer w.Stop()
		for ev := range w.ResultChan() {
			at := time.Now()
			es, ok := ev.Object.(*discoveryv1.EndpointSlice)
			if !ok {
				continue
			}
			for _, e := range es.Endpoints {
				if e.Conditions.Ready != nil && *e.Conditions.Ready {
					ch <- at
					return
				}
			}
		}
	}()
	return ch
}
