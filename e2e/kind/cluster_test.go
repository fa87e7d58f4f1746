//go:build kind

// Package kind tests herald the way users run it: herald's image built from its
// Dockerfile, installed by `kubectl apply -f manifests/install.yaml` unchanged, on a
// real kind cluster (kubelets, containerd, a CNI, dozens of pod veths, the pods' own
// ServiceAccount tokens). The cluster is made by hack/kind-e2e.sh (`make e2e-kind`),
// which passes its kubeconfig and image names in the environment.
package kind

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/heraldlb/herald/internal/testevents"
	"github.com/heraldlb/herald/internal/testpoll"
)

// cluster is the kind cluster under test, as the host sees it.
type cluster struct {
	repo       string
	kubeconfig string
	kubectlBin string
	whoami     string // the test backend's image
	cs         kubernetes.Interface
	// nodes are the node containers by name, with their address and MAC on the
	// kind docker network.
	nodes map[string]node
	// bridge is the host's interface on the kind network; subnet its IPv4 subnet.
	bridge string
	subnet netip.Prefix
}

type node struct {
	Name string
	IP   netip.Addr
	MAC  string
}

// The namespace the tests' backends and Services live in.
const testNS = "herald-e2e"

func newCluster(t testing.TB) *cluster {
	t.Helper()
	kubeconfig := os.Getenv("HERALD_KIND_KUBECONFIG")
	if kubeconfig == "" {
		t.Skip("HERALD_KIND_KUBECONFIG is not set: run through `make e2e-kind` (root, docker)")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{
		repo:       repo,
		kubeconfig: kubeconfig,
		kubectlBin: envOr("KUBECTL", filepath.Join(repo, "bin/k8s/kubectl")),
		whoami:     envOr("HERALD_WHOAMI_IMAGE", "herald.local/whoami:dev"),
		nodes:      map[string]node{},
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	if c.cs, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	c.loadNetwork(t)
	return c
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// loadNetwork reads the kind docker network: subnet, host bridge, node addresses.
func (c *cluster) loadNetwork(t testing.TB) {
	t.Helper()
	var nets []struct {
		ID         string
		IPAM       struct{ Config []struct{ Subnet string } }
		Containers map[string]struct {
			Name        string
			MacAddress  string
			IPv4Address string
		}
	}
	if err := json.Unmarshal([]byte(c.docker(t, "network", "inspect", "kind")), &nets); err != nil || len(nets) != 1 {
		t.Fatalf("docker network inspect kind: %v", err)
	}
	n := nets[0]
	c.bridge = "br-" + n.ID[:12]
	for _, cfg := range n.IPAM.Config {
		if p, err := netip.ParsePrefix(cfg.Subnet); err == nil && p.Addr().Is4() {
			c.subnet = p
		}
	}
	for _, ctr := range n.Containers {
		if !strings.HasPrefix(ctr.Name, "herald-") || strings.HasPrefix(ctr.Name, "herald-frr") {
			continue
		}
		p, err := netip.ParsePrefix(ctr.IPv4Address)
		if err != nil {
			t.Fatalf("node %s address %q: %v", ctr.Name, ctr.IPv4Address, err)
		}
		c.nodes[ctr.Name] = node{Name: ctr.Name, IP: p.Addr(), MAC: strings.ToLower(ctr.MacAddress)}
	}
	if !c.subnet.IsValid() || c.subnet.Bits() > 22 || len(c.nodes) < 3 {
		t.Fatalf("kind network: subnet %v (want /22 or larger), nodes %v", c.subnet, c.nodes)
	}
}

// poolRange returns the addresses [from, from+n) counted back from the end of the
// kind subnet, which docker fills from the start.
func (c *cluster) poolRange(fromEnd, n int) string {
	last := c.subnet.Masked().Addr().As4()
	v := uint32(last[0])<<24 | uint32(last[1])<<16 | uint32(last[2])<<8 | uint32(last[3])
	v |= ^uint32(0) >> c.subnet.Bits()
	at := func(x uint32) string {
		return netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)}).String()
	}
	return at(v-uint32(fromEnd)) + "-" + at(v-uint32(fromEnd)+uint32(n)-1)
}

