package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/heraldlb/herald/internal/testpoll"
)

// fakeTable is a routeTable in memory.
type fakeTable struct {
	mu sync.Mutex
	// routes maps each owned destination to its next hop.
	routes map[netip.Prefix]netip.Addr
	// fail, when set, is returned by Replace and Delete for that destination.
	fail map[netip.Prefix]error
	// ops records Replace and Delete calls, "replace <route>" or "delete <route>".
	ops []string
}

var _ routeTable = (*fakeTable)(nil)

func newFakeTable(rs ...Route) *fakeTable {
	f := &fakeTable{routes: map[netip.Prefix]netip.Addr{}, fail: map[netip.Prefix]error{}}
	for _, r := range rs {
		f.routes[r.Dst] = r.Via
	}
	return f
}

func (f *fakeTable) List() ([]Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Route
	for dst, via := range f.routes {
		out = append(out, Route{dst, via})
	}
	return out, nil
}

func (f *fakeTable) Replace(r Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, "replace "+r.String())
	if err := f.fail[r.Dst]; err != nil {
		return err
	}
	f.routes[r.Dst] = r.Via
	return nil
}

func (f *fakeTable) Delete(r Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, "delete "+r.String())
	if err := f.fail[r.Dst]; err != nil {
		return err
	}
	delete(f.routes, r.Dst)
	return nil
}

// state describes the table as sorted "dst via via" strings.
func (f *fakeTable) state() []string {
	rs, _ := f.List()
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	slices.Sort(out)
	return out
}

func (f *fakeTable) takeOps() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ops := f.ops
	f.ops = nil
	return ops
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func TestSyncRoutes(t *testing.T) {
	tab := newFakeTable(
		route("10.244.1.0/24", "172.18.0.3"),   // kept
		route("10.244.2.0/24", "172.18.0.9"),   // moved
		route("10.244.7.0/24", "172.18.0.7"),   // stale
		route("fd00:10:244:7::/64", "fc00::7"), // stale
	)
	desired := []Route{
		route("10.244.1.0/24", "172.18.0.3"),
		route("10.244.2.0/24", "172.18.0.4"),
		route("fd00:10:244:1::/64", "fc00::3"),
	}
	if err := syncRoutes(testLogger(t), tab, desired); err != nil {
		t.Fatalf("syncRoutes: %v", err)
	}
	want := []string{"10.244.1.0/24 via 172.18.0.3", "10.244.2.0/24 via 172.18.0.4", "fd00:10:244:1::/64 via fc00::3"}
	if got := tab.state(); !slices.Equal(got, want) {
		t.Errorf("routes = %q; want %q", got, want)
	}
	ops := tab.takeOps()
	if slices.Contains(ops, "replace 10.244.1.0/24 via 172.18.0.3") {
		t.Errorf("ops = %q; an unchanged route was replaced", ops)
	}
	if err := syncRoutes(testLogger(t), tab, desired); err != nil {
		t.Fatalf("second syncRoutes: %v", err)
	}
	if ops := tab.takeOps(); len(ops) != 0 {
		t.Errorf("second syncRoutes did %q; want nothing", ops)
	}
}

