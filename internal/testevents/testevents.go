// Package testevents reads what herald's Events say, for tests that check them
// against what the network shows (the lab's and the kind cluster's).
package testevents

import (
	"context"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Announcer returns the node named by the newest Announcing Event of a Service
// ("Node <name> announces ..."), or "" when there is none.
func Announcer(ctx context.Context, cs kubernetes.Interface, ns, name string) (string, error) {
	evs, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name + ",reason=Announcing"})
	if err != nil {
		return "", err
	}
	var node string
	var at time.Time
	for _, e := range evs.Items {
		ts := e.LastTimestamp.Time
		if e.EventTime.Time.After(ts) {
			ts = e.EventTime.Time
		}
		if f := strings.Fields(e.Message); len(f) > 1 && !ts.Before(at) {
			node, at = f[1], ts
		}
	}
	return node, nil
}
