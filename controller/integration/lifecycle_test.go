//go:build integration

package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/testpoll"
)

// createMany creates n Services from 16 concurrent clients.
func createMany(t testing.TB, ns string, n int, name func(int) string, opts ...svcOpt) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := k8s.Create(context.Background(), newService(ns, name(i), opts...)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("creating Services: %v", err)
	}
}

// waitAllAssigned waits until n Services in the namespace show an address.
func waitAllAssigned(t testing.TB, ns string, n int, timeout time.Duration) {
	t.Helper()
	testpoll.Until(t, timeout, fmt.Sprintf("%d Services assigned", n), func() (bool, string) {
		got := 0
		for _, ip := range snapshot(t, ns) {
			if ip != "" {
				got++
			}
		}
		return got == n, fmt.Sprintf("%d of %d assigned", got, n)
	})
}

// snapshot returns each Service's addresses in a namespace.
func snapshot(t testing.TB, ns string) map[string]string {
	t.Helper()
	var list corev1.ServiceList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range list.Items {
		out[s.Name] = strings.Join(ingressIPs(&s), ",")
	}
	return out
}

func TestRestartChangesNoAddress(t *testing.T) {
	const n = 500
	_, stop := startController(t, controllerOpts{})
	ns := newNamespace(t, nil)
	createPool(t, "restart", pools("10.210.0.0/22"))
	createMany(t, ns, n, func(i int) string { return fmt.Sprintf("svc-%03d", i) })
	waitAllAssigned(t, ns, n, time.Minute)
	before := snapshot(t, ns)
	seen := map[string]string{}
	for name, ip := range before {
		if other, dup := seen[ip]; dup {
			t.Fatalf("%s given to both %s and %s", ip, other, name)
		}
		seen[ip] = name
	}
	// Free some addresses in the middle of the range while no controller runs, so
	// a controller that allocated before rebuilding would hand out held ones.
	stop()
	for _, name := range []string{"svc-010", "svc-250"} {
		deleteService(t, ns, name)
		delete(before, name)
	}

	c, _ := startController(t, controllerOpts{})
	// New Services created right away must get addresses nobody holds.
	createService(t, ns, "after-1")
	createService(t, ns, "after-2")
	a1 := waitIPs(t, ns, "after-1", 1)[0]
	a2 := waitIPs(t, ns, "after-2", 1)[0]
	if c.ReadyCheck(nil) != nil {
		t.Errorf("controller not ready after assigning: %v", c.ReadyCheck(nil))
	}
	after := snapshot(t, ns)
	changed := 0
	for name, ip := range before {
		if after[name] != ip {
			changed++
			t.Errorf("%s: %s before restart, %s after", name, ip, after[name])
		}
	}
	if changed > 0 {
		t.Fatalf("%d of %d addresses changed across a restart", changed, len(before))
	}
	for _, a := range []string{a1, a2} {
		if holder, taken := seen[a]; taken && holder != "svc-010" && holder != "svc-250" {
			t.Errorf("new Service got %s, still held by %s", a, holder)
		}
	}
}

func TestOnlyLeaderWrites(t *testing.T) {
	ns := newNamespace(t, nil)
	createPool(t, "leader", pools("10.211.0.0/28"))
	first, stopFirst := startController(t, controllerOpts{leaderElection: true})
	createService(t, ns, "one")
	waitIPs(t, ns, "one", 1)
	second, _ := startController(t, controllerOpts{leaderElection: true})

	createService(t, ns, "two")
	waitIPs(t, ns, "two", 1)
	// Let the standby's caches catch up and prove it stays quiet.
	time.Sleep(time.Second)
	if n := second.StatusWrites(); n != 0 {
		t.Fatalf("the standby replica wrote %d statuses while the leader ran", n)
	}
	if first.StatusWrites() == 0 {
		t.Fatal("the leader wrote no status")
	}

	// The leader goes away (releasing its lease); the standby takes over and
	// serves new Services without moving existing ones.
	stopFirst()
	createService(t, ns, "three")
	ips := waitIPs(t, ns, "three", 1)
	// The controller counts a write once the API server's answer reaches it;
	// this test may see the status before that (CI saw it, once).
	testpoll.Until(t, 2*time.Second, "the new leader's status write", func() (bool, string) {
		return second.StatusWrites() > 0, fmt.Sprintf("new leader %d writes, old %d", second.StatusWrites(), first.StatusWrites())
	})
	one := ingressIPs(getService(t, ns, "one"))[0]
	two := ingressIPs(getService(t, ns, "two"))[0]
	if ips[0] == one || ips[0] == two || one == two {
		t.Errorf("addresses after failover: one=%s two=%s three=%s; want three distinct", one, two, ips[0])
	}
}

