//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/controller/ipam"
	"github.com/heraldlb/herald/internal/testpoll"
)

// Issue 9: a freed address is quarantined until the status write of the Service
// that released it has landed. Before the fix, with several workers, a new Service
// could be given an address while the Service that released it still showed it
// (its status write in flight, or failing), and two Services showed one address.

// ledgerWatch follows every Service of a namespace through one watch, keeping the
// latest status of each, and records every moment at which two Services show one
// address in the API server. Events of one watch come in resourceVersion order, so
// the map is the API server's state after each event.
type ledgerWatch struct {
	mu      sync.Mutex
	shown   map[string][]string // Service name → ingress IPs
	clashes []string
	events  int
	// releasedAt is when a Service stopped showing an address, for the hand-over
	// gap; specAt is when a Service's spec changed while it showed addresses, for
	// the quarantine duration (spec change seen → status without the address).
	specAt    map[string]time.Time
	specOf    map[string]string
	landed    []time.Duration
	stop      func()
	done      chan struct{}
	watchErrs []string
}

func watchLedger(t *testing.T, ns string) *ledgerWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := cs.CoreV1().Services(ns).Watch(ctx, metav1.ListOptions{TimeoutSeconds: ptrInt64(1800)})
	if err != nil {
		cancel()
		t.Fatalf("watching Services: %v", err)
	}
	l := &ledgerWatch{shown: map[string][]string{}, specAt: map[string]time.Time{}, specOf: map[string]string{}, done: make(chan struct{})}
	l.stop = func() { cancel(); w.Stop(); <-l.done }
	go func() {
		defer close(l.done)
		for ev := range w.ResultChan() {
			svc, ok := ev.Object.(*corev1.Service)
			if !ok {
				if ev.Type == watch.Error {
					l.mu.Lock()
					l.watchErrs = append(l.watchErrs, fmt.Sprintf("%v", ev.Object))
					l.mu.Unlock()
				}
				continue
			}
			l.observe(ev.Type, svc)
		}
		if ctx.Err() == nil {
			l.mu.Lock()
			l.watchErrs = append(l.watchErrs, "watch ended early")
			l.mu.Unlock()
		}
	}()
	t.Cleanup(l.stop)
	return l
}

func ptrInt64(v int64) *int64 { return &v }

func (l *ledgerWatch) observe(typ watch.EventType, svc *corev1.Service) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events++
	name := svc.Name
	prev := l.shown[name]
	if typ == watch.Deleted {
		delete(l.shown, name)
		delete(l.specAt, name)
		return
	}
	cur := ingressIPs(svc)
	// What moves a Service's addresses: its pool and requested address. (A change
	// of type away from LoadBalancer is left out: the API server clears the
	// status in the same write.)
	spec := svc.Annotations[heraldv1.AnnotationPool] + "|" + svc.Annotations[heraldv1.AnnotationIPs]
	if was, seen := l.specOf[name]; seen && was != spec && len(prev) > 0 && svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		if _, open := l.specAt[name]; !open {
			l.specAt[name] = now
		}
	}
	l.specOf[name] = spec
	for _, ip := range prev {
		if !slices.Contains(cur, ip) {
			if at, open := l.specAt[name]; open {
				l.landed = append(l.landed, now.Sub(at))
				delete(l.specAt, name)
			}
		}
	}
	l.shown[name] = cur
	for _, ip := range cur {
		for other, ips := range l.shown {
			if other != name && slices.Contains(ips, ip) {
				l.clashes = append(l.clashes, fmt.Sprintf("rv %s: %s shows %s, which %s still shows", svc.ResourceVersion, name, ip, other))
			}
		}
	}
}

// showing returns the Service shown with ip, if any.
func (l *ledgerWatch) showing(ip string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for name, ips := range l.shown {
		if slices.Contains(ips, ip) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func (l *ledgerWatch) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.watchErrs) > 0 {
		t.Errorf("watch: %v", l.watchErrs)
	}
	if len(l.clashes) > 0 {
		max := min(len(l.clashes), 10)
		t.Errorf("%d times two Services showed one address at once (of %d events); first ones:\n  %s", len(l.clashes), l.events, strings.Join(l.clashes[:max], "\n  "))
	}
}

// faultyStatus injects failures into the controller's Service status writes, at the
// HTTP layer, so the controller's code is the one that runs in production.
type faultyStatus struct {
	next http.RoundTripper
	// failRate is the share of status writes that fail, in 1/1000.
	failRate atomic.Int64
	// releaseDelay delays writes that take an address off a Service (by the
	// ledger's view), widening the window the bug needs.
	releaseDelay atomic.Int64
	ledger       *ledgerWatch

	mu     sync.Mutex
	stuck  map[string]bool // Services whose status writes all fail
	rng    *rand.Rand
	failed atomic.Int64
	writes atomic.Int64
}

