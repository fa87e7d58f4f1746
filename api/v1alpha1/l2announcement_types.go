package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// L2AnnouncementSpec says which Services' addresses are announced in layer 2 mode
// (ARP for IPv4, NDP for IPv6), from which nodes and on which interfaces. A Service
// is announced in layer 2 mode only where some L2Announcement covers its pool.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.ipPools) && has(self.ipPoolSelector))",message="set ipPools or ipPoolSelector, not both"
type L2AnnouncementSpec struct {
	// ipPools names the IPPools whose addresses this announcement covers. With
	// neither ipPools nor ipPoolSelector, it covers every pool.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	IPPools []string `json:"ipPools,omitempty"`

	// ipPoolSelector selects the IPPools covered by their labels.
	// +optional
	IPPoolSelector *metav1.LabelSelector `json:"ipPoolSelector,omitempty"`

	// nodeSelector limits the nodes that may announce; empty means every node.
	// Nodes labelled node.kubernetes.io/exclude-from-external-load-balancers never
	// announce.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`

	// interfaces names the network interfaces to announce on. Empty means the
	// interface whose connected subnet holds the address, else the interface of the
	// default route.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=15
	// +kubebuilder:validation:items:Pattern=`^[^\s/:]+$`
	Interfaces []string `json:"interfaces,omitempty"`

	// serviceSelector limits the Services announced by their labels; empty means
	// every Service with an address from a covered pool.
	// +optional
	ServiceSelector *metav1.LabelSelector `json:"serviceSelector,omitempty"`
}

// L2AnnouncementStatus is what herald observes about an L2Announcement.
type L2AnnouncementStatus struct {
	// conditions: Ready (the selectors are valid and it matches some pool).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// L2Announcement makes Services' addresses reachable on the local network by
// answering ARP and NDP for them from one elected node.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=l2a,categories=herald
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipPools`
// +kubebuilder:printcolumn:name="Interfaces",type=string,JSONPath=`.spec.interfaces`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type L2Announcement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec L2AnnouncementSpec `json:"spec,omitempty"`
	// +optional
	Status L2AnnouncementStatus `json:"status,omitempty"`
}

// L2AnnouncementList is a list of L2Announcements.
//
// +kubebuilder:object:root=true
type L2AnnouncementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []L2Announcement `json:"items"`
}

func init() {
	SchemeBuilder.Register(&L2Announcement{}, &L2AnnouncementList{})
}