func TestSyncRoutesGoesOnPastFailures(t *testing.T) {
	errUnreachable := errors.New("network is unreachable")
	tab := newFakeTable(route("10.244.7.0/24", "172.18.0.7"), route("10.244.8.0/24", "172.18.0.8"))
	tab.fail[netip.MustParsePrefix("10.244.1.0/24")] = errUnreachable
	tab.fail[netip.MustParsePrefix("10.244.7.0/24")] = errUnreachable
	desired := []Route{route("10.244.1.0/24", "172.18.0.3"), route("10.244.2.0/24", "172.18.0.4")}
	err := syncRoutes(testLogger(t), tab, desired)
	if !errors.Is(err, errUnreachable) {
		t.Fatalf("syncRoutes = %v; want it to wrap %v", err, errUnreachable)
	}
	for _, s := range []string{"10.244.1.0/24", "10.244.7.0/24"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
	want := []string{"10.244.2.0/24 via 172.18.0.4", "10.244.7.0/24 via 172.18.0.7"}
	if got := tab.state(); !slices.Equal(got, want) {
		t.Errorf("routes = %q; want %q", got, want)
	}
}

func TestWriteIfChanged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net.d") // created on first write
	path := filepath.Join(dir, ConflistName)
	for i, step := range []struct {
		data        string
		wantChanged bool
	}{{"one", true}, {"one", false}, {"two", true}} {
		changed, err := writeIfChanged(path, []byte(step.data))
		if err != nil {
			t.Fatalf("step %d: writeIfChanged: %v", i, err)
		}
		if changed != step.wantChanged {
			t.Errorf("step %d: changed = %v; want %v", i, changed, step.wantChanged)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != step.data {
			t.Errorf("step %d: file = %q, %v; want %q", i, got, err, step.data)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Errorf("directory holds %v; want only %s (no temporary files left)", ents, ConflistName)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v; want 0644", fi.Mode().Perm())
	}
}

func TestApply(t *testing.T) {
	dir := t.TempDir()
	tab := newFakeTable(route("10.244.9.0/24", "172.18.0.9")) // left by a previous run
	a := newAgent(testLogger(t), "a", dir, tab)
	path := filepath.Join(dir, ConflistName)

	// Before the controller manager assigns pod CIDRs: no file, routes synced.
	nodes := []*corev1.Node{node("a", nil, "172.18.0.2"), node("b", []string{"10.244.1.0/24"}, "172.18.0.3")}
	if err := a.apply(nodes); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat %s = %v; want no file before the Node has pod CIDRs", path, err)
	}
	if got, want := tab.state(), []string{"10.244.1.0/24 via 172.18.0.3"}; !slices.Equal(got, want) {
		t.Errorf("routes = %q; want %q", got, want)
	}

	nodes[0] = node("a", []string{"10.244.0.0/24"}, "172.18.0.2")
	if err := a.apply(nodes); err != nil {
		t.Fatalf("apply: %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != string(conflist(prefixes("10.244.0.0/24"))) {
		t.Errorf("%s = %q, %v; want the IPv4 conflist", path, got, err)
	}

	// A failing route does not stop the file; the error names the route.
	tab.fail[netip.MustParsePrefix("10.244.1.0/24")] = errors.New("boom")
	nodes[1] = node("b", []string{"10.244.1.0/24"}, "172.18.0.33")
	nodes[0] = node("a", []string{"10.244.0.0/24", "fd00:10:244::/64"}, "172.18.0.2")
	err = a.apply(nodes)
	if err == nil || !strings.Contains(err.Error(), "10.244.1.0/24") {
		t.Errorf("apply = %v; want the failed route", err)
	}
	got, _ = os.ReadFile(path)
	if !strings.Contains(string(got), "fd00:10:244::/64") {
		t.Errorf("%s = %s; want the dual-stack conflist despite the route failure", path, got)
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ConflistName)
	tab := newFakeTable(route("10.244.9.0/24", "172.18.0.9"))
	cs := fake.NewClientset(
		node("a", []string{"10.244.0.0/24"}, "172.18.0.2"),
		node("b", []string{"10.244.1.0/24"}, "172.18.0.3"),
		node("c", []string{"10.244.2.0/24"}, "172.18.0.4"),
	)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- newAgent(testLogger(t), "a", dir, tab).Run(ctx, cs.CoreV1()) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v; want nil after cancel", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}()

	waitRoutes := func(what string, want ...string) {
		t.Helper()
		testpoll.Until(t, 10*time.Second, what, func() (bool, string) {
			got := tab.state()
			return slices.Equal(got, want), fmt.Sprint(got)
		})
	}
	waitRoutes("routes to b and c, the stale route gone", "10.244.1.0/24 via 172.18.0.3", "10.244.2.0/24 via 172.18.0.4")
	testpoll.Until(t, 10*time.Second, "the conflist", func() (bool, string) {
		got, err := os.ReadFile(path)
		return err == nil && strings.Contains(string(got), "10.244.0.0/24"), fmt.Sprint(err)
	})

	nodes := cs.CoreV1().Nodes()
	b := node("b", []string{"10.244.1.0/24"}, "172.18.0.30")
	if _, err := nodes.Update(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRoutes("b's route moved", "10.244.1.0/24 via 172.18.0.30", "10.244.2.0/24 via 172.18.0.4")

	if err := nodes.Delete(ctx, "c", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRoutes("c's route gone", "10.244.1.0/24 via 172.18.0.30")

	d := node("d", []string{"fd00:10:244:3::/64"}, "fc00::5")
	if _, err := nodes.Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRoutes("d's route", "10.244.1.0/24 via 172.18.0.30", "fd00:10:244:3::/64 via fc00::5")
}

func TestWaitForClient(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubelet.conf")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := waitForClient(ctx, testLogger(t), path)
		done <- err
	}()
	time.Sleep(kubeconfigPoll + kubeconfigPoll/2) // two looks
	select {
	case err := <-done:
		t.Fatalf("waitForClient returned %v before the kubeconfig existed", err)
	default:
	}
	kubeconfig := `apiVersion: v1
kind: Config
clusters:
- name: kind
  cluster:
    server: https://127.0.0.1:6443
users:
- name: node
  user:
    token: secret
contexts:
- name: default
  context: {cluster: kind, user: node}
current-context: default
`
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("waitForClient = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waitForClient did not return after the kubeconfig appeared")
	}

	// Cancelled while waiting: returns the context's error.
	cancel()
	if _, err := waitForClient(ctx, testLogger(t), filepath.Join(t.TempDir(), "none")); !errors.Is(err, context.Canceled) {
		t.Errorf("waitForClient after cancel = %v; want %v", err, context.Canceled)
	}
}

// TestNewClientMissingCert pins that a kubeconfig whose client certificate is not
// written yet (the kubelet's, right after a join) is not a client yet.
func TestNewClientMissingCert(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kubelet.conf")
	kubeconfig := `apiVersion: v1
kind: Config
clusters:
- name: kind
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: node
  user:
    client-certificate: ` + filepath.Join(dir, "kubelet-client-current.pem") + `
    client-key: ` + filepath.Join(dir, "kubelet-client-current.pem") + `
contexts:
- name: default
  context: {cluster: kind, user: node}
current-context: default
`
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newClient(path); err == nil {
		t.Error("newClient succeeded without the client certificate")
	}
}