func (c *cluster) docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// kubectl runs kubectl against the cluster and returns its output.
func (c *cluster) kubectl(args ...string) (string, error) {
	return c.kubectlIn("", args...)
}

func (c *cluster) kubectlIn(stdin string, args ...string) (string, error) {
	cmd := exec.Command(c.kubectlBin, append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	cmd.Dir = c.repo
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), err
}

func (c *cluster) mustKubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.kubectl(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (c *cluster) apply(t testing.TB, yaml string) {
	t.Helper()
	if _, err := c.kubectlIn(yaml, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
}

// install applies manifests/install.yaml as the README says, and waits for the
// controller and every speaker to be Ready.
func (c *cluster) install(t testing.TB) {
	t.Helper()
	c.mustKubectl(t, "apply", "-f", "manifests/install.yaml")
	c.mustKubectl(t, "wait", "--for", "condition=established", "--timeout", "60s",
		"crd/ippools.herald.io", "crd/l2announcements.herald.io", "crd/bgppeers.herald.io", "crd/bgpannouncements.herald.io")
	c.waitHerald(t)
}

func (c *cluster) waitHerald(t testing.TB) {
	t.Helper()
	c.mustKubectl(t, "-n", "herald-system", "rollout", "status", "deploy/herald-controller", "--timeout", "4m")
	c.mustKubectl(t, "-n", "herald-system", "rollout", "status", "ds/herald-speaker", "--timeout", "4m")
}

// uninstall deletes what install.yaml created and waits until it is gone.
func (c *cluster) uninstall(t testing.TB) {
	t.Helper()
	if _, err := c.kubectl("delete", "-f", "manifests/install.yaml", "--ignore-not-found", "--wait", "--timeout", "3m"); err != nil {
		t.Fatal(err)
	}
}

// ingress returns a Service's assigned addresses ("" when it has none).
func (c *cluster) ingress(t testing.TB, name string) []string {
	t.Helper()
	s, err := c.cs.CoreV1().Services(testNS).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, ing := range s.Status.LoadBalancer.Ingress {
		ips = append(ips, ing.IP)
	}
	return ips
}

// waitIP waits until the Service has an address and returns it.
func (c *cluster) waitIP(t testing.TB, name string, within time.Duration) string {
	t.Helper()
	var ips []string
	testpoll.Until(t, within, "an address on Service "+name, func() (bool, string) {
		ips = c.ingress(t, name)
		return len(ips) > 0, fmt.Sprint(ips)
	})
	return ips[0]
}

// condition returns the Service's condition of type typ (nil if none).
func (c *cluster) condition(t testing.TB, ns, name, typ string) *metav1.Condition {
	t.Helper()
	s, err := c.cs.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return meta.FindStatusCondition(s.Status.Conditions, typ)
}

// events returns "reason: message" of the Events about a Service.
func (c *cluster) events(t testing.TB, name string) []string {
	t.Helper()
	evs, err := c.cs.CoreV1().Events(testNS).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs.Items {
		out = append(out, e.Reason+": "+e.Message)
	}
	sort.Strings(out)
	return out
}

// announcer returns the node named by the newest Announcing Event of a Service.
func (c *cluster) announcer(t testing.TB, name string) string {
	t.Helper()
	node, err := testevents.Announcer(context.Background(), c.cs, testNS, name)
	if err != nil {
		t.Fatal(err)
	}
	return node
}

var arpReply = regexp.MustCompile(`(?i)reply from \S+ \[([0-9a-f:]{17})\]`)

// arpOwner resolves ip afresh from the host (arping on the kind bridge) and
// returns the node whose MAC answered, or "" with what was seen.
func (c *cluster) arpOwner(ip string) (string, string) {
	out, _ := exec.Command("arping", "-c", "1", "-w", "1", "-I", c.bridge, ip).CombinedOutput()
	m := arpReply.FindStringSubmatch(string(out))
	if m == nil {
		return "", strings.TrimSpace(string(out))
	}
	mac := strings.ToLower(m[1])
	for _, n := range c.nodes {
		if n.MAC == mac {
			return n.Name, mac
		}
	}
	return "", "MAC " + mac + " is no node's"
}

// waitOwner waits until a fresh ARP resolution of ip is answered by a node
// accepted by ok, and returns that node.
func (c *cluster) waitOwner(t testing.TB, ip string, within time.Duration, ok func(string) bool) string {
	t.Helper()
	var owner string
	testpoll.Until(t, within, "an ARP answer for "+ip, func() (bool, string) {
		var seen string
		owner, seen = c.arpOwner(ip)
		return owner != "" && ok(owner), owner + " " + seen
	})
	return owner
}

func anyNode(string) bool { return true }

var whoamiReply = regexp.MustCompile(`^pod=(\S+) node=(\S+)\n$`)

// curl fetches http://ip/ from the host with curl, as a user would; it returns
// the node of the pod that answered.
func curl(ip string, timeout time.Duration) (string, error) {
	out, err := exec.Command("curl", "-sS", "--max-time", fmt.Sprint(timeout.Seconds()), "http://"+ip+"/").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("curl %s: %v: %s", ip, err, out)
	}
	m := whoamiReply.FindStringSubmatch(string(out))
	if m == nil {
		return "", fmt.Errorf("curl %s: unexpected reply %q", ip, out)
	}
	return m[2], nil
}

// expectCurl curls ip until a pod answers.
func expectCurl(t testing.TB, ip string, within time.Duration) {
	t.Helper()
	testpoll.Until(t, within, "a pod answering curl http://"+ip+"/", func() (bool, string) {
		_, err := curl(ip, 2*time.Second)
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// probe sends a request to ip every 20 ms, each on a new connection, until
// stopped, counting answers and failures.
type probe struct {
	ok, failed atomic.Int64
	stop       chan struct{}
	done       sync.WaitGroup
	mu         sync.Mutex
	errs       []string
	spans      [][2]time.Time // start and end of each failed request (the first 50)
}

// failedSpans returns when each failed request started and ended.
func (p *probe) failedSpans() [][2]time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.spans)
}

func startProbe(ip string, timeout time.Duration) *probe {
	p := &probe{stop: make(chan struct{})}
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			start := time.Now()
			resp, err := client.Get("http://" + ip + "/")
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				p.failed.Add(1)
				p.mu.Lock()
				if len(p.errs) < 5 {
					p.errs = append(p.errs, fmt.Sprintf("%s (+%v): %v", start.Format("15:04:05.000"), time.Since(start).Round(time.Millisecond), err))
				}
				if len(p.spans) < 50 {
					p.spans = append(p.spans, [2]time.Time{start, time.Now()})
				}
				p.mu.Unlock()
				continue
			}
			p.ok.Add(1)
		}
	}()
	return p
}

