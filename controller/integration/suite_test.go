//go:build integration

// Package integration tests the controller against a real kube-apiserver and etcd,
// built from their upstream Go modules by `make kube-bins` (envtest assets in
// KUBEBUILDER_ASSETS). Run with `make integration`.
package integration

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/controller/app"
	"github.com/heraldlb/herald/controller/ipam"
	"github.com/heraldlb/herald/internal/testpoll"
)

var (
	testEnv *envtest.Environment
	restCfg *rest.Config
	k8s     client.Client // uncached, straight to the API server
	cs      *kubernetes.Clientset
	nsSeq   atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run `make integration`, which builds the API server first")
		return 1
	}
	logf.SetLogger(logr.Discard())
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "manifests", "crds")},
		ErrorIfCRDPathMissing: true,
	}
	// Dual-stack Service CIDRs, so Services can ask for both families, and room
	// for the thousands of ClusterIPs the benchmarks create.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.96.0.0/16,fd00:96::/112")
	testEnv = env
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	cfg.QPS, cfg.Burst = 500, 1000
	restCfg = cfg
	scheme, err := app.Scheme()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cs = kubernetes.NewForConfigOrDie(cfg)
	return m.Run()
}

// controllerOpts tunes a test controller.
type controllerOpts struct {
	leaderElection bool
	noClassless    bool
	memberSecret   string
	ipam           ipam.Options
	logger         logr.Logger
	// wrap, when set, passes every API request of the controller through it
	// (fault injection).
	wrap func(http.RoundTripper) http.RoundTripper
}

// startController runs a controller until the returned stop is called (or the test
// ends) and returns it.
func startController(t testing.TB, o controllerOpts) (*ipam.Controller, func()) {
	t.Helper()
	if o.ipam.PoolStatusDelay == 0 {
		o.ipam.PoolStatusDelay = 50 * time.Millisecond
	}
	if o.logger.GetSink() == nil {
		w := &testWriter{t: t}
		// Registered before stop, so it runs after it: a controller goroutine that
		// logs while shutting down must not log into a finished test.
		t.Cleanup(w.close)
		o.logger = logr.FromSlogHandler(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	cfg := app.Config{
		MetricsAddr:             "0",
		ProbeAddr:               "0",
		LeaderElection:          o.leaderElection,
		LeaderElectionNamespace: "default",
		LeaderElectionID:        "herald-test",
		LeaseDuration:           6 * time.Second,
		RenewDeadline:           4 * time.Second,
		RetryPeriod:             300 * time.Millisecond,
		IPAM:                    o.ipam,
		SkipNameValidation:      true,
		MemberlistSecret:        o.memberSecret,
		Logger:                  o.logger,
	}
	cfg.IPAM.Classless = !o.noClassless
	rc := restCfg
	if o.wrap != nil {
		rc = rest.CopyConfig(restCfg)
		rc.WrapTransport = o.wrap
	}
	mgr, c, err := app.New(rc, cfg)
	if err != nil {
		t.Fatalf("building controller: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once atomic.Bool
	stop := func() {
		if once.Swap(true) {
			return
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller stopped with: %v", err)
		}
	}
	t.Cleanup(stop)
	return c, stop
}

// testWriter sends log lines to the test's log until the test ends.
type testWriter struct {
	t      testing.TB
	mu     sync.Mutex
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

// newNamespace creates a namespace for one test. envtest runs no namespace
// controller, so cleanup deletes the test's Services itself.
func newNamespace(t testing.TB, labels map[string]string) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", nsSeq.Add(1), strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")))
	if len(name) > 60 {
		name = name[:60]
	}
	name = strings.TrimRight(name, "-")
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() {
		// Services have no deletecollection.
		ctx := context.Background()
		var list corev1.ServiceList
		if err := k8s.List(ctx, &list, client.InNamespace(name)); err != nil {
			t.Errorf("listing Services to clean up: %v", err)
			return
		}
		for i := range list.Items {
			if err := k8s.Delete(ctx, &list.Items[i]); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("cleaning up Service %s: %v", list.Items[i].Name, err)
			}
		}
	})
	return name
}

// createPool creates an IPPool and deletes it when the test ends.
func createPool(t testing.TB, name string, spec heraldv1.IPPoolSpec) *heraldv1.IPPool {
	t.Helper()
	p := &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
	if err := k8s.Create(context.Background(), p); err != nil {
		t.Fatalf("creating IPPool %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = k8s.Delete(context.Background(), &heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}})
	})
	return p
}

type svcOpt func(*corev1.Service)

func withAnnotation(k, v string) svcOpt {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
	}
}

func withPorts(ports ...int32) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.Ports = nil
		for _, p := range ports {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: fmt.Sprintf("p%d", p), Port: p, TargetPort: intstr.FromInt32(p), Protocol: corev1.ProtocolTCP})
		}
	}
}

