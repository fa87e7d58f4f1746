// Package lab builds herald's end-to-end lab on one Linux machine, as root: network
// namespaces joined by a bridge, a real etcd and kube-apiserver, kube-proxy (iptables
// mode) in every node namespace, "pods" that are namespaces running a whoami HTTP
// server, and, when configured, herald's controller and speakers. DESIGN.md, section
// "The lab (e2e/)", says why; LAB.md records what was proven on the machine.
//
// Everything the lab creates lives in namespaces named lab-*, plus one veth whose host
// end (herald-lab, 10.88.0.1/30, with a host route to 10.77.0.2) lets host processes
// such as kubectl and tests reach the API server; it goes with the control-plane
// namespace. Down removes every lab-* namespace, so there is one lab per machine.
package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
)

// Lab is a running lab. Its methods are safe for concurrent use.
type Lab struct {
	cfg   Config
	nodes []Node
	cs    kubernetes.Interface

	mu sync.Mutex // guards st
	st state

	routerMu sync.Mutex // serialises changes to the router's bgpd
}

// state is what a later process needs to take the lab over, kept in state.json.
type state struct {
	Fingerprint string `json:"fingerprint"`
	Pods        []Pod  `json:"pods"`
	// NextPod numbers the node-side veths of pods (vp<N>): pod names may be longer
	// than an interface name.
	NextPod int `json:"nextPod"`
}

// errNotUp says there is no lab to reuse.
var errNotUp = errors.New("no lab is up")

// Up brings the lab up and returns it. When a lab built from the same configuration
// is already up and healthy it is reused, and whatever process of it has died or
// whose binary changed (a kube-proxy, a pod's server, the controller, a speaker,
// zebra, bgpd, BIRD) is started again, and the router's configuration is reset to
// the default; otherwise whatever is left of an earlier lab is torn down first.
func Up(ctx context.Context, cfg Config) (*Lab, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkPrereqs(cfg); err != nil {
		return nil, err
	}
	unlock, err := lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()

	start := time.Now()
	l, err := reuse(ctx, cfg)
	if err == nil {
		cfg.logf("lab reused in %v", time.Since(start).Round(time.Millisecond))
		return l, nil
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("checking the running lab: %w", err)
	}
	if !errors.Is(err, errNotUp) {
		cfg.logf("rebuilding the lab: %v", err)
	}
	if err := teardown(cfg); err != nil {
		return nil, fmt.Errorf("tearing down the previous lab: %w", err)
	}
	if l, err = build(ctx, cfg); err != nil {
		return nil, fmt.Errorf("building the lab (logs in %s; `go run ./e2e/cmd/lab down` removes it): %w", cfg.logDir(), err)
	}
	cfg.logf("lab up in %v", time.Since(start).Round(time.Millisecond))
	return l, nil
}

// Open returns the lab that is up, without checking or changing anything; it fails
// when none is.
func Open(cfg Config) (*Lab, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	st, err := loadState(cfg)
	if err != nil {
		return nil, err
	}
	return newLab(cfg, st)
}

// Down tears the lab down completely: every process in a lab namespace is killed,
// the namespaces are deleted and the state directory is removed. It is safe to call
// more than once.
func (l *Lab) Down() error {
	return Down(l.cfg)
}

// Down tears down whatever lab cfg names, whether or not it is healthy or was built
// by this process.
func Down(cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	unlock, err := lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return teardown(cfg)
}

// Check reports the first thing wrong with the lab: a missing namespace, a process
// that stopped, or an API server that is not ready.
func (l *Lab) Check(ctx context.Context) error {
	if err := checkTopology(l.cfg, l.Pods()); err != nil {
		return err
	}
	for _, p := range l.Processes() {
		if !p.Running {
			return fmt.Errorf("%s (PID %d) is not running; see %s", p.Name, p.PID, p.Log)
		}
	}
	if err := l.apiReady(ctx); err != nil {
		return fmt.Errorf("the API server is not ready: %w", err)
	}
	return nil
}

// Config returns the lab's configuration, with defaults filled in.
func (l *Lab) Config() Config {
	c := l.cfg
	c.SpeakerArgs = slices.Clone(c.SpeakerArgs)
	c.ControllerArgs = slices.Clone(c.ControllerArgs)
	return c
}

// StateDir returns the directory holding the lab's logs, keys and kubeconfig.
func (l *Lab) StateDir() string { return l.cfg.StateDir }

// LogPath returns the log file of a lab process: "etcd", "kube-apiserver",
// "controller", "kube-proxy-node1", "speaker-node1", "whoami-<pod>", "zebra",
// "bgpd", "bird".
func (l *Lab) LogPath(process string) string { return l.cfg.logPath(process) }

func newLab(cfg Config, st state) (*Lab, error) {
	if cfg.WhoamiBinary == "" {
		cfg.WhoamiBinary = cfg.defaultWhoamiPath()
	}
	l := &Lab{cfg: cfg, nodes: nodesFor(cfg.Nodes), st: st}
	rc, err := restConfig(cfg)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("building the Kubernetes client: %w", err)
	}
	l.cs = cs
	return l, nil
}