func (f *faultyStatus) RoundTrip(req *http.Request) (*http.Response, error) {
	name, isStatus := serviceStatusPath(req)
	if !isStatus || req.Method != http.MethodPatch {
		return f.next.RoundTrip(req)
	}
	f.writes.Add(1)
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, fmt.Errorf("reading the request body: %w", err)
		}
		_ = req.Body.Close()
		body = b
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	if f.ledger != nil && f.releases(name, body) {
		if d := time.Duration(f.releaseDelay.Load()); d > 0 {
			time.Sleep(time.Duration(rand.Int64N(int64(d))))
		}
	}
	f.mu.Lock()
	fail := f.stuck[name] || f.rng.Int64N(1000) < f.failRate.Load()
	f.mu.Unlock()
	if fail {
		f.failed.Add(1)
		st := metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
			Message: "injected status write failure", Reason: metav1.StatusReasonInternalError, Code: http.StatusInternalServerError}
		b, _ := json.Marshal(st)
		return &http.Response{StatusCode: http.StatusInternalServerError, Status: "500 Internal Server Error",
			Header: http.Header{"Content-Type": []string{"application/json"}}, Body: io.NopCloser(bytes.NewReader(b)),
			ContentLength: int64(len(b)), Request: req, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}, nil
	}
	return f.next.RoundTrip(req)
}

func (f *faultyStatus) setStuck(name string, on bool) {
	f.mu.Lock()
	f.stuck[name] = on
	f.mu.Unlock()
}

// releases reports whether a status write leaves out an address the Service shows.
func (f *faultyStatus) releases(name string, body []byte) bool {
	var obj struct {
		Status struct {
			LoadBalancer struct {
				Ingress []struct {
					IP string `json:"ip"`
				} `json:"ingress"`
			} `json:"loadBalancer"`
		} `json:"status"`
	}
	if json.Unmarshal(body, &obj) != nil {
		return false
	}
	f.ledger.mu.Lock()
	shown := f.ledger.shown[name]
	f.ledger.mu.Unlock()
	for _, ip := range shown {
		if !slices.ContainsFunc(obj.Status.LoadBalancer.Ingress, func(i struct {
			IP string `json:"ip"`
		}) bool {
			return i.IP == ip
		}) {
			return true
		}
	}
	return false
}

// serviceStatusPath returns the Service named by a …/services/<name>/status request.
func serviceStatusPath(req *http.Request) (string, bool) {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	n := len(parts)
	if n >= 3 && parts[n-1] == "status" && parts[n-3] == "services" {
		return parts[n-2], true
	}
	return "", false
}

// startFaultyController runs a controller whose API requests go through f.
func startFaultyController(t *testing.T, f *faultyStatus, workers int) func() {
	t.Helper()
	_, stop := startController(t, controllerOpts{
		ipam:   ipam.Options{Workers: workers},
		logger: logr.Discard(),
		wrap:   func(rt http.RoundTripper) http.RoundTripper { f.next = rt; return f },
	})
	return stop
}

// patchService applies a change to a Service's spec or metadata, retrying on
// conflicts with the controller's writes.
func patchService(ctx context.Context, ns, name string, change func(*corev1.Service)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var s corev1.Service
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
			return err
		}
		change(&s)
		return k8s.Update(ctx, &s)
	})
}

