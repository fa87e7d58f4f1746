package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	restclient "k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crfake "sigs.k8s.io/controller-runtime/pkg/client/fake"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the golden file (run with -update to write it): %v", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}

// everyStatus is a report with a check of each status, with and without hints
// and with multi-line messages and hints.
var everyStatus = Report{Checks: []Check{
	{Name: CheckCRDs, Status: StatusOK, Message: "herald.io/v1alpha1 serves bgpannouncements, bgppeers, ippools, l2announcements"},
	{Name: CheckKubeProxy, Status: StatusError,
		Message: "IPVS mode without strictARP: every node answers ARP for every LoadBalancer address, whichever node herald elected (1 L2Announcement in use)",
		Hint:    strictARPHint},
	{Name: CheckPoolOverlap, Status: StatusWarning, Message: "pools \"a\" and \"b\" share 10.0.0.15\npools \"a\" and \"c\" share 10.0.0.8-10.0.0.15",
		Hint: "kubectl edit ippool <pool>   # make each address belong to one pool"},
	{Name: CheckMemberlist, Status: StatusSkipped, Message: "cannot read the speakers' metrics through the API server: forbidden", Hint: proxyRBACHint},
}}

func TestWriteTextGolden(t *testing.T) {
	var b bytes.Buffer
	if err := everyStatus.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "every-status.golden", b.String())
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("closed") }

func TestWriteTextError(t *testing.T) {
	if err := everyStatus.WriteText(failWriter{}); err == nil {
		t.Error("WriteText to a failing writer: no error")
	}
}

func TestFailed(t *testing.T) {
	if !everyStatus.Failed() {
		t.Error("Failed() = false for a report with an error")
	}
	ok := Report{Checks: []Check{{Status: StatusOK}, {Status: StatusWarning}, {Status: StatusSkipped}}}
	if ok.Failed() {
		t.Error("Failed() = true for a report without an error")
	}
}