func TestPoolStatus(t *testing.T) {
	startController(t, controllerOpts{})
	ns := newNamespace(t, nil)
	createPool(t, "stat-v4", heraldv1.IPPoolSpec{Addresses: []string{"10.212.0.0/24"}, AvoidBuggyIPs: true})
	createPool(t, "stat-v6", pools("fd12::/64"))
	createPool(t, "stat-overlap", heraldv1.IPPoolSpec{Addresses: []string{"10.212.0.128/25"}, AutoAssign: boolPtr(false)})
	createService(t, ns, "s", withAnnotation(heraldv1.AnnotationPool, "stat-v4"))
	waitIPs(t, ns, "s", 1)

	pool := func(name string) *heraldv1.IPPool {
		var p heraldv1.IPPool
		if err := k8s.Get(context.Background(), client.ObjectKey{Name: name}, &p); err != nil {
			t.Fatal(err)
		}
		return &p
	}
	testpoll.Until(t, 10*time.Second, "IPPool stat-v4 status", func() (bool, string) {
		p := pool("stat-v4")
		st := p.Status
		return st.IPv4 != nil && st.IPv4.Capacity == "254" && st.IPv4.Used == "1" && st.IPv4.Free == "253" &&
			st.Used == "1" && st.Free == "253" && meta.IsStatusConditionTrue(st.Conditions, heraldv1.IPPoolConditionReady) &&
			meta.IsStatusConditionTrue(st.Conditions, heraldv1.IPPoolConditionOverlapping), fmt.Sprintf("%+v", st)
	})
	testpoll.Until(t, 10*time.Second, "IPPool stat-v6 status", func() (bool, string) {
		st := pool("stat-v6").Status
		// A /64 holds 2^64 addresses, one past what a uint64 counts.
		return st.IPv6 != nil && st.IPv6.Capacity == "18446744073709551616" && st.IPv4 == nil &&
			meta.IsStatusConditionFalse(st.Conditions, heraldv1.IPPoolConditionOverlapping), fmt.Sprintf("%+v", st)
	})
	testpoll.Until(t, 10*time.Second, "IPPool stat-overlap Overlapping=True naming stat-v4", func() (bool, string) {
		c := meta.FindStatusCondition(pool("stat-overlap").Status.Conditions, heraldv1.IPPoolConditionOverlapping)
		return c != nil && c.Status == metav1.ConditionTrue && strings.Contains(c.Message, "stat-v4"), fmt.Sprintf("%+v", c)
	})

	waitEvent(t, "default", "stat-overlap", "Overlapping", "stat-v4")

	// A bad edit (a reversed IPv6 range gets past CEL, see IPPoolSpec) is
	// reported, and the pool keeps serving its last valid addresses: the Service
	// neither moves nor turns into an orphan.
	updatePool(t, "stat-v4", func(p *heraldv1.IPPool) { p.Spec.Addresses = []string{"fd12:2::9-fd12:2::1"} })
	testpoll.Until(t, 10*time.Second, "IPPool stat-v4 Ready=False, still serving", func() (bool, string) {
		st := pool("stat-v4").Status
		c := meta.FindStatusCondition(st.Conditions, heraldv1.IPPoolConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && strings.Contains(c.Message, "keeps serving") && st.Used == "1", fmt.Sprintf("%+v", st)
	})
	createService(t, ns, "s2", withAnnotation(heraldv1.AnnotationPool, "stat-v4"))
	waitIPs(t, ns, "s2", 1)
	waitCondition(t, ns, "s", metav1.ConditionTrue, "Allocated")

	// A reversed IPv6 range in a new pool is reported the same way.
	createPool(t, "stat-bad", pools("fd12:1::9-fd12:1::1"))
	testpoll.Until(t, 10*time.Second, "IPPool stat-bad Ready=False", func() (bool, string) {
		st := pool("stat-bad").Status
		c := meta.FindStatusCondition(st.Conditions, heraldv1.IPPoolConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "InvalidSpec" && strings.Contains(c.Message, "backwards"), fmt.Sprintf("%+v", st)
	})
}

func TestInvalidPoolsRefusedByCEL(t *testing.T) {
	tests := []struct {
		name  string
		addrs []string
		want  string
	}{
		{"empty", []string{}, "should have at least 1 items"},
		{"garbage", []string{"banana"}, "must be an IP address (192.168.1.7), a CIDR (192.168.1.0/24) or a range"},
		{"bad-cidr", []string{"10.0.0.0/33"}, "must be an IP address"},
		{"bad-range", []string{"10.0.0.1-banana"}, "a range must be two IP addresses joined by '-'"},
		{"mixed", []string{"10.0.0.1-fd00::1"}, "a range must not mix IPv4 and IPv6"},
		{"reversed", []string{"10.0.0.9-10.0.0.1"}, "a range must run from the lower address to the higher one"},
		{"reversed-octet", []string{"10.0.1.0-10.0.0.255"}, "a range must run from the lower address to the higher one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "cel-" + tt.name}, Spec: heraldv1.IPPoolSpec{Addresses: tt.addrs}}
			err := k8s.Create(context.Background(), p)
			if err == nil {
				_ = k8s.Delete(context.Background(), p)
				t.Fatalf("API server accepted addresses %q", tt.addrs)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v; want it to contain %q", err, tt.want)
			}
		})
	}
	// And what must pass does.
	ok := &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "cel-good"}, Spec: heraldv1.IPPoolSpec{
		Addresses: []string{"10.0.0.1", "10.0.1.0/24", "10.0.2.10-10.0.2.20", "10.0.3.5-10.0.3.5", "fd00::/64", "fd01::1-fd01::9"}}}
	if err := k8s.Create(context.Background(), ok); err != nil {
		t.Fatalf("valid pool refused: %v", err)
	}
	_ = k8s.Delete(context.Background(), ok)
}