// gaugeValue returns the value of an unlabelled gauge in the controller's registry.
func gaugeValue(t *testing.T, name string) (float64, bool) {
	t.Helper()
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// churn creates, moves, re-types, re-requests and deletes Services in two small
// pools from several goroutines, so that every freed address is wanted at once.
func churn(t *testing.T, ns string, d time.Duration, seed uint64, skip string) int64 {
	t.Helper()
	ctx := context.Background()
	var ops atomic.Int64
	var seq atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			for time.Now().Before(deadline) {
				var list corev1.ServiceList
				if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
					t.Errorf("listing Services: %v", err)
					return
				}
				list.Items = slices.DeleteFunc(list.Items, func(s corev1.Service) bool { return s.Name == skip })
				var err error
				switch n := rng.IntN(100); {
				case n < 35 || len(list.Items) < 12:
					pool := []string{"q9a", "q9b"}[rng.IntN(2)]
					s := newService(ns, fmt.Sprintf("c%d", seq.Add(1)), withAnnotation(heraldv1.AnnotationPool, pool))
					err = k8s.Create(ctx, s)
				case len(list.Items) > 28 || n < 50:
					s := list.Items[rng.IntN(len(list.Items))]
					err = k8s.Delete(ctx, &s)
				case n < 70:
					s := list.Items[rng.IntN(len(list.Items))]
					err = patchService(ctx, ns, s.Name, func(s *corev1.Service) {
						if s.Annotations[heraldv1.AnnotationPool] == "q9a" {
							s.Annotations[heraldv1.AnnotationPool] = "q9b"
						} else {
							s.Annotations[heraldv1.AnnotationPool] = "q9a"
						}
						delete(s.Annotations, heraldv1.AnnotationIPs)
					})
				case n < 80:
					s := list.Items[rng.IntN(len(list.Items))]
					err = patchService(ctx, ns, s.Name, func(s *corev1.Service) {
						if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
							s.Spec.Type = corev1.ServiceTypeClusterIP
							s.Spec.AllocateLoadBalancerNodePorts = nil
						} else {
							s.Spec.Type = corev1.ServiceTypeLoadBalancer
							s.Spec.AllocateLoadBalancerNodePorts = ptrBool(false)
						}
					})
				default:
					// Ask for a given address of its pool: often one another
					// Service is releasing.
					s := list.Items[rng.IntN(len(list.Items))]
					err = patchService(ctx, ns, s.Name, func(s *corev1.Service) {
						base := "10.209.0."
						if s.Annotations[heraldv1.AnnotationPool] == "q9b" {
							base = "10.209.1."
						}
						s.Annotations[heraldv1.AnnotationIPs] = fmt.Sprintf("%s%d", base, rng.IntN(4))
					})
				}
				// Conflicts with the controller's writes that outlast the retries
				// are churn too.
				if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsAlreadyExists(err) && !apierrors.IsConflict(err) {
					t.Errorf("churn: %v", err)
					return
				}
				ops.Add(1)
				time.Sleep(time.Duration(rng.IntN(15)) * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	return ops.Load()
}

func ptrBool(v bool) *bool { return &v }

// TestQuarantineUnderChurn is the concurrency test of issue 9: eight workers, a
// share of status writes failing, release writes delayed, and Services churning
// through two pools of four addresses each. No two Services may ever show one
// address in the API server.
func TestQuarantineUnderChurn(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failRate int64 // per 1000
		delay    time.Duration
	}{
		{"writes-fail-30pct", 300, 30 * time.Millisecond},
		{"no-faults", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t, nil)
			createPool(t, "q9a", pools("10.209.0.0/30"))
			createPool(t, "q9b", pools("10.209.1.0/30"))
			t.Cleanup(func() { time.Sleep(200 * time.Millisecond) }) // let the pools' deletion settle before the next
			ledger := watchLedger(t, ns)
			f := &faultyStatus{ledger: ledger, stuck: map[string]bool{}, rng: rand.New(rand.NewPCG(9, 9))}
			f.failRate.Store(tc.failRate)
			f.releaseDelay.Store(int64(tc.delay))
			startFaultyController(t, f, 8)

			start := time.Now()
			ops := churn(t, ns, 6*time.Second, uint64(time.Now().UnixNano()), "")
			f.failRate.Store(0)
			f.releaseDelay.Store(0)
			// Settled: every Service's status is what the controller holds; no
			// address shown twice at the end either.
			testpoll.Until(t, 20*time.Second, "every LoadBalancer Service in a pool with a free address to have one", func() (bool, string) {
				return settled(t, ns)
			})
			ledger.check(t)
			ledger.mu.Lock()
			landed := slices.Clone(ledger.landed)
			events := ledger.events
			ledger.mu.Unlock()
			t.Logf("%d churn operations in %v, %d watch events, %d status writes, %d failed by injection", ops, time.Since(start).Round(time.Millisecond), events, f.writes.Load(), f.failed.Load())
			if len(landed) > 0 {
				slices.Sort(landed)
				t.Logf("pool/address change → old address gone from status, including any wait for room in the new pool (%d): median %v, p90 %v, max %v",
					len(landed), landed[len(landed)/2].Round(time.Microsecond), landed[len(landed)*9/10].Round(time.Microsecond), landed[len(landed)-1].Round(time.Microsecond))
			}
		})
	}
}