func TestReportJSON(t *testing.T) {
	b, err := json.Marshal(Report{Checks: []Check{{Name: "crds", Status: StatusOK, Message: "fine"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"checks":[{"name":"crds","status":"ok","message":"fine"}]}`; got != want {
		t.Errorf("JSON %s; want %s", got, want)
	}
}

// proxied is a fake pod proxy answer.
type proxied struct {
	body string
	err  error
}

func (p proxied) DoRaw(context.Context) ([]byte, error) { return []byte(p.body), p.err }
func (p proxied) Stream(context.Context) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(p.body)), p.err
}

var _ restclient.ResponseWrapper = proxied{}

func readyNode(name, addr string) *corev1.Node {
	n := node(name, addr)
	return &n
}

func runningSpeaker(nodeName string) *corev1.Pod {
	p := speakerPod(nodeName, corev1.PodRunning, true)
	p.Labels = speakerDS().Spec.Selector.MatchLabels
	p.Spec.Containers = []corev1.Container{{Name: "speaker", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 7474}}}}
	return &p
}

// fakeCluster is three nodes with herald installed, speakers on two of them
// that disagree about memberlist, a pool holding node3's address, and kube-proxy
// in IPVS mode without strictARP.
func fakeCluster(t *testing.T, proxy func(pod, port string) proxied) Clients {
	now := time.Now()
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: ControllerName},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "controller", Image: "ghcr.io/heraldlb/herald:dev"}}}}},
		Status: appsv1.DeploymentStatus{AvailableReplicas: 2}}
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: ControllerName},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("herald-controller-1_ab"), LeaseDurationSeconds: ptr.To[int32](15),
			RenewTime: &metav1.MicroTime{Time: now}}}
	ds := speakerDS()
	ds.Spec.Template.Spec.Containers[0].Image = "ghcr.io/heraldlb/herald:dev"
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-proxy"},
		Data: map[string]string{"config.conf": kubeadm(false, "ipvs")}}
	kube := kubefake.NewClientset(dep, lease, ds, cm,
		readyNode("node1", "192.168.1.11"), readyNode("node2", "192.168.1.12"), readyNode("node3", "192.168.1.13"),
		runningSpeaker("node1"), runningSpeaker("node2"))
	kube.Discovery().(*fakediscovery.FakeDiscovery).Resources = []*metav1.APIResourceList{{
		GroupVersion: heraldv1.GroupVersion.String(),
		APIResources: []metav1.APIResource{{Name: "ippools"}, {Name: "l2announcements"}, {Name: "bgppeers"}, {Name: "bgpannouncements"}},
	}}
	kube.PrependProxyReactor("pods", func(a k8stesting.Action) (bool, restclient.ResponseWrapper, error) {
		g := a.(k8stesting.ProxyGetAction)
		if g.GetPath() != "metrics" {
			t.Errorf("proxied path %q; want metrics", g.GetPath())
		}
		return true, proxy(g.GetName(), g.GetPort()), nil
	})
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := heraldv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	cl := crfake.NewClientBuilder().WithScheme(scheme).WithObjects(
		&heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: heraldv1.IPPoolSpec{Addresses: []string{"192.168.1.13-192.168.1.20"}}},
		&heraldv1.L2Announcement{ObjectMeta: metav1.ObjectMeta{Name: "lan"}},
		&heraldv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "frr"}, Spec: heraldv1.BGPPeerSpec{PeerAddress: "10.0.0.1", PeerASN: 64512, LocalASN: 64512},
			Status: heraldv1.BGPPeerStatus{Nodes: []heraldv1.BGPPeerNodeStatus{{Node: "node1", State: heraldv1.BGPSessionIdle, LastError: "connection refused"}}}},
	).Build()
	return Clients{Kube: kube, Client: cl}
}

func statuses(r Report) map[string]Check {
	m := map[string]Check{}
	for _, c := range r.Checks {
		m[c.Name] = c
	}
	return m
}

// TestRun drives Run against fake clients: every check runs, in order, and finds
// what the fake cluster holds.
func TestRun(t *testing.T) {
	views := map[string]string{"herald-speaker-node1": "herald_speaker_members_alive 2\n", "herald-speaker-node2": "herald_speaker_members_alive 1\n"}
	c := fakeCluster(t, func(pod, port string) proxied {
		if port != "7474" {
			t.Errorf("proxied port %q; want 7474", port)
		}
		return proxied{body: views[pod]}
	})
	r := Run(context.Background(), c)
	var text strings.Builder
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", text.String())
	var names []string
	for _, ch := range r.Checks {
		names = append(names, ch.Name)
	}
	wantNames := []string{CheckCRDs, CheckController, CheckSpeakers, CheckVersions, CheckKubeProxy, CheckNodeAddresses, CheckPoolOverlap, CheckMemberlist, CheckBGPSessions}
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Errorf("check order (-want +got):\n%s", diff)
	}
	got := statuses(r)
	for name, w := range map[string]want{
		CheckCRDs:          {status: StatusOK},
		CheckController:    {status: StatusOK, msg: []string{"2 of 2", "leader herald-controller-1_ab"}},
		CheckSpeakers:      {status: StatusError, msg: []string{"2 of 3", "node3: no speaker pod"}},
		CheckVersions:      {status: StatusOK, msg: []string{"controller dev, speaker dev"}},
		CheckKubeProxy:     {status: StatusError, msg: []string{"IPVS mode without strictARP", "1 L2Announcement in use"}},
		CheckNodeAddresses: {status: StatusError, msg: []string{`pool "lan" holds 192.168.1.13, an address of Node node3`}},
		CheckPoolOverlap:   {status: StatusOK},
		CheckMemberlist:    {status: StatusError, msg: []string{"node1 (herald-speaker-node1) sees all 2", "node2 (herald-speaker-node2) sees 1 alive"}},
		CheckBGPSessions:   {status: StatusError, msg: []string{"node node1 to peer frr (10.0.0.1 AS 64512): Idle: connection refused"}},
	} {
		w.verify(t, name, got[name])
	}
	if !r.Failed() {
		t.Error("Failed() = false")
	}
}

// TestRunProxyForbidden: without pods/proxy the memberlist check is skipped with
// the RBAC it needs, and the others still run.
func TestRunProxyForbidden(t *testing.T) {
	c := fakeCluster(t, func(pod, _ string) proxied {
		return proxied{err: apierrors.NewForbidden(schema.GroupResource{Resource: "pods/proxy"}, pod, errors.New("RBAC"))}
	})
	got := statuses(Run(context.Background(), c))
	want{status: StatusSkipped, hint: []string{"pods/proxy"}}.verify(t, CheckMemberlist, got[CheckMemberlist])
	want{status: StatusError}.verify(t, CheckNodeAddresses, got[CheckNodeAddresses])
}

// forbidAll refuses every read, as for a user with no RBAC at all.
type forbidAll struct{ client.Client }

func (forbidAll) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return apierrors.NewForbidden(schema.GroupResource{Group: "herald.io", Resource: "ippools"}, "", errors.New("RBAC"))
}

// TestRunForbidden: a user who may read nothing gets skipped checks that say
// what to ask for, and no crash.
func TestRunForbidden(t *testing.T) {
	kube := kubefake.NewClientset()
	kube.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: a.GetResource().Resource}, "", errors.New("RBAC"))
	})
	r := Run(context.Background(), Clients{Kube: kube, Client: forbidAll{}})
	for _, c := range r.Checks {
		if c.Status != StatusSkipped {
			t.Errorf("%s: status %q (%s); want skipped", c.Name, c.Status, c.Message)
		}
		if c.Name != CheckVersions && !strings.Contains(c.Hint, "kubectl auth can-i") && !strings.Contains(c.Hint, "kube-proxy") {
			t.Errorf("%s: hint %q names no permission", c.Name, c.Hint)
		}
	}
	if r.Failed() {
		t.Error("Failed() = true with every check skipped")
	}
}

// TestRunNotInstalled: a cluster without herald says so, with the install
// command.
func TestRunNotInstalled(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = heraldv1.AddToScheme(scheme)
	r := Run(context.Background(), Clients{Kube: kubefake.NewClientset(readyNode("node1", "10.0.0.1")),
		Client: crfake.NewClientBuilder().WithScheme(scheme).Build()})
	got := statuses(r)
	for _, name := range []string{CheckCRDs, CheckController, CheckSpeakers} {
		want{status: StatusError, hint: []string{"install.yaml"}}.verify(t, name, got[name])
	}
	want{status: StatusSkipped, msg: []string{"not kubeadm-style"}}.verify(t, CheckKubeProxy, got[CheckKubeProxy])
}

// TestNewClientsOffline: building the clients sends nothing, so a plugin can
// build them before it knows whether the cluster answers.
func TestNewClientsOffline(t *testing.T) {
	c, err := NewClients(&restclient.Config{Host: "https://127.0.0.1:1"})
	if err != nil {
		t.Fatalf("NewClients: %v", err)
	}
	if c.Kube == nil || c.Client == nil || c.Rest == nil {
		t.Errorf("NewClients left a client nil: %+v", c)
	}
	if !c.Client.Scheme().Recognizes(heraldv1.GroupVersion.WithKind("IPPool")) {
		t.Error("the client's scheme lacks herald's types")
	}
}

// TestRunUnreachable: an API server that does not answer makes every check an
// error saying so (not skipped: nothing was checked), quickly.
func TestRunUnreachable(t *testing.T) {
	c, err := NewClients(&restclient.Config{Host: "http://127.0.0.1:1", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := Run(context.Background(), c)
	for _, ch := range r.Checks {
		if ch.Status != StatusError || !strings.Contains(ch.Message, "127.0.0.1:1") {
			t.Errorf("%s: %s %q; want an error naming the server", ch.Name, ch.Status, ch.Message)
		}
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Run took %v against a closed port", d)
	}
}
