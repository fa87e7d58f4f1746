package app

import (
	"context"
	"fmt"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +kubebuilder:rbac:groups=apps,namespace=herald-system,resources=daemonsets,verbs=get
// +kubebuilder:rbac:groups="",namespace=herald-system,resources=pods,verbs=list

// shutdownFacts is what decides whether a stopping speaker restarts (a rollout
// replaces it on the same node, soon) or goes away. Nil means not found.
type shutdownFacts struct {
	node *corev1.Node
	pod  *corev1.Pod       // this speaker's Pod
	ds   *appsv1.DaemonSet // the DaemonSet that owns it
	err  error             // reading them failed
}

// templateGeneration is the label the DaemonSet controller puts on its Pods: the
// DaemonSet's generation the Pod was made from.
const templateGeneration = "pod-template-generation"

// restarting decides whether a stopping speaker is being replaced by a rollout
// of its DaemonSet: only then may its BGP sessions end without withdrawing (the
// routers keep the routes through a graceful restart). Anything else, or not
// knowing, is a real shutdown: withdraw first, so traffic moves before the node
// stops.
func restarting(f shutdownFacts) (bool, string) {
	switch {
	case f.err != nil:
		return false, fmt.Sprintf("cannot tell a restart from a shutdown (%v)", f.err)
	case f.node == nil || f.node.DeletionTimestamp != nil:
		return false, "the Node is being deleted"
	case f.node.Spec.Unschedulable:
		return false, "the Node is cordoned (drained)"
	case f.pod == nil:
		return false, "this speaker's Pod is not found"
	case f.ds == nil || f.ds.DeletionTimestamp != nil:
		return false, "the speakers' DaemonSet is being deleted (herald uninstalled)"
	case f.pod.DeletionTimestamp == nil:
		return false, "the Pod is not being deleted (the process was told to stop)"
	}
	gen, err := strconv.ParseInt(f.pod.Labels[templateGeneration], 10, 64)
	if err != nil {
		return false, fmt.Sprintf("the Pod has no %s label", templateGeneration)
	}
	if gen >= f.ds.Generation {
		return false, "the Pod was deleted outside a rollout"
	}
	return true, fmt.Sprintf("the DaemonSet is rolling out generation %d (this Pod is of %d)", f.ds.Generation, gen)
}

// shutdownFacts reads what restarting needs, straight from the API server (no
// cache holds Pods or DaemonSets), each read bounded by a second.
func (s *speaker) shutdownFacts(ctx context.Context) shutdownFacts {
	var f shutdownFacts
	if s.cs == nil {
		f.err = fmt.Errorf("no API client")
		return f
	}
	get := func(fn func(context.Context) error) error {
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return fn(c)
	}
	var node *corev1.Node
	err := get(func(c context.Context) (err error) {
		node, err = s.cs.CoreV1().Nodes().Get(c, s.cfg.NodeName, metav1.GetOptions{})
		return err
	})
	switch {
	case apierrors.IsNotFound(err):
		return f
	case err != nil:
		f.err = fmt.Errorf("reading the Node: %w", err)
		return f
	}
	f.node = node
	var pods *corev1.PodList
	err = get(func(c context.Context) (err error) {
		pods, err = s.cs.CoreV1().Pods(s.cfg.Namespace).List(c, metav1.ListOptions{
			FieldSelector: "spec.nodeName=" + s.cfg.NodeName,
			LabelSelector: "app.kubernetes.io/name=herald,app.kubernetes.io/component=speaker",
		})
		return err
	})
	if err != nil {
		f.err = fmt.Errorf("listing the speaker Pods: %w", err)
		return f
	}
	// The terminating one is this speaker; a new one may exist already.
	for i := range pods.Items {
		if p := &pods.Items[i]; f.pod == nil || p.DeletionTimestamp != nil {
			f.pod = p
		}
	}
	if f.pod == nil {
		return f
	}
	var dsName string
	for _, o := range f.pod.OwnerReferences {
		if o.Kind == "DaemonSet" {
			dsName = o.Name
		}
	}
	if dsName == "" {
		return f
	}
	var ds *appsv1.DaemonSet
	err = get(func(c context.Context) (err error) {
		ds, err = s.cs.AppsV1().DaemonSets(s.cfg.Namespace).Get(c, dsName, metav1.GetOptions{})
		return err
	})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		f.err = fmt.Errorf("reading the DaemonSet: %w", err)
	default:
		f.ds = ds
	}
	return f
}