// finish stops the probe and returns its counts and first failures.
func (p *probe) finish() (ok, failed int64, errs []string) {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.done.Wait()
	return p.ok.Load(), p.failed.Load(), p.errs
}

// watchNeighbour polls the host's neighbour entry for ip until the returned
// function is called, which says between which two polls its MAC address
// changed: when the host's requests started going to another node.
func watchNeighbour(ip string) func() [][2]time.Time {
	stop := make(chan struct{})
	done := make(chan [][2]time.Time, 1)
	go func() {
		var switches [][2]time.Time
		last, lastAt := "", time.Time{}
		for {
			select {
			case <-stop:
				done <- switches
				return
			case <-time.After(2 * time.Millisecond):
			}
			// Read before the command runs: the change may have happened
			// any time after the previous poll's start.
			at := time.Now()
			out, err := exec.Command("ip", "neigh", "show", ip).Output()
			if err != nil {
				continue
			}
			f := strings.Fields(string(out))
			mac := ""
			for i := range f {
				if f[i] == "lladdr" && i+1 < len(f) {
					mac = f[i+1]
				}
			}
			if mac == "" {
				continue
			}
			if last != "" && mac != last {
				switches = append(switches, [2]time.Time{lastAt, time.Now()})
			}
			last, lastAt = mac, at
		}
	}()
	return func() [][2]time.Time {
		close(stop)
		return <-done
	}
}

