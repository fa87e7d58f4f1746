// Package svcclass is the one rule for which Services herald handles, shared by
// the controller and the speaker so that the two never disagree about a Service.
package svcclass

import (
	corev1 "k8s.io/api/core/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// Handles reports whether herald is responsible for svc: a LoadBalancer Service of
// herald's class (herald.io/lb), or of no class when handleClassless is set. A
// Service of any other class belongs to another implementation, which herald must
// not race for the same Service status.
func Handles(svc *corev1.Service, handleClassless bool) bool {
	if svc == nil || svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	if svc.Spec.LoadBalancerClass == nil {
		return handleClassless
	}
	return *svc.Spec.LoadBalancerClass == heraldv1.LoadBalancerClass
}
