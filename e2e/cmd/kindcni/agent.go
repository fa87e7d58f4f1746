package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	// kubeconfigPoll is how often the agent looks for the kubeconfig: kubeadm
	// writes it once, during init or join, and a second is nothing next to a
	// node's boot.
	kubeconfigPoll = time.Second
	// retryInterval is the wait after a failed apply (a gateway not yet
	// reachable, a read-only directory) before trying again.
	retryInterval = 5 * time.Second
	// resyncInterval is the wait between applies when nothing changes. Node
	// events drive everything else; this only restores routes removed behind
	// the agent's back (an interface flap flushes the routes through it).
	resyncInterval = 5 * time.Minute
)

// waitForClient polls until a client can be built from the kubeconfig at path:
// until the file exists and the credentials it names can be read.
func waitForClient(ctx context.Context, log *slog.Logger, path string) (corev1client.NodesGetter, error) {
	tick := time.NewTicker(kubeconfigPoll)
	defer tick.Stop()
	var last string
	for {
		cs, err := newClient(path)
		if err == nil {
			return cs, nil
		}
		if err.Error() != last {
			last = err.Error()
			log.Info("Waiting for the kubeconfig", "path", path, "error", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

func newClient(path string) (corev1client.NodesGetter, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	rc.UserAgent = "herald-kindcni"
	cs, err := corev1client.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("building a client from %s: %w", path, err)
	}
	return cs, nil
}

// agent keeps the node's CNI configuration and pod routes in line with the Nodes.
// All its fields are owned by the goroutine calling Run.
type agent struct {
	log     *slog.Logger
	self    string
	confDir string
	routes  routeTable

	// lastSkipped and lastSelfFound are what the previous apply logged, so an
	// unchanged plan logs nothing.
	lastSkipped   []Skip
	lastSelfFound bool
	applied       bool
}

func newAgent(log *slog.Logger, self, confDir string, routes routeTable) *agent {
	return &agent{log: log, self: self, confDir: confDir, routes: routes}
}

// Run watches Nodes through cs and applies the plan on every change, after a
// failure (every retryInterval) and every resyncInterval, until ctx is done. It
// leaves the configuration and routes in place when it returns, so pods keep
// working across a restart of the agent.
func (a *agent) Run(ctx context.Context, cs corev1client.NodesGetter) error {
	nodes := cs.Nodes()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return nodes.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return nodes.Watch(ctx, o)
		},
	}
	inf := cache.NewSharedIndexInformer(lw, &corev1.Node{}, 0, cache.Indexers{})
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(_, _ any) { poke() },
		DeleteFunc: func(any) { poke() },
	}); err != nil {
		return fmt.Errorf("watching Nodes: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { inf.RunWithContext(ctx) })
	defer wg.Wait()
	defer cancel()

	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil // ctx is done
	}
	a.log.Info("Watching Nodes", "node", a.self)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
		case <-timer.C:
		}
		next := resyncInterval
		if err := a.apply(listNodes(inf.GetStore())); err != nil {
			a.log.Error("Applying the plan; will retry", "error", err, "retryIn", retryInterval)
			next = retryInterval
		}
		timer.Reset(next)
	}
}

func listNodes(s cache.Store) []*corev1.Node {
	var out []*corev1.Node
	for _, o := range s.List() {
		if n, ok := o.(*corev1.Node); ok {
			out = append(out, n)
		}
	}
	return out
}

// apply makes the node match the plan for nodes: it writes the CNI configuration
// when it differs from the file and syncs the routes. Both are attempted; the
// errors of both are returned.
func (a *agent) apply(nodes []*corev1.Node) error {
	p := MakePlan(a.self, nodes)
	a.logPlan(p)
	var errs []error
	if p.Conflist != nil {
		path := filepath.Join(a.confDir, ConflistName)
		changed, err := writeIfChanged(path, p.Conflist)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("writing the CNI configuration: %w", err))
		case changed:
			a.log.Info("Wrote the CNI configuration", "path", path, "podCIDRs", p.PodCIDRs)
		}
	}
	if err := syncRoutes(a.log, a.routes, p.Routes); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// logPlan logs what the plan leaves out, when that differs from the last plan.
func (a *agent) logPlan(p Plan) {
	if !p.SelfFound && (!a.applied || a.lastSelfFound) {
		a.log.Warn("Own Node not found", "node", a.self)
	}
	if !a.applied || !slices.Equal(p.Skipped, a.lastSkipped) {
		for _, s := range p.Skipped {
			a.log.Info("Skipped a pod CIDR", "node", s.Node, "podCIDR", s.PodCIDR, "reason", s.Reason.String())
		}
	}
	a.applied, a.lastSelfFound, a.lastSkipped = true, p.SelfFound, p.Skipped
}

// writeIfChanged replaces the file at path with data, atomically (a temporary
// file in the same directory, renamed over it), unless it already holds data. It
// reports whether it wrote. The temporary name does not end in .conf, .conflist
// or .json, so the container runtime never loads a half-written file.
func writeIfChanged(path string, data []byte) (bool, error) {
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	err = writeAndClose(f, data)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp) // best effort; the write error is the one to report
		return false, err
	}
	return true, nil
}

func writeAndClose(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
