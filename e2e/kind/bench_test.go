//go:build kind

package kind

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/heraldlb/herald/internal/testpoll"
)

// benchLine prints a result line ("bench: ...") and appends it to
// $HERALD_BENCH_OUT when set, as the lab's benchmarks do.
func benchLine(b *testing.B, format string, args ...any) {
	line := "bench: kind: " + fmt.Sprintf(format, args...)
	fmt.Println(line)
	if out := os.Getenv("HERALD_BENCH_OUT"); out != "" {
		f, err := os.OpenFile(out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		fmt.Fprintln(f, line)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func BenchmarkKind(b *testing.B) {
	c := newCluster(b)
	ctx := context.Background()
	c.ensureNamespace(b)
	c.install(b)
	c.apply(b, c.poolYAML())
	c.apply(b, c.backend("web", 3, ""))
	c.mustKubectl(b, "-n", testNS, "rollout", "status", "deploy/web", "--timeout", "3m")
	res, err := newResolver(c)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Close()

	// Service created → address in its status → first answer to a request from
	// the host (the speaker's announcement and kube-proxy's rules both in place).
	var toIP, toCurl []time.Duration
	client := &http.Client{Timeout: 200 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; i < 10; i++ {
		name := fmt.Sprintf("bench-%d", i)
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "web"},
				Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		}
		start := time.Now()
		if _, err := c.cs.CoreV1().Services(testNS).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		var ip string
		testpoll.Until(b, 30*time.Second, "an address on "+name, func() (bool, string) {
			s, err := c.cs.CoreV1().Services(testNS).Get(ctx, name, metav1.GetOptions{})
			if err == nil && len(s.Status.LoadBalancer.Ingress) > 0 {
				ip = s.Status.LoadBalancer.Ingress[0].IP
			}
			return ip != "", ""
		})
		toIP = append(toIP, time.Since(start))
		for deadline := time.Now().Add(30 * time.Second); ; {
			resp, err := client.Get("http://" + ip + "/")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s (%s) never answered: %v", name, ip, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		toCurl = append(toCurl, time.Since(start))
		_ = c.cs.CoreV1().Services(testNS).Delete(ctx, name, metav1.DeleteOptions{})
	}
	benchLine(b, "Service created → EXTERNAL-IP: median %s, worst %s; → first answer from the host: median %s, worst %s (10 Services)",
		ms(median(toIP)), ms(slices.Max(toIP)), ms(median(toCurl)), ms(slices.Max(toCurl)))

	// Node lost: the owner's node container killed (docker kill), then the time
	// until a fresh ARP resolution from the host is answered by another node.
	c.apply(b, lbService("failover", "web", false, nil))
	ip := c.waitIP(b, "failover", 30*time.Second)
	expectCurl(b, ip, 60*time.Second)
	var failovers []time.Duration
	for len(failovers) < 5 {
		owner, _ := res.owner(ip, time.Second)
		if owner == "" || strings.HasSuffix(owner, "control-plane") {
			// Move the address off the control plane: the API server lives there.
			b.Logf("owner %q: waiting for a worker to own %s", owner, ip)
			_ = c.cs.CoreV1().Services(testNS).Delete(ctx, "failover", metav1.DeleteOptions{})
			time.Sleep(2 * time.Second)
			c.apply(b, lbService("failover", "web", false, nil))
			ip = c.waitIP(b, "failover", 30*time.Second)
			expectCurl(b, ip, 60*time.Second)
			continue
		}
		// A node that came back takes nothing back; still, kill only an owner
		// that has kept the address for 3 s, so the kill never times a move
		// that already happened.
		time.Sleep(3 * time.Second)
		if again, _ := res.owner(ip, time.Second); again != owner {
			b.Logf("owner of %s changed from %s to %q: looking again", ip, owner, again)
			continue
		}
		killed, killDone := c.killNode(owner)
		var took time.Duration
		for {
			if n, _ := res.owner(ip, 20*time.Millisecond); n != "" && n != owner {
				took = time.Since(killed)
				break
			}
			if time.Since(killed) > 30*time.Second {
				b.Fatalf("no node took %s over within 30 s of killing %s", ip, owner)
			}
		}
		failovers = append(failovers, took)
		b.Logf("failover %d: %s killed, %s answered from another node after %s", len(failovers), owner, ip, ms(took))
		if err := killDone(); err != nil {
			b.Fatal(err)
		}
		c.restartNode(b, owner)
	}
	benchLine(b, "node container killed → address answered by another node: median %s, worst %s (5 runs)", ms(median(failovers)), ms(slices.Max(failovers)))

	// Resident memory and CPU of the real pods, idle, with 500 Services assigned.
	c.apply(b, fmt.Sprintf("apiVersion: herald.io/v1alpha1\nkind: IPPool\nmetadata: {name: bench}\nspec:\n  addresses: [%q]\n  autoAssign: false\n---\napiVersion: herald.io/v1alpha1\nkind: L2Announcement\nmetadata: {name: bench}\nspec:\n  ipPools: [bench]\n", c.poolRange(1023, 600)))
	for i := 0; i < 500; i++ {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("idle-%d", i), Namespace: testNS, Annotations: map[string]string{"herald.io/pool": "bench"}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "web"},
				Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		}
		if _, err := c.cs.CoreV1().Services(testNS).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	testpoll.Until(b, 3*time.Minute, "500 Services assigned", func() (bool, string) {
		list, err := c.cs.CoreV1().Services(testNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		n := 0
		for _, s := range list.Items {
			if strings.HasPrefix(s.Name, "idle-") && len(s.Status.LoadBalancer.Ingress) > 0 {
				n++
			}
		}
		return n == 500, fmt.Sprint(n)
	})
	time.Sleep(20 * time.Second)
	const window = 30 * time.Second
	before := c.podProcessStats(b)
	time.Sleep(window)
	after := c.podProcessStats(b)
	for _, role := range []string{"controller", "speaker"} {
		var rss, cpu float64
		for pod, a := range after {
			if !strings.Contains(pod, role) {
				continue
			}
			rss = max(rss, a.rss)
			cpu = max(cpu, (a.cpu-before[pod].cpu)/window.Seconds()*1000)
		}
		benchLine(b, "%s at idle with 500 Services: resident memory %.1f MB, CPU %.1f millicores (busiest pod over %v)", role, rss/1e6, cpu, window)
	}
	c.mustKubectl(b, "-n", testNS, "delete", "service", "--all", "--wait=false")
}

type procStats struct{ rss, cpu float64 }

var metricLine = regexp.MustCompile(`(?m)^(process_resident_memory_bytes|process_cpu_seconds_total) (\S+)$`)

// podProcessStats reads each herald pod's process metrics through the API
// server's pod proxy.
func (c *cluster) podProcessStats(b *testing.B) map[string]procStats {
	pods, err := c.cs.CoreV1().Pods("herald-system").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]procStats{}
	for _, p := range pods.Items {
		port := "7474"
		if p.Labels["app.kubernetes.io/component"] == "controller" {
			port = "7472"
		}
		text, err := c.kubectl("get", "--raw", fmt.Sprintf("/api/v1/namespaces/herald-system/pods/%s:%s/proxy/metrics", p.Name, port))
		if err != nil {
			b.Fatal(err)
		}
		var s procStats
		for _, m := range metricLine.FindAllStringSubmatch(text, -1) {
			v, _ := strconv.ParseFloat(m[2], 64)
			if m[1] == "process_resident_memory_bytes" {
				s.rss = v
			} else {
				s.cpu = v
			}
		}
		out[p.Name] = s
	}
	return out
}
