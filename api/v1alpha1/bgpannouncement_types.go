package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BGPAnnouncementSpec says which Services' addresses are announced over BGP, to
// which peers, from which nodes and with which attributes. Every eligible node
// announces each address with itself as next hop, so routers spread traffic over
// the nodes (ECMP). For externalTrafficPolicy: Local, only nodes with a ready
// endpoint of the Service announce it.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.ipPools) && has(self.ipPoolSelector))",message="set ipPools or ipPoolSelector, not both"
type BGPAnnouncementSpec struct {
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

	// peers names the BGPPeers the addresses are announced to; empty means every
	// peer.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	Peers []string `json:"peers,omitempty"`

	// nodeSelector limits the nodes that announce; empty means every node. Nodes
	// labelled node.kubernetes.io/exclude-from-external-load-balancers never
	// announce.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`

	// serviceSelector limits the Services announced by their labels; empty means
	// every Service with an address from a covered pool.
	// +optional
	ServiceSelector *metav1.LabelSelector `json:"serviceSelector,omitempty"`

	// communities are BGP standard communities added to the routes: "ASN:value"
	// with both parts 0-65535, or one of no-export, no-advertise,
	// no-export-subconfed, no-peer.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=32
	// +kubebuilder:validation:items:XValidation:rule="self in ['no-export', 'no-advertise', 'no-export-subconfed', 'no-peer'] || (self.matches('^[0-9]{1,5}:[0-9]{1,5}$') && int(self.split(':')[0]) <= 65535 && int(self.split(':')[1]) <= 65535)",message="a community is ASN:value with both parts 0-65535 (e.g. 64512:100), or no-export, no-advertise, no-export-subconfed or no-peer"
	Communities []string `json:"communities,omitempty"`

	// largeCommunities are BGP large communities (RFC 8092) added to the routes:
	// "global:local1:local2", each part 0-4294967295.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=40
	// +kubebuilder:validation:items:XValidation:rule="self.matches('^[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$') && self.split(':').all(p, int(p) <= 4294967295)",message="a large community is global:local1:local2 with each part 0-4294967295 (e.g. 64512:1:2)"
	LargeCommunities []string `json:"largeCommunities,omitempty"`

	// localPreference is sent to iBGP peers (routers ignore it from eBGP peers).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	LocalPreference *int64 `json:"localPreference,omitempty"`

	// aggregationLength announces IPv4 addresses as prefixes of this length
	// instead of /32, e.g. 24 announces 10.0.0.7 as 10.0.0.0/24. Default 32. With
	// an aggregate, every node announcing any address in it draws traffic for all
	// of it: with externalTrafficPolicy Local, keep host routes.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=32
	AggregationLength *int32 `json:"aggregationLength,omitempty"`

	// aggregationLengthV6 is aggregationLength for IPv6 addresses. Default 128.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=128
	AggregationLengthV6 *int32 `json:"aggregationLengthV6,omitempty"`
}

// BGPAnnouncementStatus is what herald observes about a BGPAnnouncement.
type BGPAnnouncementStatus struct {
	// conditions: Ready (the selectors are valid, and the pools and peers it
	// names exist).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// BGPAnnouncement announces Services' addresses as routes to BGP peers.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=bgpa,categories=herald
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipPools`
// +kubebuilder:printcolumn:name="Peers",type=string,JSONPath=`.spec.peers`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPAnnouncement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec BGPAnnouncementSpec `json:"spec,omitempty"`
	// +optional
	Status BGPAnnouncementStatus `json:"status,omitempty"`
}

// BGPAnnouncementList is a list of BGPAnnouncements.
//
// +kubebuilder:object:root=true
type BGPAnnouncementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPAnnouncement `json:"items"`
}

func init() {
	SchemeBuilder.Register(&BGPAnnouncement{}, &BGPAnnouncementList{})
}
