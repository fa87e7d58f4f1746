package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// managedBy labels the EndpointSlices the lab writes, in place of the
// EndpointSlice controller that the lab does not run.
const managedBy = "lab.herald.io"

// SystemNamespace is herald's namespace, as in manifests/: the lab creates it and
// gives the controller and the speakers POD_NAMESPACE=herald-system.
const SystemNamespace = "herald-system"

// ensureObjects creates herald's namespace and the Node objects that do not exist,
// and sets every node's status: its addresses on the LAN and Ready=True. No kubelet
// runs, and no node lifecycle controller either, so nothing turns them NotReady.
func (l *Lab) ensureObjects(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: SystemNamespace}}
	if _, err := l.cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", SystemNamespace, err)
	}
	for _, n := range l.nodes {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: map[string]string{
				corev1.LabelHostname: n.Name,
				corev1.LabelOSStable: "linux",
			}},
			Spec: corev1.NodeSpec{
				PodCIDR:  n.PodCIDRv4.String(),
				PodCIDRs: []string{n.PodCIDRv4.String(), n.PodCIDRv6.String()},
			},
		}
		_, err := l.cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating Node %s: %w", n.Name, err)
		}
		now := metav1.Now()
		status := map[string]any{"status": corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: n.IPv4.String()},
				{Type: corev1.NodeInternalIP, Address: n.IPv6.String()},
				{Type: corev1.NodeHostName, Address: n.Name},
			},
			Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
				Message: "herald lab node (no kubelet)", LastHeartbeatTime: now, LastTransitionTime: now,
			}},
		}}
		patch, err := json.Marshal(status)
		if err != nil {
			return fmt.Errorf("encoding the status of Node %s: %w", n.Name, err)
		}
		if _, err := l.cs.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
			return fmt.Errorf("setting the status of Node %s: %w", n.Name, err)
		}
	}
	return nil
}

// applyCRDs applies the CRDs in cfg.CRDDir and waits until the API server serves them.
func (l *Lab) applyCRDs(ctx context.Context) error {
	if l.cfg.CRDDir == "" {
		return nil
	}
	if _, err := l.kubectl(ctx, "apply", "--server-side", "--force-conflicts", "-f", l.cfg.CRDDir); err != nil {
		return fmt.Errorf("applying the CRDs: %w", err)
	}
	if _, err := l.kubectl(ctx, "wait", "--for", "condition=established", "--timeout", "30s", "crd", "--all"); err != nil {
		return fmt.Errorf("waiting for the CRDs: %w", err)
	}
	return nil
}

// Kubectl runs kubectl against the lab and returns its standard output; an error
// carries its standard error.
func (l *Lab) Kubectl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return l.kubectl(ctx, args...)
}

func (l *Lab) kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, l.cfg.bin("kubectl"), append([]string{"--kubeconfig", l.cfg.KubeconfigPath()}, args...)...)
	cmd.Env = childEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// SetEndpoints makes the Service's endpoints exactly the named lab pods, all ready,
// as the EndpointSlice controller would: one EndpointSlice per family of the
// Service, labelled kubernetes.io/service-name, each endpoint carrying its node's
// name, with the Service's ports (a named targetPort counts as the Service port). No
// pods leaves the Service with no endpoints.
func (l *Lab) SetEndpoints(ctx context.Context, service, namespace string, pods ...string) error {
	svc, err := l.cs.CoreV1().Services(namespace).Get(ctx, service, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("setting endpoints: reading Service %s/%s: %w", namespace, service, err)
	}
	members := make([]Pod, 0, len(pods))
	for _, name := range pods {
		p, err := l.Pod(name)
		if err != nil {
			return fmt.Errorf("setting endpoints of %s/%s: %w", namespace, service, err)
		}
		members = append(members, p)
	}
	var ports []discoveryv1.EndpointPort
	for _, sp := range svc.Spec.Ports {
		port := sp.Port
		if sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal != 0 {
			port = sp.TargetPort.IntVal
		}
		ports = append(ports, discoveryv1.EndpointPort{
			Name: ptr.To(sp.Name), Protocol: ptr.To(sp.Protocol), Port: ptr.To(port), AppProtocol: sp.AppProtocol,
		})
	}
	families := svc.Spec.IPFamilies
	if len(families) == 0 {
		families = []corev1.IPFamily{corev1.IPv4Protocol}
	}
	api := l.cs.DiscoveryV1().EndpointSlices(namespace)
	for _, fam := range []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol} {
		addrType, suffix := discoveryv1.AddressTypeIPv4, "-lab-ipv4"
		if fam == corev1.IPv6Protocol {
			addrType, suffix = discoveryv1.AddressTypeIPv6, "-lab-ipv6"
		}
		name := service + suffix
		if !slices.Contains(families, fam) {
			if err := api.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting EndpointSlice %s/%s: %w", namespace, name, err)
			}
			continue
		}
		eps := make([]discoveryv1.Endpoint, 0, len(members))
		for _, p := range members {
			addr := p.IPv4
			if fam == corev1.IPv6Protocol {
				addr = p.IPv6
			}
			eps = append(eps, discoveryv1.Endpoint{
				Addresses: []string{addr.String()},
				Conditions: discoveryv1.EndpointConditions{
					Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false),
				},
				NodeName: ptr.To(p.Node),
			})
		}
		want := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{
				discoveryv1.LabelServiceName: service,
				discoveryv1.LabelManagedBy:   managedBy,
			}},
			AddressType: addrType,
			Endpoints:   eps,
			Ports:       ports,
		}
		cur, err := api.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = api.Create(ctx, want, metav1.CreateOptions{})
		case err == nil:
			want.ResourceVersion = cur.ResourceVersion
			_, err = api.Update(ctx, want, metav1.UpdateOptions{})
		}
		if err != nil {
			return fmt.Errorf("writing EndpointSlice %s/%s: %w", namespace, name, err)
		}
	}
	return nil
}
