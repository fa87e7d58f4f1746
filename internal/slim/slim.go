// Package slim trims the Kubernetes objects herald caches to the fields its
// binaries read. Services, Nodes and EndpointSlices dominate memory in a large
// cluster (a last-applied-configuration annotation or a Node's image list alone can
// be kilobytes), and the controller and every speaker hold all of them.
package slim

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheOptions returns, for each kind herald watches, a transform keeping only what
// it reads.
func CacheOptions() map[client.Object]cache.ByObject {
	return map[client.Object]cache.ByObject{
		&corev1.Service{}:            {Transform: Service},
		&corev1.Namespace{}:          {Transform: Namespace},
		&corev1.Node{}:               {Transform: Node},
		&discoveryv1.EndpointSlice{}: {Transform: EndpointSlice},
	}
}

// Service keeps what the controller (classes, requests, status, conditions,
// Events, the ledger rebuild) and the speaker (addresses, traffic policy, labels)
// read.
func Service(obj any) (any, error) {
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

// Namespace keeps identity and labels (namespaceSelectors).
func Namespace(obj any) (any, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return obj, nil
	}
	return &corev1.Namespace{TypeMeta: ns.TypeMeta, ObjectMeta: slimMeta(ns.ObjectMeta)}, nil
}

// Node keeps identity, labels, addresses (where speakers find each other) and
// conditions (Ready).
func Node(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	return &corev1.Node{TypeMeta: n.TypeMeta, ObjectMeta: slimMeta(n.ObjectMeta),
		Status: corev1.NodeStatus{Addresses: n.Status.Addresses, Conditions: n.Status.Conditions}}, nil
}

// EndpointSlice keeps which nodes have ready endpoints, and for which Service.
func EndpointSlice(obj any) (any, error) {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil
	}
	out := &discoveryv1.EndpointSlice{TypeMeta: es.TypeMeta, ObjectMeta: slimMeta(es.ObjectMeta), AddressType: es.AddressType}
	out.Endpoints = make([]discoveryv1.Endpoint, len(es.Endpoints))
	for i, ep := range es.Endpoints {
		out.Endpoints[i] = discoveryv1.Endpoint{NodeName: ep.NodeName, Conditions: discoveryv1.EndpointConditions{Ready: ep.Conditions.Ready}}
	}
	return out, nil
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
