package app

import (
	"errors"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestRestarting(t *testing.T) {
	now := metav1.Now()
	node := func(mut func(*corev1.Node)) *corev1.Node {
		n := &corev1.Node{}
		if mut != nil {
			mut(n)
		}
		return n
	}
	pod := func(gen string, deleting bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{}}}
		if gen != "" {
			p.Labels[templateGeneration] = gen
		}
		if deleting {
			p.DeletionTimestamp = &now
		}
		return p
	}
	ds := func(gen int64, deleting bool) *appsv1.DaemonSet {
		d := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Generation: gen}}
		if deleting {
			d.DeletionTimestamp = &now
		}
		return d
	}
	for _, tc := range []struct {
		name    string
		f       shutdownFacts
		restart bool
		why     string
	}{
		{"rollout", shutdownFacts{node: node(nil), pod: pod("3", true), ds: ds(4, false)}, true, "rolling out generation 4"},
		{"pod deleted by hand", shutdownFacts{node: node(nil), pod: pod("4", true), ds: ds(4, false)}, false, "outside a rollout"},
		{"process stopped, pod not deleted", shutdownFacts{node: node(nil), pod: pod("3", false), ds: ds(4, false)}, false, "not being deleted"},
		{"node cordoned during a rollout", shutdownFacts{node: node(func(n *corev1.Node) { n.Spec.Unschedulable = true }), pod: pod("3", true), ds: ds(4, false)}, false, "cordoned"},
		{"node deleting", shutdownFacts{node: node(func(n *corev1.Node) { n.DeletionTimestamp = &now }), pod: pod("3", true), ds: ds(4, false)}, false, "Node is being deleted"},
		{"node gone", shutdownFacts{pod: pod("3", true), ds: ds(4, false)}, false, "Node is being deleted"},
		{"uninstall", shutdownFacts{node: node(nil), pod: pod("3", true), ds: ds(4, true)}, false, "uninstalled"},
		{"daemonset gone", shutdownFacts{node: node(nil), pod: pod("3", true)}, false, "uninstalled"},
		{"no pod (not run by a DaemonSet)", shutdownFacts{node: node(nil)}, false, "Pod is not found"},
		{"no generation label", shutdownFacts{node: node(nil), pod: pod("", true), ds: ds(4, false)}, false, "label"},
		{"API unreachable", shutdownFacts{err: errors.New("connection refused")}, false, "cannot tell"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restart, why := restarting(tc.f)
			if restart != tc.restart || !strings.Contains(why, tc.why) {
				t.Errorf("restarting = %v, %q; want %v, ...%q...", restart, why, tc.restart, tc.why)
			}
		})
	}
}
