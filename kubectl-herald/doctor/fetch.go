package doctor

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/kubeproxy"
	"github.com/heraldlb/herald/internal/version"
)

const (
	// defaultMetricsPort is the speaker's --metrics-addr port in install.yaml,
	// used when its pod names no "metrics" port.
	defaultMetricsPort = 7474
	// scrapeTimeout bounds each speaker's /metrics request: the proxied request
	// crosses the API server to the node, and one unreachable node must not
	// hold up the report.
	scrapeTimeout = 5 * time.Second
	// scrapeParallel bounds the requests in flight, to spare the API server on
	// large clusters.
	scrapeParallel = 16
)

// lazy holds one read, made the first time a check needs it.
type lazy[T any] struct {
	once sync.Once
	v    T
	err  error
}

func (l *lazy[T]) get(f func() (T, error)) (T, error) {
	l.once.Do(func() { l.v, l.err = f() })
	return l.v, l.err
}

// fetcher reads what the checks need, each object once, and turns read failures
// into skipped checks.
type fetcher struct {
	c      Clients
	now    func() time.Time
	plugin string

	nodes lazy[[]corev1.Node]
	pools lazy[[]heraldv1.IPPool]
	ds    lazy[*appsv1.DaemonSet] // nil when absent
	dep   lazy[*appsv1.Deployment]
	pods  lazy[[]corev1.Pod] // the speaker DaemonSet's
}

func newFetcher(c Clients) *fetcher {
	return &fetcher{c: c, now: time.Now, plugin: version.Version}
}

// unreadable is the check name's result when what could not be read: skipped
// when forbidden (canI is what to ask `kubectl auth can-i`) or when the resource
// does not exist, an error otherwise (the API server is unwell or unreachable).
func unreadable(name, what, canI string, err error) Check {
	c := Check{Name: name}
	switch {
	case apierrors.IsForbidden(err):
		c.Status = StatusSkipped
		c.Message = fmt.Sprintf("cannot read %s: forbidden", what)
		c.Hint = "needs RBAC for: kubectl auth can-i " + canI
	case meta.IsNoMatchError(err) || apierrors.IsNotFound(err):
		c.Status = StatusSkipped
		c.Message = fmt.Sprintf("cannot read %s: the API server has no such resource (%v)", what, err)
		c.Hint = installHint
	default:
		c.Status = StatusError
		c.Message = fmt.Sprintf("reading %s: %v", what, err)
	}
	return c
}

// absent turns NotFound into a nil object, so checks can say "not installed".
func absent[T any](v *T, err error) (*T, error) {
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

func (f *fetcher) getNodes(ctx context.Context) ([]corev1.Node, error) {
	return f.nodes.get(func() ([]corev1.Node, error) {
		l, err := f.c.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		return l.Items, nil
	})
}

func (f *fetcher) getPools(ctx context.Context) ([]heraldv1.IPPool, error) {
	return f.pools.get(func() ([]heraldv1.IPPool, error) {
		var l heraldv1.IPPoolList
		if err := f.c.Client.List(ctx, &l); err != nil {
			return nil, err
		}
		return l.Items, nil
	})
}

func (f *fetcher) getDaemonSet(ctx context.Context) (*appsv1.DaemonSet, error) {
	return f.ds.get(func() (*appsv1.DaemonSet, error) {
		return absent(f.c.Kube.AppsV1().DaemonSets(Namespace).Get(ctx, SpeakerName, metav1.GetOptions{}))
	})
}

func (f *fetcher) getDeployment(ctx context.Context) (*appsv1.Deployment, error) {
	return f.dep.get(func() (*appsv1.Deployment, error) {
		return absent(f.c.Kube.AppsV1().Deployments(Namespace).Get(ctx, ControllerName, metav1.GetOptions{}))
	})
}

// getSpeakerPods lists the pods the speaker DaemonSet ds selects.
func (f *fetcher) getSpeakerPods(ctx context.Context, ds *appsv1.DaemonSet) ([]corev1.Pod, error) {
	return f.pods.get(func() ([]corev1.Pod, error) {
		sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
		if err != nil {
			return nil, fmt.Errorf("the DaemonSet's selector: %w", err)
		}
		l, err := f.c.Kube.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return nil, err
		}
		return l.Items, nil
	})
}