// inFlightAtSwitch counts the failed requests that were in flight when the
// host's neighbour entry changed, at most one per change: such a request's
// connection lives in the old node's conntrack, and its next packets reach the
// new node, which cannot carry it on. No announcer can save it. A change is
// only known to lie between two polls, so a request overlapping that window
// counts.
func inFlightAtSwitch(spans [][2]time.Time, switches [][2]time.Time) int {
	n := 0
	used := make([]bool, len(switches))
	for _, sp := range spans {
		for i, sw := range switches {
			if !used[i] && !sp[1].Before(sw[0]) && !sp[0].After(sw[1]) {
				used[i] = true
				n++
				break
			}
		}
	}
	return n
}

// spansText prints time windows for a failure message.
func spansText(spans [][2]time.Time) string {
	var b strings.Builder
	for i, sp := range spans {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s–%s", sp[0].Format("15:04:05.000"), sp[1].Format("15:04:05.000"))
	}
	return b.String()
}

// ensureNamespace creates the tests' namespace if it is missing.
func (c *cluster) ensureNamespace(t testing.TB) {
	t.Helper()
	_, err := c.cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNS}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// backend is a whoami Deployment of n replicas in testNS (on one node when
// nodeName is set).
func (c *cluster) backend(name string, replicas int, nodeName string) string {
	return c.backendIn(testNS, name, replicas, nodeName)
}

// backendIn is backend in namespace ns.
func (c *cluster) backendIn(ns, name string, replicas int, nodeName string) string {
	selector := ""
	if nodeName != "" {
		selector = fmt.Sprintf("\n      nodeSelector: {kubernetes.io/hostname: %s}", nodeName)
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  replicas: %[3]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:%[5]s
      terminationGracePeriodSeconds: 1
      containers:
      - name: whoami
        image: %[4]s
        imagePullPolicy: Never
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 2}
        resources: {requests: {cpu: 1m, memory: 8Mi}}
`, name, ns, replicas, c.whoami, selector)
}

// lbService is a LoadBalancer Service on port 80 for the pods labelled app=app.
func lbService(name, app string, local bool, annotations map[string]string) string {
	etp := "Cluster"
	if local {
		etp = "Local"
	}
	ann := ""
	for k, v := range annotations {
		ann += fmt.Sprintf("\n    %s: %q", k, v)
	}
	if ann != "" {
		ann = "\n  annotations:" + ann
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
  ports: [{port: 80, targetPort: 8080}]
`, name, testNS, ann, etp, app)
}

// workers returns the worker nodes' names, sorted.
func (c *cluster) workers() []string {
	var out []string
	for n := range c.nodes {
		if !strings.HasSuffix(n, "control-plane") {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// linkCount returns how many network interfaces a node container has.
func (c *cluster) linkCount(t testing.TB, nodeName string) int {
	t.Helper()
	return len(strings.Split(strings.TrimSpace(c.docker(t, "exec", nodeName, "ip", "-o", "link")), "\n"))
}

// flowSummary is conntrack -L's and -D's last line.
var flowSummary = regexp.MustCompile(`(\d+) flow entries have been (?:shown|deleted)`)

// untranslatedFlows lists (op "-L") or deletes (op "-D"), on every node, the
// conntrack entries of TCP flows to ip that kube-proxy never translated (their
// reply comes from ip itself), and returns how many there were. They are left by
// SYNs that reached a node in the seconds between the address's first
// announcement and kube-proxy's rules for it: the node forwarded them, and for
// 120 s (SYN_SENT) a new connection from the same client port would follow that
// entry and be forwarded again instead of reaching a pod. The speakers delete
// them in an address's first minute (README, "The first seconds of a new
// address").
func (c *cluster) untranslatedFlows(t testing.TB, ip, op string) int {
	t.Helper()
	n := 0
	for name := range c.nodes {
		args := []string{"exec", name, "conntrack", op, "-p", "tcp", "--orig-dst", ip, "--reply-src", ip}
		out, err := exec.Command("docker", args...).CombinedOutput()
		// conntrack exits 1 when it deleted nothing; the summary line says how many.
		m := flowSummary.FindSubmatch(out)
		if m == nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		k, _ := strconv.Atoi(string(m[1]))
		n += k
	}
	return n
}