// settled reports whether each pool's addresses are all shown (the churn leaves more
// Services than addresses) or no Service waits, and no address is shown twice.
func settled(t *testing.T, ns string) (bool, string) {
	var list corev1.ServiceList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		return false, err.Error()
	}
	owners := map[string][]string{}
	waiting := map[string]int{}
	for _, s := range list.Items {
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		ips := ingressIPs(&s)
		if len(ips) == 0 {
			waiting[s.Annotations[heraldv1.AnnotationPool]]++
		}
		for _, ip := range ips {
			owners[ip] = append(owners[ip], s.Name)
		}
	}
	for ip, o := range owners {
		if len(o) > 1 {
			return false, fmt.Sprintf("%s shown by %v", ip, o)
		}
	}
	for pool, n := range waiting {
		prefix := map[string]string{"q9a": "10.209.0.", "q9b": "10.209.1."}[pool]
		shown := 0
		for ip := range owners {
			if strings.HasPrefix(ip, prefix) {
				shown++
			}
		}
		// A Service waiting for a requested address that another holds may wait
		// for ever; the others must not wait while their pool has room.
		if shown < 4 && n > 0 && !onlyRequesting(list.Items, pool, owners) {
			return false, fmt.Sprintf("%d Services of pool %s wait while %d of its 4 addresses are shown", n, pool, shown)
		}
	}
	return true, ""
}

// onlyRequesting reports whether every waiting Service of a pool requests an
// address that is shown by another Service.
func onlyRequesting(svcs []corev1.Service, pool string, owners map[string][]string) bool {
	for _, s := range svcs {
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer || s.Annotations[heraldv1.AnnotationPool] != pool || len(ingressIPs(&s)) > 0 {
			continue
		}
		want := s.Annotations[heraldv1.AnnotationIPs]
		if want == "" || len(owners[want]) == 0 {
			return false
		}
	}
	return true
}

// TestQuarantineHoldsWhileReleaseWriteFails is the "forever" mode of issue 9: one
// Service's status writes all fail after it moved pools, so it shows its old
// address until they succeed; under churn, with a controller restart in between,
// no other Service may be given that address, the quarantine is visible (gauge and
// Warning Event), and the address is handed out promptly once the write lands.
func TestQuarantineHoldsWhileReleaseWriteFails(t *testing.T) {
	ns := newNamespace(t, nil)
	createPool(t, "q9a", pools("10.209.0.0/30"))
	createPool(t, "q9b", pools("10.209.1.0/30"))
	t.Cleanup(func() { time.Sleep(200 * time.Millisecond) })
	ledger := watchLedger(t, ns)
	f := &faultyStatus{ledger: ledger, stuck: map[string]bool{}, rng: rand.New(rand.NewPCG(1, 9))}
	stop := startFaultyController(t, f, 8)

	createService(t, ns, "stuck", withAnnotation(heraldv1.AnnotationPool, "q9a"))
	held := waitIPs(t, ns, "stuck", 1)[0]
	f.setStuck("stuck", true)
	if err := patchService(context.Background(), ns, "stuck", func(s *corev1.Service) {
		s.Annotations[heraldv1.AnnotationPool] = "q9b"
	}); err != nil {
		t.Fatalf("moving Service stuck to pool q9b: %v", err)
	}
	f.failRate.Store(200)
	churn(t, ns, 3*time.Second, 42, "stuck")
	if got := ledger.showing(held); !slices.Equal(got, []string{"stuck"}) {
		t.Errorf("%s is shown by %v; want only by stuck, whose release write fails", held, got)
	}
	testpoll.Until(t, 10*time.Second, "the quarantine gauge to count the address", func() (bool, string) {
		v, ok := gaugeValue(t, "herald_addresses_quarantined")
		return ok && v >= 1, fmt.Sprintf("herald_addresses_quarantined=%v (present %v)", v, ok)
	})
	waitEvent(t, ns, "stuck", "StatusWriteFailed", held)

	// A restart rebuilds from Service status, where stuck still shows the address.
	stop()
	startFaultyController(t, f, 8)
	churn(t, ns, 2*time.Second, 43, "stuck")
	if got := ledger.showing(held); !slices.Equal(got, []string{"stuck"}) {
		t.Errorf("after a restart %s is shown by %v; want only by stuck", held, got)
	}

	// The write lands: stuck shows its new address and the old one goes to a
	// waiting Service (churn leaves more Services than addresses).
	f.failRate.Store(0)
	f.setStuck("stuck", false)
	if err := patchService(context.Background(), ns, "stuck", func(s *corev1.Service) {
		s.Labels = map[string]string{"poke": "1"} // an event, so the retry need not wait for its backoff
	}); err != nil {
		t.Fatalf("touching Service stuck: %v", err)
	}
	testpoll.Until(t, 20*time.Second, "the settled state", func() (bool, string) { return settled(t, ns) })
	ledger.check(t)
}

