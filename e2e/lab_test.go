//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/heraldlb/herald/e2e/lab"
)

var whoamiReply = regexp.MustCompile(`^pod=(whoami-[0-9]+) node=(node[0-9]+)\n$`)

// The addresses a speaker would announce; here the test points the client at node1
// by hand, as a speaker answering ARP/NDP would.
var (
	lbIPv4 = netip.MustParseAddr("10.77.0.200")
	lbIPv6 = netip.MustParseAddr("fd77::200")
)

// plainLab brings up the lab without herald (skipping without root) and tears it
// down when the test ends.
func plainLab(ctx context.Context, t *testing.T) (*lab.Lab, lab.Config) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the e2e lab needs root")
	}
	cfg := lab.Config{Logf: t.Logf}
	t.Cleanup(func() {
		if err := lab.Down(cfg); err != nil {
			t.Errorf("tearing the lab down: %v", err)
		}
	})
	start := time.Now()
	l, err := lab.Up(ctx, cfg)
	if err != nil {
		t.Fatalf("bringing the lab up: %v", err)
	}
	t.Logf("Up took %v", time.Since(start).Round(time.Millisecond))
	return l, cfg
}

// TestLab proves the lab's data path without herald: kube-proxy serves a ClusterIP,
// a NodePort and a LoadBalancer address from the Service's status, on both families;
// a second Up reuses the lab; Down leaves nothing behind.
func TestLab(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l, cfg := plainLab(ctx, t)

	var pods []string
	for i, node := range l.NodeNames() {
		name := fmt.Sprintf("whoami-%d", i+1)
		p, err := l.AddPod(ctx, node, name)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("pod %s on %s: %s %s", p.Name, p.Node, p.IPv4, p.IPv6)
		pods = append(pods, name)
	}

	cs := l.Client()
	const ns = "e2e-lab"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", ns, err)
	}
	clusterIP := createService(ctx, t, cs, ns, "whoami", corev1.ServiceTypeClusterIP)
	nodePort := createService(ctx, t, cs, ns, "whoami-np", corev1.ServiceTypeNodePort)
	lb := createService(ctx, t, cs, ns, "whoami-lb", corev1.ServiceTypeLoadBalancer)
	for _, svc := range []string{"whoami", "whoami-np", "whoami-lb"} {
		if err := l.SetEndpoints(ctx, svc, ns, pods...); err != nil {
			t.Fatal(err)
		}
	}
	node1, err := l.Node("node1")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("ClusterIP from a node", func(t *testing.T) {
		for _, ip := range clusterIP.Spec.ClusterIPs {
			a := netip.MustParseAddr(ip)
			expectWhoami(t, l, node1.NS, fmt.Sprintf("http://%s/", netip.AddrPortFrom(a, 80)))
		}
	})

	t.Run("NodePort from the client", func(t *testing.T) {
		port := uint16(nodePort.Spec.Ports[0].NodePort)
		for _, a := range []netip.Addr{node1.IPv4, node1.IPv6} {
			expectWhoami(t, l, lab.NSClient, fmt.Sprintf("http://%s/", netip.AddrPortFrom(a, port)))
		}
	})

	t.Run("LoadBalancer address through node1", func(t *testing.T) {
		patch := fmt.Sprintf(`{"status":{"loadBalancer":{"ingress":[{"ip":%q,"ipMode":"VIP"},{"ip":%q,"ipMode":"VIP"}]}}}`, lbIPv4, lbIPv6)
		if _, err := cs.CoreV1().Services(ns).Patch(ctx, lb.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status"); err != nil {
			t.Fatalf("writing the Service's load balancer status: %v", err)
		}
		for _, a := range []netip.Addr{lbIPv4, lbIPv6} {
			if _, err := l.Exec(lab.NSClient, "ip", "neigh", "replace", a.String(), "lladdr", node1.MAC.String(), "dev", "eth0", "nud", "permanent"); err != nil {
				t.Fatal(err)
			}
			url := fmt.Sprintf("http://%s/", netip.AddrPortFrom(a, 80))
			expectWhoami(t, l, lab.NSClient, url)
			// kube-proxy spreads the connections over the pods on every node.
			seen := map[string]bool{}
			for i := 0; i < 60 && len(seen) < len(pods); i++ {
				body, err := l.Curl(lab.NSClient, url)
				if err != nil {
					t.Fatalf("curl %s: %v", url, err)
				}
				if m := whoamiReply.FindStringSubmatch(body); m != nil {
					seen[m[1]] = true
				}
			}
			if len(seen) != len(pods) {
				t.Errorf("%s reached pods %v; want all of %v", url, seen, pods)
			}
		}
	})

	t.Run("CutLink isolates a node until RestoreLink", func(t *testing.T) {
		url := fmt.Sprintf("http://%s/", netip.AddrPortFrom(node1.IPv4, uint16(nodePort.Spec.Ports[0].NodePort)))
		if err := l.CutLink("node1"); err != nil {
			t.Fatal(err)
		}
		if body, err := l.Curl(lab.NSClient, url); err == nil {
			t.Errorf("curl %s with node1's link cut: %q; want an error", url, body)
		}
		if err := l.RestoreLink("node1"); err != nil {
			t.Fatal(err)
		}
		expectWhoami(t, l, lab.NSClient, url)
	})

	t.Run("API server stops and starts", func(t *testing.T) {
		if err := l.StopAPIServer(); err != nil {
			t.Fatal(err)
		}
		if out, err := l.Kubectl("get", "nodes", "--request-timeout", "2s"); err == nil {
			t.Errorf("kubectl get nodes with the API server stopped: %q; want an error", out)
		}
		if err := l.StartAPIServer(ctx); err != nil {
			t.Fatal(err)
		}
		out, err := l.Kubectl("get", "nodes", "-o", "name")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Fields(out), []string{"node/node1", "node/node2", "node/node3"}; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("kubectl get nodes: %q; want %q", got, want)
		}
		// kube-proxy keeps its rules while the API server is away.
		expectWhoami(t, l, lab.NSClient, fmt.Sprintf("http://%s/", netip.AddrPortFrom(lbIPv4, 80)))
	})

	t.Run("Up reuses a healthy lab", func(t *testing.T) {
		before := apiServerPID(t, l)
		start := time.Now()
		l2, err := lab.Up(ctx, cfg)
		if err != nil {
			t.Fatalf("second Up: %v", err)
		}
		t.Logf("second Up took %v", time.Since(start).Round(time.Millisecond))
		if after := apiServerPID(t, l2); after != before {
			t.Errorf("kube-apiserver PID %d after the second Up; want %d (reused)", after, before)
		}
		if got := len(l2.Pods()); got != len(pods) {
			t.Errorf("the reused lab has %d pods; want %d", got, len(pods))
		}
	})

	t.Run("Down leaves nothing", func(t *testing.T) {
		if err := l.Down(); err != nil {
			t.Fatalf("Down: %v", err)
		}
		out, err := exec.Command("ip", "netns", "list").Output()
		if err != nil {
			t.Fatalf("ip netns list: %v", err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "lab-") {
				t.Errorf("namespace left after Down: %s", line)
			}
		}
		if out, err := exec.Command("ip", "-br", "link", "show").Output(); err != nil {
			t.Fatalf("ip link show: %v", err)
		} else if strings.Contains(string(out), "herald-lab") {
			t.Errorf("host link left after Down:\n%s", out)
		}
		if _, err := os.Stat(l.StateDir()); !os.IsNotExist(err) {
			t.Errorf("state directory %s left after Down (stat: %v)", l.StateDir(), err)
		}
	})
}

