//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/e2e/lab"
)

// routeWait polls the router's kernel every 2 ms until the number of nexthops of
// prefix satisfies ok and returns when that was first seen.
func routeWait(b *testing.B, l *lab.Lab, prefix netip.Prefix, ok func(int) bool, limit time.Duration) time.Time {
	b.Helper()
	at := <-watchNexthops(l, prefix, ok, limit)
	if at.IsZero() {
		b.Fatalf("%s: nexthops not as wanted after %v", prefix, limit)
	}
	return at
}

func exactly(n int) func(int) bool { return func(got int) bool { return got == n } }

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

// BenchmarkBGP measures the BGP figures of DESIGN.md in the lab, with timers
// 1/3 as in manifests/examples/bgp.yaml. b.N is ignored.
func BenchmarkBGP(b *testing.B) {
	l := bgpLab(b)
	ctx := context.Background()
	cs := l.Client()
	ip := firstV4(whoamiServiceFrom(b, l, "routed", "bench", "web", false, l.NodeNames()...))
	prefix := hostPrefix(ip)
	routeWait(b, l, prefix, exactly(3), 10*time.Second)

	// Address assigned (seen on a watch) → route in the router's kernel, over 50
	// new Services: first nexthop, and all three.
	w, err := cs.CoreV1().Services("bench").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	var first, all []time.Duration
	for i := range 50 {
		name := fmt.Sprintf("routed-%d", i)
		createService(ctx, b, cs, "bench", name, corev1.ServiceTypeLoadBalancer, func(s *corev1.Service) {
			s.Annotations = map[string]string{heraldv1.AnnotationPool: "routed"}
		})
		var addr string
		var assigned time.Time
		for addr == "" {
			select {
			case ev := <-w.ResultChan():
				s, ok := ev.Object.(*corev1.Service)
				if ok && ev.Type != watch.Deleted && s.Name == name && len(s.Status.LoadBalancer.Ingress) > 0 {
					addr, assigned = firstV4([]string{s.Status.LoadBalancer.Ingress[0].IP, s.Status.LoadBalancer.Ingress[len(s.Status.LoadBalancer.Ingress)-1].IP}), time.Now()
				}
			case <-time.After(time.Minute):
				b.Fatalf("%s got no address", name)
			}
		}
		p := hostPrefix(addr)
		first = append(first, routeWait(b, l, p, func(n int) bool { return n >= 1 }, 10*time.Second).Sub(assigned))
		all = append(all, routeWait(b, l, p, exactly(3), 10*time.Second).Sub(assigned))
		_ = cs.CoreV1().Services("bench").Delete(ctx, name, metav1.DeleteOptions{})
	}
	benchLine(b, "bgp-assigned-to-route-median", ms(percentile(first, 50)), "ms")
	benchLine(b, "bgp-assigned-to-route-p99", ms(percentile(first, 99)), "ms")
	benchLine(b, "bgp-assigned-to-3-nexthops-median", ms(percentile(all, 50)), "ms")
	benchLine(b, "bgp-assigned-to-3-nexthops-p99", ms(percentile(all, 99)), "ms")
	rss, anon := maxSpeakerMemory(l)
	benchLine(b, "bgp-speaker-rss-max", rss, "MB")
	benchLine(b, "bgp-speaker-anon-max", anon, "MB")

	// Graceful stop (SIGTERM) → nexthop gone; kill -9 → nexthop gone; 5 each.
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		var took []time.Duration
		for i := range 5 {
			node := l.NodeNames()[i%3]
			gone := watchNexthops(l, prefix, exactly(2), 10*time.Second)
			start := time.Now()
			if err := l.KillSpeaker(node, sig); err != nil { // returns once it has exited
				b.Fatal(err)
			}
			at := <-gone
			if at.IsZero() {
				b.Fatalf("%s's nexthop still there 10 s after %v", node, sig)
			}
			took = append(took, at.Sub(start))
			if err := l.StartSpeaker(ctx, node); err != nil {
				b.Fatal(err)
			}
			routeWait(b, l, prefix, exactly(3), 20*time.Second)
		}
		name := map[syscall.Signal]string{syscall.SIGTERM: "bgp-withdraw-on-sigterm", syscall.SIGKILL: "bgp-nexthop-gone-after-kill9"}[sig]
		benchLine(b, name+"-median", ms(percentile(took, 50)), "ms")
		benchLine(b, name+"-worst-of-5", ms(slices.Max(took)), "ms")
	}

	// Router's bgpd restarted → all three nexthops back (the speakers redial); 3 times.
	var back []time.Duration
	for range 3 {
		if err := l.StopRouterBGP(syscall.SIGTERM); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := l.StartRouterBGP(ctx); err != nil {
			b.Fatal(err)
		}
		back = append(back, routeWait(b, l, prefix, exactly(3), 30*time.Second).Sub(start))
	}
	benchLine(b, "bgp-router-restart-to-routes-median", ms(percentile(back, 50)), "ms")
	benchLine(b, "bgp-router-restart-to-routes-worst-of-3", ms(slices.Max(back)), "ms")

	// Link cut → nexthop gone (the router's hold timer, 3 s); 3 times.
	var cuts []time.Duration
	for i := range 3 {
		node := l.NodeNames()[i]
		gone := watchNexthops(l, prefix, exactly(2), 15*time.Second)
		start := time.Now()
		if err := l.CutLink(node); err != nil {
			b.Fatal(err)
		}
		at := <-gone
		if at.IsZero() {
			b.Fatalf("%s's nexthop still there 15 s after its link was cut", node)
		}
		cuts = append(cuts, at.Sub(start))
		if err := l.RestoreLink(node); err != nil {
			b.Fatal(err)
		}
		routeWait(b, l, prefix, exactly(3), 30*time.Second)
	}
	benchLine(b, "bgp-link-cut-convergence-median", ms(percentile(cuts, 50)), "ms")
	benchLine(b, "bgp-link-cut-convergence-worst-of-3", ms(slices.Max(cuts)), "ms")
}