func (f *fetcher) crds(ctx context.Context) Check {
	d := f.c.Kube.Discovery()
	l, err := d.ServerResourcesForGroupVersion(heraldv1.GroupVersion.String())
	switch {
	case apierrors.IsNotFound(err):
		var other []string
		if groups, gerr := d.ServerGroups(); gerr == nil {
			for _, g := range groups.Groups {
				if g.Name == heraldv1.GroupVersion.Group {
					for _, v := range g.Versions {
						other = append(other, v.Version)
					}
				}
			}
		}
		return checkCRDs(nil, other)
	case err != nil:
		return unreadable(CheckCRDs, "API discovery of "+heraldv1.GroupVersion.String(), "get /apis", err)
	}
	served := []string{}
	for _, r := range l.APIResources {
		served = append(served, r.Name)
	}
	return checkCRDs(served, nil)
}

func (f *fetcher) controller(ctx context.Context) Check {
	dep, err := f.getDeployment(ctx)
	if err != nil {
		return unreadable(CheckController, "deployment "+Namespace+"/"+ControllerName, "get deployments -n "+Namespace, err)
	}
	var lease *coordinationv1.Lease
	note := ""
	if dep != nil {
		lease, err = absent(f.c.Kube.CoordinationV1().Leases(Namespace).Get(ctx, ControllerName, metav1.GetOptions{}))
		switch {
		case apierrors.IsForbidden(err):
			note = "leader Lease not checked (forbidden: kubectl auth can-i get leases -n " + Namespace + ")"
		case err != nil:
			note = fmt.Sprintf("leader Lease unreadable: %v", err)
		}
	}
	return checkController(dep, lease, note, f.now())
}

func (f *fetcher) speakers(ctx context.Context) Check {
	ds, err := f.getDaemonSet(ctx)
	if err != nil {
		return unreadable(CheckSpeakers, "daemonset "+Namespace+"/"+SpeakerName, "get daemonsets -n "+Namespace, err)
	}
	if ds == nil {
		return checkSpeakers(nil, nil, nil)
	}
	pods, err := f.getSpeakerPods(ctx, ds)
	if err != nil {
		return unreadable(CheckSpeakers, "the speaker pods", "list pods -n "+Namespace, err)
	}
	nodes, err := f.getNodes(ctx)
	if err != nil {
		return unreadable(CheckSpeakers, "nodes", "list nodes", err)
	}
	return checkSpeakers(ds, pods, nodes)
}

func (f *fetcher) versions(ctx context.Context) Check {
	dep, err := f.getDeployment(ctx)
	if err != nil {
		return unreadable(CheckVersions, "deployment "+Namespace+"/"+ControllerName, "get deployments -n "+Namespace, err)
	}
	ds, err := f.getDaemonSet(ctx)
	if err != nil {
		return unreadable(CheckVersions, "daemonset "+Namespace+"/"+SpeakerName, "get daemonsets -n "+Namespace, err)
	}
	return checkVersions(dep, ds, f.plugin)
}

