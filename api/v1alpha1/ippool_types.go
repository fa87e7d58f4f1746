package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IPPoolSpec says which addresses a pool hands out and to whom.
//
// The rules on each address use the Kubernetes CEL IP and CIDR libraries, which CRD
// rules may use from Kubernetes 1.31. CEL has no ordering on addresses, so a
// reversed IPv4 range is caught by comparing the ends as integers; a reversed IPv6
// range is caught by the controller, which marks the pool Ready=False with the same
// message (every CEL form of a 128-bit comparison we tried exceeds the API server's
// cost budget). The host-bits rule's message is fixed for the same reason: a
// messageExpression naming the masked CIDR exceeds the budget 100 times over.
type IPPoolSpec struct {
	// addresses lists what the pool hands out. Each entry is a CIDR
	// ("192.168.10.0/24", "fd00:10::/64"), an inclusive range of one family
	// ("192.168.10.10-192.168.10.20") or a single address ("192.168.10.7").
	// IPv4 and IPv6 entries may be mixed in one pool; such a pool can serve
	// dual-stack Services.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +kubebuilder:validation:items:MaxLength=96
	// +kubebuilder:validation:items:XValidation:rule="self.contains('-') || isIP(self) || isCIDR(self)",message="must be an IP address (192.168.1.7), a CIDR (192.168.1.0/24) or a range (192.168.1.10-192.168.1.20)"
	// +kubebuilder:validation:items:XValidation:rule="!self.contains('-') || (self.split('-').size() == 2 && isIP(self.split('-')[0].trim()) && isIP(self.split('-')[1].trim()))",message="a range must be two IP addresses joined by '-', e.g. 192.168.1.10-192.168.1.20"
	// +kubebuilder:validation:items:XValidation:rule="!(self.contains('-') && self.split('-').size() == 2 && isIP(self.split('-')[0].trim()) && isIP(self.split('-')[1].trim())) || ip(self.split('-')[0].trim()).family() == ip(self.split('-')[1].trim()).family()",message="a range must not mix IPv4 and IPv6: both ends must be of one family"
	// +kubebuilder:validation:items:XValidation:rule="!(self.contains('-') && self.split('-').size() == 2 && isIP(self.split('-')[0].trim()) && isIP(self.split('-')[1].trim()) && ip(self.split('-')[0].trim()).family() == 4 && ip(self.split('-')[1].trim()).family() == 4) || (int(self.split('-')[0].trim().split('.')[0]) * 16777216 + int(self.split('-')[0].trim().split('.')[1]) * 65536 + int(self.split('-')[0].trim().split('.')[2]) * 256 + int(self.split('-')[0].trim().split('.')[3])) <= (int(self.split('-')[1].trim().split('.')[0]) * 16777216 + int(self.split('-')[1].trim().split('.')[1]) * 65536 + int(self.split('-')[1].trim().split('.')[2]) * 256 + int(self.split('-')[1].trim().split('.')[3]))",message="a range must run from the lower address to the higher one (write 10.0.0.1-10.0.0.9, not 10.0.0.9-10.0.0.1)"
	// +kubebuilder:validation:items:XValidation:rule="self.contains('-') || !isCIDR(self) || cidr(self) == cidr(self).masked()",message="a CIDR must not have host bits set: write its network address (192.168.20.0/24, not 192.168.20.5/24)"
	Addresses []string `json:"addresses"`

	// autoAssign says whether Services that name no pool and request no address may
	// get addresses from this pool. With false, only Services that name the pool
	// (annotation herald.io/pool) or request one of its addresses get them.
	// +optional
	// +kubebuilder:default=true
	AutoAssign *bool `json:"autoAssign,omitempty"`

	// avoidBuggyIPs keeps IPv4 addresses ending in .0 or .255 out of allocation:
	// some old clients and routers treat them as network or broadcast addresses
	// even inside a larger subnet.
	// +optional
	AvoidBuggyIPs bool `json:"avoidBuggyIPs,omitempty"`

	// allocation limits which Services may use the pool and orders pools.
	// +optional
	Allocation *IPPoolAllocation `json:"allocation,omitempty"`
}

// IPPoolAllocation limits a pool to some Services and sets its priority.
// All limits that are set must hold.
type IPPoolAllocation struct {
	// priority orders pools for automatic assignment: a lower number is tried first,
	// and pools without a priority come after all pools with one. Pools of equal
	// priority are tried in name order.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	Priority *int32 `json:"priority,omitempty"`

	// namespaces, when set, limits the pool to Services in these namespaces.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=63
	Namespaces []string `json:"namespaces,omitempty"`

	// namespaceSelector, when set, limits the pool to Services in namespaces whose
	// labels match.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// serviceSelector, when set, limits the pool to Services whose labels match.
	// +optional
	ServiceSelector *metav1.LabelSelector `json:"serviceSelector,omitempty"`
}

// IPPoolFamilyStatus counts one address family of a pool.
// Counts are decimal strings because an IPv6 pool can hold 2^64 addresses or more,
// past what an int64 holds.
type IPPoolFamilyStatus struct {
	// capacity is how many addresses of this family the pool can hand out.
	Capacity string `json:"capacity"`
	// used is how many of them are assigned to Services.
	Used string `json:"used"`
	// free is capacity minus used.
	Free string `json:"free"`
}

// IPPoolStatus is what the controller observes about a pool.
type IPPoolStatus struct {
	// conditions: Ready (the pool's addresses were understood and it is in use),
	// Overlapping (some of its addresses are in another pool too).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ipv4 counts the pool's IPv4 addresses; absent when it has none.
	// +optional
	IPv4 *IPPoolFamilyStatus `json:"ipv4,omitempty"`

	// ipv6 counts the pool's IPv6 addresses; absent when it has none.
	// +optional
	IPv6 *IPPoolFamilyStatus `json:"ipv6,omitempty"`

	// used is the number of assigned addresses over both families.
	// +optional
	Used string `json:"used,omitempty"`

	// free is the number of unassigned addresses over both families.
	// +optional
	Free string `json:"free,omitempty"`

	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// IPPool is a set of addresses that herald assigns to LoadBalancer Services.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ipp,categories=herald
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=`.spec.addresses`
// +kubebuilder:printcolumn:name="Used",type=string,JSONPath=`.status.used`
// +kubebuilder:printcolumn:name="Free",type=string,JSONPath=`.status.free`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Auto",type=boolean,JSONPath=`.spec.autoAssign`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec IPPoolSpec `json:"spec"`
	// +optional
	Status IPPoolStatus `json:"status,omitempty"`
}

// IPPoolList is a list of IPPools.
//
// +kubebuilder:object:root=true
type IPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPPool `json:"items"`
}

func init() {
	SchemeBuilder.Register(&IPPool{}, &IPPoolList{})
}
