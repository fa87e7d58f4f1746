//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/e2e/lab"
)

// BenchmarkAnnouncedFailover measures the API writes the herald.io/Announced
// condition costs when the node announcing a third of 1,000 Services dies: how
// many Service writes, at what peak rate, and how long until every Service names
// its new node. b.N is ignored.
func BenchmarkAnnouncedFailover(b *testing.B) {
	const n = 1000
	l := heraldLab(b)
	cs := l.Client()
	ctx := context.Background()
	apply(b, l, `apiVersion: herald.io/v1alpha1
kind: IPPool
metadata:
  name: bulk
spec:
  addresses: ["fd77::1000-fd77::1fff"]
---
apiVersion: herald.io/v1alpha1
kind: L2Announcement
metadata:
  name: bulk
spec:
  ipPools: [bulk]
`)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bulk"}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	// Created 8 at a time: one by one, creating is most of the run.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				svc := &corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s%04d", i), Namespace: "bulk", Annotations: map[string]string{heraldv1.AnnotationPool: "bulk"}},
					Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, IPFamilies: []corev1.IPFamily{corev1.IPv6Protocol},
						Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(lab.PodPort)}}},
				}
				if _, err := cs.CoreV1().Services("bulk").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatalf("creating Services: %v", err)
	}
	b.Logf("created %d Services in %v", n, time.Since(start).Round(time.Millisecond))

	// owners maps each Service to the node its condition names; all True.
	owners := func() (map[string]string, int) {
		list, err := cs.CoreV1().Services("bulk").List(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		out, up := map[string]string{}, 0
		for _, s := range list.Items {
			c := meta.FindStatusCondition(s.Status.Conditions, heraldv1.ConditionAnnounced)
			if c == nil || c.Status != metav1.ConditionTrue {
				continue
			}
			up++
			for _, node := range l.NodeNames() {
				if strings.Contains(c.Message, "node "+node+" ") {
					out[s.Name] = node
				}
			}
		}
		return out, up
	}
	deadline := time.Now().Add(3 * time.Minute)
	var before map[string]string
	for {
		var up int
		before, up = owners()
		if up == n && len(before) == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d Services show Announced True", up, n)
		}
		time.Sleep(500 * time.Millisecond)
	}
	b.Logf("all %d Services Announced %v after the first was created", n, time.Since(start).Round(time.Millisecond))
	count := map[string]int{}
	for _, node := range before {
		count[node]++
	}
	b.Logf("owners: %v", count)
	// Quiet: nothing is written while nothing changes.
	time.Sleep(3 * time.Second)

	// Watch every Service write from here on.
	list, err := cs.CoreV1().Services("bulk").List(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	w, err := cs.CoreV1().Services("bulk").Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var writes []time.Time
	current := map[string]string{}
	for k, v := range before {
		current[k] = v
	}
	go func() {
		for ev := range w.ResultChan() {
			s, ok := ev.Object.(*corev1.Service)
			if !ok || ev.Type != watch.Modified {
				continue
			}
			mu.Lock()
			writes = append(writes, time.Now())
			if c := meta.FindStatusCondition(s.Status.Conditions, heraldv1.ConditionAnnounced); c != nil && c.Status == metav1.ConditionTrue {
				for _, node := range l.NodeNames() {
					if strings.Contains(c.Message, "node "+node+" ") {
						current[s.Name] = node
					}
				}
			}
			mu.Unlock()
		}
	}()
	quietFrom := time.Now()
	time.Sleep(5 * time.Second)
	mu.Lock()
	quiet := len(writes)
	mu.Unlock()
	b.Logf("Service writes in %v of quiet: %d", time.Since(quietFrom).Round(time.Millisecond), quiet)

	victim := "node1"
	moving := count[victim]
	if err := l.KillSpeaker(victim, syscall.SIGKILL); err != nil {
		b.Fatal(err)
	}
	killed := time.Now()
	b.Cleanup(func() { _ = l.StartSpeaker(context.Background(), victim) })
	var done time.Time
	for time.Since(killed) < 2*time.Minute {
		mu.Lock()
		left := 0
		for _, node := range current {
			if node == victim {
				left++
			}
		}
		mu.Unlock()
		if left == 0 {
			done = time.Now()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if done.IsZero() {
		b.Fatalf("Services still name %s 2 minutes after its speaker died", victim)
	}
	time.Sleep(5 * time.Second) // late or repeated writes count too
	w.Stop()
	mu.Lock()
	defer mu.Unlock()
	after := 0
	perSecond := map[int]int{}
	for _, at := range writes {
		if at.Before(killed) {
			continue
		}
		after++
		perSecond[int(at.Sub(killed)/time.Second)]++
	}
	peak := 0
	var secs []string
	for s := 0; s <= int(time.Since(killed)/time.Second); s++ {
		peak = max(peak, perSecond[s])
		if perSecond[s] > 0 {
			secs = append(secs, fmt.Sprintf("%ds:%d", s, perSecond[s]))
		}
	}
	b.Logf("writes per second after kill -9: %s", strings.Join(secs, " "))
	benchLine(b, "announced_failover_services_moved", float64(moving), "services")
	benchLine(b, "announced_failover_service_writes", float64(after), "writes")
	benchLine(b, "announced_failover_peak_writes_per_second", float64(peak), "writes/s")
	benchLine(b, "announced_failover_all_current", ms(done.Sub(killed)), "ms")
	benchLine(b, "announced_quiet_writes", float64(quiet), "writes")
	if after > 2*moving {
		b.Errorf("%d Service writes for %d Services moved: more than two per Service", after, moving)
	}
}
