package svcclass

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

func TestHandles(t *testing.T) {
	svc := func(typ corev1.ServiceType, class *string) *corev1.Service {
		return &corev1.Service{Spec: corev1.ServiceSpec{Type: typ, LoadBalancerClass: class}}
	}
	lb, other := ptr.To(heraldv1.LoadBalancerClass), ptr.To("example.com/lb")
	for _, tt := range []struct {
		name      string
		svc       *corev1.Service
		classless bool
		want      bool
	}{
		{"nil Service", nil, true, false},
		{"ClusterIP", svc(corev1.ServiceTypeClusterIP, nil), true, false},
		{"NodePort of herald's class", svc(corev1.ServiceTypeNodePort, lb), true, false},
		{"classless, handled", svc(corev1.ServiceTypeLoadBalancer, nil), true, true},
		{"classless, left to another", svc(corev1.ServiceTypeLoadBalancer, nil), false, false},
		{"herald's class", svc(corev1.ServiceTypeLoadBalancer, lb), false, true},
		{"herald's class, classless too", svc(corev1.ServiceTypeLoadBalancer, lb), true, true},
		{"another class", svc(corev1.ServiceTypeLoadBalancer, other), true, false},
		{"empty class string", svc(corev1.ServiceTypeLoadBalancer, ptr.To("")), true, false},
	} {
		if got := Handles(tt.svc, tt.classless); got != tt.want {
			t.Errorf("%s: Handles(classless=%v) = %v; want %v", tt.name, tt.classless, got, tt.want)
		}
	}
}
