// Package labelsel turns a Kubernetes LabelSelector into a plain match function, so
// the pure packages (allocator, plan) take selectors without importing Kubernetes.
package labelsel

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Func returns a function reporting whether labels match ls; nil for a nil ls,
// which the pure packages read as "matches everything".
func Func(ls *metav1.LabelSelector) (func(map[string]string) bool, error) {
	if ls == nil {
		return nil, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, err
	}
	return func(m map[string]string) bool { return sel.Matches(labels.Set(m)) }, nil
}