func withDualStack(policy corev1.IPFamilyPolicy) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = &policy
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	}
}

func withClass(c string) svcOpt { return func(s *corev1.Service) { s.Spec.LoadBalancerClass = &c } }

// newService builds a LoadBalancer Service; allocateLoadBalancerNodePorts is off so
// thousands of them do not exhaust the NodePort range.
func newService(ns, name string, opts ...svcOpt) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			AllocateLoadBalancerNodePorts: ptr.To(false),
			Selector:                      map[string]string{"app": name},
		},
	}
	withPorts(80)(s)
	for _, o := range opts {
		o(s)
	}
	return s
}

func createService(t testing.TB, ns, name string, opts ...svcOpt) *corev1.Service {
	t.Helper()
	s := newService(ns, name, opts...)
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatalf("creating Service %s: %v", name, err)
	}
	return s
}

func getService(t testing.TB, ns, name string) *corev1.Service {
	t.Helper()
	var s corev1.Service
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		t.Fatalf("reading Service %s/%s: %v", ns, name, err)
	}
	return &s
}

func ingressIPs(s *corev1.Service) []string {
	var out []string
	for _, i := range s.Status.LoadBalancer.Ingress {
		out = append(out, i.IP)
	}
	return out
}

// waitIPs waits until the Service shows n addresses and returns them.
func waitIPs(t testing.TB, ns, name string, n int) []string {
	t.Helper()
	var ips []string
	testpoll.Until(t, 10*time.Second, fmt.Sprintf("%d address(es) on Service %s/%s", n, ns, name), func() (bool, string) {
		s := getService(t, ns, name)
		ips = ingressIPs(s)
		return len(ips) == n, describe(s)
	})
	return ips
}

// waitCondition waits until the Service's herald.io/IPAllocated condition has the
// status and reason given, and returns it.
func waitCondition(t testing.TB, ns, name string, status metav1.ConditionStatus, reason string) metav1.Condition {
	t.Helper()
	var got metav1.Condition
	testpoll.Until(t, 10*time.Second, fmt.Sprintf("condition %s=%s reason %s on %s/%s", heraldv1.ConditionIPAllocated, status, reason, ns, name), func() (bool, string) {
		s := getService(t, ns, name)
		c := meta.FindStatusCondition(s.Status.Conditions, heraldv1.ConditionIPAllocated)
		if c == nil {
			return false, describe(s)
		}
		got = *c
		return c.Status == status && c.Reason == reason, describe(s)
	})
	return got
}

func describe(s *corev1.Service) string {
	c := meta.FindStatusCondition(s.Status.Conditions, heraldv1.ConditionIPAllocated)
	if c == nil {
		return fmt.Sprintf("ingress=%v, no condition", ingressIPs(s))
	}
	return fmt.Sprintf("ingress=%v, condition %s/%s: %s", ingressIPs(s), c.Status, c.Reason, c.Message)
}

// waitEvent waits for an Event with the reason on the named Service, whose message
// contains want, and returns its message.
func waitEvent(t testing.TB, ns, name, reason, want string) string {
	t.Helper()
	var msg string
	testpoll.Until(t, 10*time.Second, fmt.Sprintf("Event %s on %s/%s containing %q", reason, ns, name, want), func() (bool, string) {
		var evs corev1.EventList
		if err := k8s.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == name && e.Reason == reason && strings.Contains(e.Message, want) {
				msg = e.Message
				return true, ""
			}
			seen = append(seen, e.InvolvedObject.Name+":"+e.Reason+":"+e.Message)
		}
		return false, strings.Join(seen, " | ")
	})
	return msg
}

func mustAddr(t testing.TB, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("parsing %q: %v", s, err)
	}
	return a
}

func deleteService(t testing.TB, ns, name string) {
	t.Helper()
	if err := k8s.Delete(context.Background(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("deleting Service %s/%s: %v", ns, name, err)
	}
}

func pools(addrs ...string) heraldv1.IPPoolSpec { return heraldv1.IPPoolSpec{Addresses: addrs} }

// updatePool changes an IPPool's spec, retrying when the controller's status write
// got there first.
func updatePool(t testing.TB, name string, change func(*heraldv1.IPPool)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var p heraldv1.IPPool
		if err := k8s.Get(context.Background(), client.ObjectKey{Name: name}, &p); err != nil {
			return err
		}
		change(&p)
		return k8s.Update(context.Background(), &p)
	})
	if err != nil {
		t.Fatalf("updating IPPool %s: %v", name, err)
	}
}

// quiet is a logger for benchmarks: warnings and errors only.
func quiet() logr.Logger {
	return logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
