//go:build integration

package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/kubectl-herald/doctor"
)

// doctorChecks runs the doctor and returns its checks by name, logging the text
// report.
func doctorChecks(t *testing.T, c doctor.Clients) map[string]doctor.Check {
	t.Helper()
	r := doctor.Run(context.Background(), c)
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl herald doctor:\n%s", b.String())
	m := map[string]doctor.Check{}
	for _, ch := range r.Checks {
		m[ch.Name] = ch
	}
	return m
}

func expectCheck(t *testing.T, got map[string]doctor.Check, name, status string, contains ...string) {
	t.Helper()
	c, ok := got[name]
	if !ok {
		t.Errorf("no check %s", name)
		return
	}
	if c.Status != status {
		t.Errorf("%s: status %q (%s); want %q", name, c.Status, c.Message, status)
	}
	for _, s := range contains {
		if !strings.Contains(c.Message, s) {
			t.Errorf("%s: message %q; want it to contain %q", name, c.Message, s)
		}
	}
}

// TestDoctor runs `kubectl herald doctor`'s checks on a real API server holding
// Nodes, an IPPool that holds a Node's address, an L2Announcement, and kube-proxy
// configured by kubeadm in IPVS mode without strictARP; herald's controller and
// speakers are not deployed.
func TestDoctor(t *testing.T) {
	ctx := context.Background()
	createNodeWithIPs(t, "doctor-n1", "10.211.0.11")
	createNodeWithIPs(t, "doctor-n2", "10.211.0.12")
	create := func(o client.Object) {
		t.Helper()
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), o) })
	}
	create(&heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "doctor-lan"},
		Spec: heraldv1.IPPoolSpec{Addresses: []string{"10.211.0.12-10.211.0.30"}}})
	create(&heraldv1.L2Announcement{ObjectMeta: metav1.ObjectMeta{Name: "doctor-l2"},
		Spec: heraldv1.L2AnnouncementSpec{IPPools: []string{"doctor-lan"}}})
	create(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-proxy"},
		Data: map[string]string{"config.conf": fmt.Sprintf(kubeadmKubeProxyConf, false, "ipvs"), "kubeconfig.conf": "apiVersion: v1\nkind: Config\n"}})

	got := doctorChecks(t, doctor.Clients{Kube: cs, Client: k8s, Rest: restCfg})
	expectCheck(t, got, doctor.CheckCRDs, doctor.StatusOK, "herald.io/v1alpha1 serves bgpannouncements, bgppeers, ippools, l2announcements")
	expectCheck(t, got, doctor.CheckKubeProxy, doctor.StatusError, "IPVS mode without strictARP", "every node answers ARP")
	expectCheck(t, got, doctor.CheckNodeAddresses, doctor.StatusError, `pool "doctor-lan" holds 10.211.0.12, an address of Node doctor-n2`)
	if c := got[doctor.CheckNodeAddresses]; strings.Contains(c.Message, "doctor-n1") {
		t.Errorf("node-addresses names doctor-n1, outside the pool: %q", c.Message)
	}
	expectCheck(t, got, doctor.CheckController, doctor.StatusError, "herald is not installed")
	expectCheck(t, got, doctor.CheckSpeakers, doctor.StatusError, "herald is not installed")
	expectCheck(t, got, doctor.CheckMemberlist, doctor.StatusSkipped)

	// Fixed: strictARP true makes kube-proxy fine.
	var cm corev1.ConfigMap
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: "kube-system", Name: "kube-proxy"}, &cm); err != nil {
		t.Fatal(err)
	}
	cm.Data["config.conf"] = fmt.Sprintf(kubeadmKubeProxyConf, true, "ipvs")
	if err := k8s.Update(ctx, &cm); err != nil {
		t.Fatal(err)
	}
	got = doctorChecks(t, doctor.Clients{Kube: cs, Client: k8s, Rest: restCfg})
	expectCheck(t, got, doctor.CheckKubeProxy, doctor.StatusOK, "IPVS mode with strictARP: true")
}

// TestDoctorForbidden: a user RBAC grants nothing gets every check that needs a
// read skipped, with the permission to ask for, from the real API server's
// Forbidden answers; discovery, open to every authenticated user, still works.
func TestDoctorForbidden(t *testing.T) {
	cfg := rest.CopyConfig(restCfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "doctor-nobody"}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(cfg, client.Options{Scheme: k8s.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	// The user may not even read whether kube-proxy's ConfigMap exists.
	if _, err := kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("listing nodes as doctor-nobody: %v; want Forbidden (is RBAC on?)", err)
	}
	got := doctorChecks(t, doctor.Clients{Kube: kube, Client: cl, Rest: cfg})
	expectCheck(t, got, doctor.CheckCRDs, doctor.StatusOK)
	for _, name := range []string{doctor.CheckController, doctor.CheckSpeakers, doctor.CheckVersions, doctor.CheckKubeProxy,
		doctor.CheckNodeAddresses, doctor.CheckPoolOverlap, doctor.CheckMemberlist, doctor.CheckBGPSessions} {
		expectCheck(t, got, name, doctor.StatusSkipped, "forbidden")
		if c := got[name]; !strings.Contains(c.Hint, "kubectl auth can-i") {
			t.Errorf("%s: hint %q names no permission", name, c.Hint)
		}
	}
}