func (f *fetcher) kubeProxy(ctx context.Context) Check {
	cm, err := f.c.Kube.CoreV1().ConfigMaps(kubeproxy.Namespace).Get(ctx, kubeproxy.Name, metav1.GetOptions{})
	what := "configmap " + kubeproxy.Namespace + "/" + kubeproxy.Name
	switch {
	case apierrors.IsNotFound(err):
		return Check{Name: CheckKubeProxy, Status: StatusSkipped,
			Message: "no ConfigMap " + kubeproxy.Namespace + "/" + kubeproxy.Name + ": kube-proxy is not kubeadm-style; check kube-proxy's flags",
			Hint:    "in IPVS mode (--proxy-mode=ipvs), kube-proxy needs --ipvs-strict-arp for herald's layer 2 mode"}
	case err != nil:
		return unreadable(CheckKubeProxy, what, "get configmaps/kube-proxy -n kube-system", err)
	}
	conf, ok := cm.Data[kubeproxy.ConfigKey]
	if !ok {
		return Check{Name: CheckKubeProxy, Status: StatusSkipped,
			Message: what + " has no " + kubeproxy.ConfigKey + ": not kubeadm-style; check kube-proxy's flags"}
	}
	l2 := -1
	var list heraldv1.L2AnnouncementList
	if err := f.c.Client.List(ctx, &list); err == nil {
		l2 = len(list.Items)
	}
	return checkKubeProxy(conf, l2)
}

func (f *fetcher) nodeAddresses(ctx context.Context) Check {
	pools, err := f.getPools(ctx)
	if err != nil {
		return unreadable(CheckNodeAddresses, "ippools", "list ippools.herald.io", err)
	}
	nodes, err := f.getNodes(ctx)
	if err != nil {
		return unreadable(CheckNodeAddresses, "nodes", "list nodes", err)
	}
	return checkNodeAddresses(pools, nodes)
}

func (f *fetcher) poolOverlap(ctx context.Context) Check {
	pools, err := f.getPools(ctx)
	if err != nil {
		return unreadable(CheckPoolOverlap, "ippools", "list ippools.herald.io", err)
	}
	return checkPoolOverlap(pools)
}

func (f *fetcher) bgpSessions(ctx context.Context) Check {
	var l heraldv1.BGPPeerList
	if err := f.c.Client.List(ctx, &l); err != nil {
		return unreadable(CheckBGPSessions, "bgppeers", "list bgppeers.herald.io", err)
	}
	return checkBGPSessions(l.Items)
}

// metricsPort is the port of the speaker container's "metrics" port.
func metricsPort(p *corev1.Pod) int32 {
	for _, c := range p.Spec.Containers {
		for _, port := range c.Ports {
			if port.Name == "metrics" {
				return port.ContainerPort
			}
		}
	}
	return defaultMetricsPort
}

func (f *fetcher) memberlist(ctx context.Context) Check {
	ds, err := f.getDaemonSet(ctx)
	if err != nil {
		return unreadable(CheckMemberlist, "daemonset "+Namespace+"/"+SpeakerName, "get daemonsets -n "+Namespace, err)
	}
	if ds == nil {
		return Check{Name: CheckMemberlist, Status: StatusSkipped, Message: "herald is not installed"}
	}
	pods, err := f.getSpeakerPods(ctx, ds)
	if err != nil {
		return unreadable(CheckMemberlist, "the speaker pods", "list pods -n "+Namespace, err)
	}
	var running []*corev1.Pod
	for i := range pods {
		if pods[i].Status.Phase == corev1.PodRunning && pods[i].DeletionTimestamp == nil {
			running = append(running, &pods[i])
		}
	}
	views := make([]memberView, len(running))
	sem := make(chan struct{}, scrapeParallel)
	var wg sync.WaitGroup
	for i, p := range running {
		views[i] = memberView{Pod: p.Name, Node: p.Spec.NodeName}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			views[i].Alive, views[i].Err = f.scrape(ctx, p)
		})
	}
	wg.Wait()
	return checkMemberlist(views)
}

// scrape reads a speaker's members gauge through the API server's pod proxy.
func (f *fetcher) scrape(ctx context.Context, p *corev1.Pod) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	port := strconv.Itoa(int(metricsPort(p)))
	body, err := f.c.Kube.CoreV1().Pods(p.Namespace).ProxyGet("http", p.Name, port, "metrics", nil).DoRaw(ctx)
	if err != nil {
		return 0, err
	}
	return membersAlive(bytes.NewReader(body))
}