// createService (re)creates a dual-stack Service selecting nothing (the lab writes
// its EndpointSlices), port 80 to the pods' 8080, and returns it as created.
func createService(ctx context.Context, t testing.TB, cs kubernetes.Interface, ns, name string, typ corev1.ServiceType, mutate ...func(*corev1.Service)) *corev1.Service {
	t.Helper()
	err := cs.CoreV1().Services(ns).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("deleting Service %s: %v", name, err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Type:           typ,
			IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyRequireDualStack),
			IPFamilies:     []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol},
			Ports: []corev1.ServicePort{{
				Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(lab.PodPort),
			}},
		},
	}
	for _, m := range mutate {
		m(svc)
	}
	created, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating Service %s: %v", name, err)
	}
	return created
}

// expectWhoami curls url from ns until a pod answers (kube-proxy syncs within about
// a second of a change), for at most 30 s.
func expectWhoami(t *testing.T, l *lab.Lab, ns, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		body, err := l.Curl(ns, url)
		if err == nil && whoamiReply.MatchString(body) {
			t.Logf("%s from %s: %s", url, ns, strings.TrimSpace(body))
			return
		}
		if err == nil {
			err = fmt.Errorf("unexpected reply %q", body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("curl %s from %s: %v", url, ns, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func apiServerPID(t *testing.T, l *lab.Lab) int {
	t.Helper()
	for _, p := range l.Processes() {
		if p.Name == "kube-apiserver" {
			return p.PID
		}
	}
	t.Fatal("the lab lists no kube-apiserver")
	return 0
}
