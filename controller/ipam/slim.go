package ipam

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheOptions returns what the controller caches of each kind it watches: only the
// fields it reads. Services dominate memory in a large cluster (a
// last-applied-configuration annotation alone can be kilobytes), and the controller
// holds every one of them.
func CacheOptions() map[client.Object]cache.ByObject {
	return map[client.Object]cache.ByObject{
		&corev1.Service{}:   {Transform: slimService},
		&corev1.Namespace{}: {Transform: slimNamespace},
	}
}

// slimService keeps what handles, requestFor, statusIPs, findCondition, Events and
// the ledger rebuild read; everything else is dropped before the object is cached.
func slimService(obj any) (any, error) {
	s, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil
	}
	out := &corev1.Service{
		TypeMeta:   s.TypeMeta,
		ObjectMeta: slimMeta(s.ObjectMeta),
		Spec: corev1.ServiceSpec{
			Type:                  s.Spec.Type,
			LoadBalancerClass:     s.Spec.LoadBalancerClass,
			LoadBalancerIP:        s.Spec.LoadBalancerIP,
			IPFamilies:            s.Spec.IPFamilies,
			IPFamilyPolicy:        s.Spec.IPFamilyPolicy,
			ExternalTrafficPolicy: s.Spec.ExternalTrafficPolicy,
		},
		Status: s.Status,
	}
	if len(s.Spec.Ports) > 0 {
		out.Spec.Ports = make([]corev1.ServicePort, len(s.Spec.Ports))
		for i, p := range s.Spec.Ports {
			out.Spec.Ports[i] = corev1.ServicePort{Protocol: p.Protocol, Port: p.Port}
		}
	}
	for k, v := range s.Annotations {
		if strings.HasPrefix(k, "herald.io/") {
			if out.Annotations == nil {
				out.Annotations = map[string]string{}
			}
			out.Annotations[k] = v
		}
	}
	return out, nil
}

func slimNamespace(obj any) (any, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return obj, nil
	}
	return &corev1.Namespace{TypeMeta: ns.TypeMeta, ObjectMeta: slimMeta(ns.ObjectMeta)}, nil
}

// slimMeta keeps identity, labels and the times the controller orders and filters
// by; annotations are the caller's to pick.
func slimMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:              m.Name,
		Namespace:         m.Namespace,
		UID:               m.UID,
		ResourceVersion:   m.ResourceVersion,
		Generation:        m.Generation,
		CreationTimestamp: m.CreationTimestamp,
		DeletionTimestamp: m.DeletionTimestamp,
		Labels:            m.Labels,
	}
}
