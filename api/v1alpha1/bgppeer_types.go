package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BGPPeerSpec describes a BGP session that every selected node's speaker keeps with
// a router.
//
// +kubebuilder:validation:XValidation:rule="!has(self.sourceAddress) || !isIP(self.sourceAddress) || !isIP(self.peerAddress) || ip(self.sourceAddress).family() == ip(self.peerAddress).family()",message="sourceAddress must be of the same family as peerAddress"
// +kubebuilder:validation:XValidation:rule="!has(self.ebgpMultihop) || !self.ebgpMultihop || self.peerASN != self.localASN",message="ebgpMultihop applies only to eBGP sessions (peerASN different from localASN)"
// +kubebuilder:validation:XValidation:rule="!has(self.bfd) || !has(self.ebgpMultihop) || !self.ebgpMultihop",message="bfd is single-hop BFD (RFC 5881): it cannot be used with ebgpMultihop"
// +kubebuilder:validation:XValidation:rule="!has(self.keepaliveTimeSeconds) || self.keepaliveTimeSeconds < (has(self.holdTimeSeconds) ? self.holdTimeSeconds : 90)",message="keepaliveTimeSeconds must be less than holdTimeSeconds (90 when not set)"
type BGPPeerSpec struct {
	// peerAddress is the router's address (IPv4 or IPv6).
	// +required
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be an IP address, e.g. 10.0.0.1 or fd00::1"
	PeerAddress string `json:"peerAddress"`

	// peerASN is the router's autonomous system number.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	PeerASN int64 `json:"peerASN"`

	// localASN is the nodes' autonomous system number for this session; equal to
	// peerASN for iBGP.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	LocalASN int64 `json:"localASN"`

	// port is the router's BGP port.
	// +optional
	// +kubebuilder:default=179
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// holdTimeSeconds is the proposed hold time: a session that hears nothing for
	// this long is declared down and its routes withdrawn. Default 90.
	// +optional
	// +kubebuilder:validation:Minimum=3
	// +kubebuilder:validation:Maximum=65535
	HoldTimeSeconds *int32 `json:"holdTimeSeconds,omitempty"`

	// keepaliveTimeSeconds is the interval between keepalives. Default: a third of
	// the hold time.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=21845
	KeepaliveTimeSeconds *int32 `json:"keepaliveTimeSeconds,omitempty"`

	// connectRetrySeconds is how long a node waits before dialling the router again
	// after a failed or closed session. Default 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=600
	ConnectRetrySeconds *int32 `json:"connectRetrySeconds,omitempty"`

	// passwordSecretRef names a Secret in herald's namespace holding the session's
	// TCP MD5 password (RFC 2385).
	// +optional
	PasswordSecretRef *SecretKeyRef `json:"passwordSecretRef,omitempty"`

	// nodeSelector limits the nodes that keep this session; empty means every
	// node.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`

	// ebgpMultihop lets the eBGP session cross routers (TTL 255) for a router that
	// is not on the nodes' subnet.
	// +optional
	EBGPMultihop *bool `json:"ebgpMultihop,omitempty"`

	// sourceAddress is the nodes' address the session starts from. Empty lets the
	// kernel choose. It must be configured on each selected node. It is also the
	// next hop of the routes of its family sent on this session (otherwise the
	// Node's InternalIP of that family), so traffic comes in where the session
	// runs.
	// +optional
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be an IP address, e.g. 10.0.0.11 or fd00::11"
	SourceAddress string `json:"sourceAddress,omitempty"`

	// passive makes the nodes wait for the router to connect instead of dialling
	// it; the speakers then listen on TCP port 179.
	// +optional
	Passive bool `json:"passive,omitempty"`

	// gracefulRestart (RFC 4724) lets a speaker restart (a DaemonSet rollout)
	// without the router dropping its routes: the router keeps them for
	// restartTimeSeconds after the session ends without a NOTIFICATION, and the
	// restarted speaker sends them again. A real shutdown (the node cordoned or
	// deleted, herald uninstalled, the Pod deleted by hand) still withdraws the
	// routes first. Set {} for the defaults.
	// +optional
	GracefulRestart *GracefulRestart `json:"gracefulRestart,omitempty"`

	// bfd runs a BFD session (RFC 5880, single hop, RFC 5881) with the router
	// next to the BGP session: a router running BFD drops a dead node's routes
	// within the detection time (receive interval × multiplier) instead of the
	// hold time, and the node closes the BGP session as soon as BFD finds the
	// router gone. The router must be configured for BFD with this node too.
	// Set {} for the defaults (300 ms × 3).
	// +optional
	BFD *BFD `json:"bfd,omitempty"`
}

