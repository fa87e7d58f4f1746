//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/kubectl-herald/fetch"
	"github.com/heraldlb/herald/kubectl-herald/inspect"
	"github.com/heraldlb/herald/kubectl-herald/render"
)

var updatePlugin = flag.Bool("update-plugin", false, "rewrite testdata/plugin_*.golden with the current output")

// pluginPools are the IPPools TestPlugin creates; reports are cut down to them
// so that a pool another test leaves behind does not change the goldens.
var pluginPools = []string{"plugin-nsonly", "plugin-edge", "plugin-small", "plugin-shared"}

// TestPlugin runs kubectl herald status's fetch, inspect and render against the
// real controller: an assigned Service, a pending one that three pools turn down
// for three different reasons (namespace, serviceSelector, exhausted), and two
// Services sharing an address.
func TestPlugin(t *testing.T) {
	startController(t, controllerOpts{})
	ns := newNamespace(t, map[string]string{"env": "dev"})
	createPool(t, "plugin-nsonly", heraldv1.IPPoolSpec{Addresses: []string{"10.201.0.0/30"}, Allocation: &heraldv1.IPPoolAllocation{Namespaces: []string{"payments"}, Priority: ptrInt32(1)}})
	createPool(t, "plugin-edge", heraldv1.IPPoolSpec{Addresses: []string{"10.202.0.0/30"}, Allocation: &heraldv1.IPPoolAllocation{ServiceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "edge"}}}})
	createPool(t, "plugin-small", pools("10.203.0.7"))

	createService(t, ns, "taker")
	waitIPs(t, ns, "taker", 1)
	pluginGolden(t, ns, "taker", "plugin_assigned")

	createService(t, ns, "api")
	waitCondition(t, ns, "api", metav1.ConditionFalse, "PoolExhausted")
	pluginGolden(t, ns, "api", "plugin_pending")

	no := false
	createPool(t, "plugin-shared", heraldv1.IPPoolSpec{Addresses: []string{"10.204.0.0/30"}, AutoAssign: &no})
	lan := &heraldv1.L2Announcement{ObjectMeta: metav1.ObjectMeta{Name: "plugin-lan"}, Spec: heraldv1.L2AnnouncementSpec{IPPools: []string{"plugin-shared"}}}
	if err := k8s.Create(context.Background(), lan); err != nil {
		t.Fatalf("creating L2Announcement: %v", err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), lan) })
	share := func(proto corev1.Protocol) svcOpt {
		return func(s *corev1.Service) {
			withAnnotation(heraldv1.AnnotationPool, "plugin-shared")(s)
			withAnnotation(heraldv1.AnnotationSharingKey, "dns")(s)
			s.Spec.Ports[0].Port, s.Spec.Ports[0].Protocol = 53, proto
		}
	}
	createService(t, ns, "dns-tcp", share(corev1.ProtocolTCP))
	waitIPs(t, ns, "dns-tcp", 1)
	createService(t, ns, "dns-udp", share(corev1.ProtocolUDP))
	waitIPs(t, ns, "dns-udp", 1)
	pluginGolden(t, ns, "dns-udp", "plugin_shared")
	pluginBinary(t, ns)
}

// pluginBinary builds kubectl-herald and runs it as a user would, with a
// kubeconfig file: status and pools as JSON, and doctor, whose exit status is 1
// here (no herald is deployed, so some checks fail) with a report all the same.
func pluginBinary(t *testing.T, ns string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "kubectl-herald")
	if out, err := exec.Command("go", "build", "-o", bin, "../../kubectl-herald").CombinedOutput(); err != nil {
		t.Fatalf("building kubectl-herald: %v\n%s", err, out)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: restCfg.Host, CertificateAuthorityData: restCfg.CAData}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: restCfg.CertData, ClientKeyData: restCfg.KeyData, Token: restCfg.BearerToken}
	cfg.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "envtest"
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) ([]byte, int) {
		cmd := exec.Command(bin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			return out, exit.ExitCode()
		case err != nil:
			t.Fatalf("running kubectl-herald %q: %v", args, err)
		}
		if stderr.Len() > 0 {
			t.Logf("kubectl-herald %q stderr: %s", args, stderr.String())
		}
		return out, 0
	}
	out, code := run("status", "api", "-n", ns, "-o", "json")
	var st inspect.ServiceReport
	if err := json.Unmarshal(out, &st); code != 0 || err != nil || st.State != inspect.StatePending || len(st.Pools) < 3 {
		t.Errorf("status -o json: exit %d, %v, state %q, %d pools:\n%s", code, err, st.State, len(st.Pools), out)
	}
	out, code = run("pools", "-o", "json")
	var pr inspect.PoolsReport
	if err := json.Unmarshal(out, &pr); code != 0 || err != nil || !slices.ContainsFunc(pr.Pools, func(p inspect.PoolReport) bool { return p.Name == "plugin-small" }) {
		t.Errorf("pools -o json: exit %d, %v:\n%s", code, err, out)
	}
	if out, code = run("pools"); code != 0 || !strings.Contains(string(out), "plugin-shared") {
		t.Errorf("pools: exit %d:\n%s", code, out)
	}
	t.Logf("kubectl herald pools:\n%s", out)
	out, code = run("doctor", "-o", "json")
	var dr struct {
		Checks []struct{ Name, Status string } `json:"checks"`
	}
	if err := json.Unmarshal(out, &dr); err != nil || len(dr.Checks) == 0 || (code != 0 && code != 1) {
		t.Errorf("doctor -o json: exit %d, %v:\n%s", code, err, out)
	}
	if out, code = run("status", "nosuch", "-n", ns); code != 1 {
		t.Errorf("status of a missing Service: exit %d; want 1:\n%s", code, out)
	}
}

func ptrInt32(n int32) *int32 { return &n }

// pluginGolden compares kubectl herald status ns/name, as text, with a golden
// file, after masking what changes from run to run: the namespace's name,
// timestamps and Event counts.
func pluginGolden(t *testing.T, ns, name, golden string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := fetch.Service(ctx, k8s, ns, name)
	if err != nil {
		t.Fatalf("fetching: %v", err)
	}
	c.Pools = slices.DeleteFunc(c.Pools, func(p heraldv1.IPPool) bool { return !slices.Contains(pluginPools, p.Name) })
	r, err := inspect.Status(c, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	r = maskReport(t, r, ns)
	var got bytes.Buffer
	if err := render.Status(&got, r, time.Now()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", golden+".golden")
	if *updatePlugin {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden (run with -update-plugin to write it): %v", err)
	}
	if d := cmp.Diff(string(want), got.String()); d != "" {
		t.Errorf("kubectl herald status %s/%s differs from %s (-want +got):\n%s", ns, name, path, d)
	}
}

var (
	jsonTime  = regexp.MustCompile(`"\d{4}-\d\d-\d\dT[^"]*"`)
	jsonCount = regexp.MustCompile(`"count": \d+`)
)

// maskReport replaces the namespace's name with NS, every time with the zero
// time (which render leaves out) and every Event count with 1, through the
// report's JSON form so that no field is forgotten.
func maskReport(t *testing.T, r inspect.ServiceReport, ns string) inspect.ServiceReport {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), ns, "NS")
	s = jsonTime.ReplaceAllString(s, `"0001-01-01T00:00:00Z"`)
	s = jsonCount.ReplaceAllString(s, `"count": 1`)
	var out inspect.ServiceReport
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatal(err)
	}
	return out
}