func TestMemberlistKeySecret(t *testing.T) {
	_, stop := startController(t, controllerOpts{memberSecret: "herald-memberlist-test"})
	var key []byte
	testpoll.Until(t, 10*time.Second, "memberlist Secret created", func() (bool, string) {
		var s corev1.Secret
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "herald-memberlist-test"}, &s); err != nil {
			return false, err.Error()
		}
		key = s.Data["secretkey"]
		return len(key) == 32, fmt.Sprintf("%d bytes", len(key))
	})
	t.Cleanup(func() {
		_ = k8s.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "herald-memberlist-test"}})
	})
	// A restarted controller keeps the key, or running speakers would split.
	stop()
	startController(t, controllerOpts{memberSecret: "herald-memberlist-test"})
	createService(t, newNamespace(t, nil), "after-restart") // proves the new controller runs
	time.Sleep(500 * time.Millisecond)
	var s corev1.Secret
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "herald-memberlist-test"}, &s); err != nil {
		t.Fatal(err)
	}
	if string(s.Data["secretkey"]) != string(key) {
		t.Error("the memberlist key changed across a controller restart")
	}
}

func TestInvalidL2AnnouncementsRefusedByCEL(t *testing.T) {
	tests := []struct {
		name string
		spec heraldv1.L2AnnouncementSpec
		want string
	}{
		{"both", heraldv1.L2AnnouncementSpec{IPPools: []string{"a"}, IPPoolSelector: &metav1.LabelSelector{}}, "set ipPools or ipPoolSelector, not both"},
		{"iface", heraldv1.L2AnnouncementSpec{Interfaces: []string{"eth0/1"}}, "spec.interfaces[0]"},
		{"long-iface", heraldv1.L2AnnouncementSpec{Interfaces: []string{"averyveryverylonginterface"}}, "spec.interfaces[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &heraldv1.L2Announcement{ObjectMeta: metav1.ObjectMeta{Name: "cel-" + tt.name}, Spec: tt.spec}
			err := k8s.Create(context.Background(), a)
			if err == nil {
				_ = k8s.Delete(context.Background(), a)
				t.Fatalf("API server accepted %+v", tt.spec)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v; want it to contain %q", err, tt.want)
			}
		})
	}
	ok := &heraldv1.L2Announcement{ObjectMeta: metav1.ObjectMeta{Name: "cel-good"}, Spec: heraldv1.L2AnnouncementSpec{IPPools: []string{"default"}, Interfaces: []string{"eth0"}}}
	if err := k8s.Create(context.Background(), ok); err != nil {
		t.Fatalf("valid L2Announcement refused: %v", err)
	}
	_ = k8s.Delete(context.Background(), ok)
}

func TestL2AnnouncementStatus(t *testing.T) {
	startController(t, controllerOpts{})
	a := &heraldv1.L2Announcement{ObjectMeta: metav1.ObjectMeta{Name: "l2-status"}, Spec: heraldv1.L2AnnouncementSpec{IPPools: []string{"l2-status-pool"}}}
	if err := k8s.Create(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), a) })
	ready := func(status metav1.ConditionStatus, reason, msg string) {
		t.Helper()
		testpoll.Until(t, 10*time.Second, fmt.Sprintf("L2Announcement Ready=%s/%s", status, reason), func() (bool, string) {
			var got heraldv1.L2Announcement
			if err := k8s.Get(context.Background(), client.ObjectKey{Name: "l2-status"}, &got); err != nil {
				return false, err.Error()
			}
			c := meta.FindStatusCondition(got.Status.Conditions, "Ready")
			return c != nil && c.Status == status && c.Reason == reason && strings.Contains(c.Message, msg), fmt.Sprintf("%+v", c)
		})
	}
	ready(metav1.ConditionFalse, "NoPool", "IPPools not found: l2-status-pool")
	createPool(t, "l2-status-pool", pools("10.215.0.0/30"))
	ready(metav1.ConditionTrue, "Valid", "covers IPPools l2-status-pool")
}