// TestRebuildResolvesTwoStatusesOnOneAddress: two Services whose statuses show one
// address when the controller starts (written by hand here) are settled the same
// way every time: the older keeps it, the younger is told by a Warning Event and
// given another address, and the two never both show it afterwards.
func TestRebuildResolvesTwoStatusesOnOneAddress(t *testing.T) {
	ns := newNamespace(t, nil)
	createPool(t, "q9c", pools("10.209.2.0/30"))
	t.Cleanup(func() { time.Sleep(200 * time.Millisecond) })
	ctx := context.Background()
	for _, name := range []string{"first", "second"} {
		createService(t, ns, name)
		s := getService(t, ns, name)
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "10.209.2.1"}}
		if err := k8s.Status().Update(ctx, s); err != nil {
			t.Fatalf("writing the status of %s: %v", name, err)
		}
	}
	startController(t, controllerOpts{})
	testpoll.Until(t, 10*time.Second, "second to show another address", func() (bool, string) {
		s := getService(t, ns, "second")
		ips := ingressIPs(s)
		return len(ips) == 1 && ips[0] != "10.209.2.1", describe(s)
	})
	if got := ingressIPs(getService(t, ns, "first")); !slices.Equal(got, []string{"10.209.2.1"}) {
		t.Errorf("first shows %v; want it to keep 10.209.2.1 (the older Service)", got)
	}
	waitEvent(t, ns, "second", "AddressConflict", "10.209.2.1")
}

// histogram returns the sample count and sum of an unlabelled histogram in the
// controller's registry.
func histogram(t *testing.T, name string) (uint64, float64) {
	t.Helper()
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	return 0, 0
}

// TestQuarantineDuration measures, on an idle controller, how long an address a
// Service gives up stays quarantined and how soon a waiting Service gets it: the
// holder of a one-address pool moves to another pool while a Service waits.
func TestQuarantineDuration(t *testing.T) {
	ns := newNamespace(t, nil)
	createPool(t, "q9d", pools("10.209.3.1/32"))
	createPool(t, "q9e", pools("10.209.4.0/28"))
	t.Cleanup(func() { time.Sleep(200 * time.Millisecond) })
	ctx := context.Background()
	startController(t, controllerOpts{logger: logr.Discard(), ipam: ipam.Options{Workers: 8}})
	count0, sum0 := histogram(t, "herald_address_quarantine_seconds")

	const rounds = 10
	holder := "h0"
	createService(t, ns, holder, withAnnotation(heraldv1.AnnotationPool, "q9d"))
	waitIPs(t, ns, holder, 1)
	var toLanded, toHanded []time.Duration
	for i := 1; i <= rounds; i++ {
		waiter := fmt.Sprintf("h%d", i)
		createService(t, ns, waiter, withAnnotation(heraldv1.AnnotationPool, "q9d"))
		waitCondition(t, ns, waiter, metav1.ConditionFalse, "PoolExhausted")
		moved := time.Now()
		if err := patchService(ctx, ns, holder, func(s *corev1.Service) { s.Annotations[heraldv1.AnnotationPool] = "q9e" }); err != nil {
			t.Fatalf("moving %s: %v", holder, err)
		}
		var landed time.Time
		testpoll.Until(t, 10*time.Second, waiter+" to get 10.209.3.1", func() (bool, string) {
			h := getService(t, ns, holder)
			if landed.IsZero() && !slices.Contains(ingressIPs(h), "10.209.3.1") {
				landed = time.Now()
			}
			w := getService(t, ns, waiter)
			return slices.Contains(ingressIPs(w), "10.209.3.1"), describe(w)
		})
		handed := time.Now()
		if landed.IsZero() {
			landed = handed
		}
		toLanded = append(toLanded, landed.Sub(moved))
		toHanded = append(toHanded, handed.Sub(moved))
		holder = waiter
	}
	count1, sum1 := histogram(t, "herald_address_quarantine_seconds")
	if count1-count0 < rounds {
		t.Errorf("herald_address_quarantine_seconds counted %d quarantines; want at least %d", count1-count0, rounds)
	}
	slices.Sort(toLanded)
	slices.Sort(toHanded)
	t.Logf("quarantine (controller's histogram, release decided → status write landed): mean %.1f ms over %d",
		(sum1-sum0)*1000/float64(max(count1-count0, 1)), count1-count0)
	t.Logf("pool edit → holder's status without the address (polled every %v): median %v, max %v", testpoll.Interval, toLanded[rounds/2].Round(time.Millisecond), toLanded[rounds-1].Round(time.Millisecond))
	t.Logf("pool edit → waiting Service shows the address: median %v, max %v", toHanded[rounds/2].Round(time.Millisecond), toHanded[rounds-1].Round(time.Millisecond))
}