// GracefulRestart configures BGP graceful restart for a peer.
type GracefulRestart struct {
	// restartTimeSeconds is how long the router keeps a restarting node's routes.
	// A speaker restart takes a few seconds; too long a time keeps a crashed
	// node's routes at a router without BFD for that long. Default 120.
	// +optional
	// +kubebuilder:default=120
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4095
	RestartTimeSeconds int32 `json:"restartTimeSeconds,omitempty"`
}

// BFD configures a peer's BFD session (asynchronous mode).
type BFD struct {
	// receiveIntervalMilliseconds is the shortest interval between received BFD
	// packets the node asks for. Default 300.
	// +optional
	// +kubebuilder:default=300
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	ReceiveIntervalMilliseconds int32 `json:"receiveIntervalMilliseconds,omitempty"`
	// transmitIntervalMilliseconds is the interval between the BFD packets the
	// node sends, once the session is up (the router may ask for a longer one).
	// Default 300.
	// +optional
	// +kubebuilder:default=300
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	TransmitIntervalMilliseconds int32 `json:"transmitIntervalMilliseconds,omitempty"`
	// detectMultiplier is how many intervals without a packet make the session
	// down. Default 3.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=255
	DetectMultiplier int32 `json:"detectMultiplier,omitempty"`
}

// SecretKeyRef names a key of a Secret in herald's namespace.
type SecretKeyRef struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key in the Secret's data. Default "password".
	// +optional
	// +kubebuilder:default=password
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}

// BGPPeerStatus is what the speakers observe about the sessions.
type BGPPeerStatus struct {
	// nodes has one entry per node keeping the session, each written by that
	// node's speaker.
	// +optional
	// +listType=map
	// +listMapKey=node
	Nodes []BGPPeerNodeStatus `json:"nodes,omitempty"`

	// summary counts established sessions over all sessions, e.g. "3/3"; written by
	// the controller.
	// +optional
	Summary string `json:"summary,omitempty"`
}

// BGPSessionState is a BGP session's finite state machine state (RFC 4271).
// +kubebuilder:validation:Enum=Idle;Connect;Active;OpenSent;OpenConfirm;Established
type BGPSessionState string

// Session states.
const (
	BGPSessionIdle        BGPSessionState = "Idle"
	BGPSessionConnect     BGPSessionState = "Connect"
	BGPSessionActive      BGPSessionState = "Active"
	BGPSessionOpenSent    BGPSessionState = "OpenSent"
	BGPSessionOpenConfirm BGPSessionState = "OpenConfirm"
	BGPSessionEstablished BGPSessionState = "Established"
)

// BGPPeerNodeStatus is one node's session with the peer.
type BGPPeerNodeStatus struct {
	// node is the Node's name.
	// +required
	Node string `json:"node"`
	// state of the session.
	// +required
	State BGPSessionState `json:"state"`
	// since is when the session entered its state.
	// +optional
	Since metav1.Time `json:"since,omitempty"`
	// prefixesSent is the number of prefixes the node advertises to the peer.
	// +optional
	PrefixesSent int32 `json:"prefixesSent,omitempty"`
	// lastError is the last problem with the session, cleared once it is
	// established.
	// +optional
	LastError string `json:"lastError,omitempty"`
	// bfd is the state of the node's BFD session with the peer (Up, Down, Init,
	// AdminDown), when BFD is configured.
	// +optional
	BFD string `json:"bfd,omitempty"`
}

// BGPPeer is a router the speakers keep BGP sessions with, to announce Services'
// addresses as routes with the announcing node as next hop.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=bgpp,categories=herald
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.peerAddress`
// +kubebuilder:printcolumn:name="Peer ASN",type=integer,JSONPath=`.spec.peerASN`
// +kubebuilder:printcolumn:name="Local ASN",type=integer,JSONPath=`.spec.localASN`
// +kubebuilder:printcolumn:name="Up",type=string,JSONPath=`.status.summary`,description="Established sessions / all sessions"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPPeer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec BGPPeerSpec `json:"spec"`
	// +optional
	Status BGPPeerStatus `json:"status,omitempty"`
}

// BGPPeerList is a list of BGPPeers.
//
// +kubebuilder:object:root=true
type BGPPeerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPPeer `json:"items"`
}

func init() {
	SchemeBuilder.Register(&BGPPeer{}, &BGPPeerList{})
}