// build creates a lab from nothing.
func build(ctx context.Context, cfg Config) (*Lab, error) {
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the state directory: %w", err)
	}
	if err := os.WriteFile(cfg.markerPath(), []byte("herald lab state; removed by `go run ./e2e/cmd/lab down`\n"), 0o600); err != nil {
		return nil, fmt.Errorf("marking the state directory: %w", err)
	}
	fp, err := fingerprint(cfg)
	if err != nil {
		return nil, err
	}
	st := state{Fingerprint: fp}
	t := time.Now()
	took := func(what string) {
		cfg.logf("%s: %v", what, time.Since(t).Round(time.Millisecond))
		t = time.Now()
	}
	// whoami builds while the control plane starts: a cold build takes seconds.
	type built struct {
		path string
		err  error
	}
	whoami := make(chan built, 1)
	go func() {
		path, err := buildWhoami(ctx, cfg)
		whoami <- built{path, err}
	}()
	if err := writeCredentials(cfg); err != nil {
		return nil, err
	}
	if err := createTopology(ctx, cfg); err != nil {
		return nil, err
	}
	took("network")
	// The routers start while the control plane does.
	routers := make(chan error, 1)
	go func() { routers <- ensureRouters(ctx, cfg) }()
	if err := startControlPlane(ctx, cfg); err != nil {
		<-routers
		return nil, err
	}
	took("etcd and kube-apiserver ready")
	if err := <-routers; err != nil {
		return nil, err
	}
	w := <-whoami
	if w.err != nil {
		return nil, w.err
	}
	cfg.WhoamiBinary = w.path
	l, err := newLab(cfg, st)
	if err != nil {
		return nil, err
	}
	if err := l.saveState(); err != nil {
		return nil, err
	}
	if err := l.ensureObjects(ctx); err != nil {
		return nil, err
	}
	if err := l.ensureAgents(ctx); err != nil {
		return nil, err
	}
	took("nodes, kube-proxy, controller and speakers ready")
	return l, nil
}

// reuse returns the running lab when it is healthy and built from the same
// configuration, after restarting whichever of its lesser processes stopped.
func reuse(ctx context.Context, cfg Config) (*Lab, error) {
	st, err := loadState(cfg)
	if err != nil {
		return nil, err
	}
	fp, err := fingerprint(cfg)
	if err != nil {
		return nil, err
	}
	if st.Fingerprint != fp {
		return nil, errors.New("it was built from another configuration or other binaries")
	}
	if cfg.WhoamiBinary == "" {
		cfg.WhoamiBinary = cfg.defaultWhoamiPath()
	}
	if !fileExists(cfg.WhoamiBinary) {
		return nil, fmt.Errorf("the whoami binary %s is missing", cfg.WhoamiBinary)
	}
	if err := checkTopology(cfg, st.Pods); err != nil {
		return nil, err
	}
	for _, p := range controlPlaneProcs(cfg) {
		if !running(cfg, p) {
			return nil, fmt.Errorf("%s is not running", p.name)
		}
	}
	l, err := newLab(cfg, st)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := l.apiReady(rctx); err != nil {
		return nil, fmt.Errorf("the API server is not ready: %w", err)
	}
	if err := l.ensureObjects(ctx); err != nil {
		return nil, err
	}
	if err := l.ensureAgents(ctx); err != nil {
		return nil, err
	}
	if err := l.ensurePods(ctx); err != nil {
		return nil, err
	}
	if err := ensureRouters(ctx, cfg); err != nil {
		return nil, err
	}
	return l, nil
}

// teardown kills every process of the lab, deletes its namespaces and removes the
// state directory. The caller holds the lock.
func teardown(cfg Config) error {
	var errs []error
	nss, err := labNamespaces()
	if err != nil {
		return err
	}
	pids := map[int]bool{}
	for _, ns := range nss {
		ps, err := netnsPIDs(ns)
		if err != nil {
			errs = append(errs, err)
		}
		for _, p := range ps {
			pids[p] = true
		}
	}
	// A process whose namespace is already gone is found through its PID file.
	for _, rec := range pidRecords(cfg) {
		if rec.alive() {
			pids[rec.PID] = true
		}
	}
	delete(pids, os.Getpid())
	if err := killAll(pids); err != nil {
		errs = append(errs, err)
	}
	for _, ns := range nss {
		if err := runIP("netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := deleteHostLink(); err != nil {
		errs = append(errs, err)
	}
	if err := removeStateDir(cfg); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 && len(nss) > 0 {
		cfg.logf("lab down: %d namespaces removed", len(nss))
	}
	return errors.Join(errs...)
}

// removeStateDir removes the state directory, but only one the lab made: a mistyped
// HERALD_LAB_DIR must not cost anyone their files.
func removeStateDir(cfg Config) error {
	if _, err := os.Stat(cfg.StateDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(cfg.markerPath()); err != nil {
		return fmt.Errorf("not removing %s: it has no %s, so the lab did not make it", cfg.StateDir, filepath.Base(cfg.markerPath()))
	}
	if err := os.RemoveAll(cfg.StateDir); err != nil {
		return fmt.Errorf("removing the state directory: %w", err)
	}
	return nil
}

func loadState(cfg Config) (state, error) {
	var st state
	b, err := os.ReadFile(cfg.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return st, errNotUp
	}
	if err != nil {
		return st, fmt.Errorf("reading the lab state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("reading the lab state %s: %w", cfg.statePath(), err)
	}
	return st, nil
}

func (l *Lab) saveState() error {
	l.mu.Lock()
	b, err := json.MarshalIndent(l.st, "", "  ")
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("encoding the lab state: %w", err)
	}
	tmp := l.cfg.statePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("writing the lab state: %w", err)
	}
	if err := os.Rename(tmp, l.cfg.statePath()); err != nil {
		return fmt.Errorf("writing the lab state: %w", err)
	}
	return nil
}
