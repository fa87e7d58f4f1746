package v1alpha1

// Names shared by the controller, the speaker and users' manifests.
const (
	// LoadBalancerClass is the spec.loadBalancerClass herald always handles.
	// Services with no class are handled too unless the controller is told not to.
	LoadBalancerClass = "herald.io/lb"

	// AnnotationPool names the IPPool a Service wants its addresses from.
	AnnotationPool = "herald.io/pool"
	// AnnotationIPs requests specific addresses, comma-separated, at most one per
	// family ("192.168.10.7" or "192.168.10.7,fd00:10::7").
	AnnotationIPs = "herald.io/ips"
	// AnnotationSharingKey lets Services with the same key share an address when
	// their ports do not clash and their externalTrafficPolicy is the same.
	AnnotationSharingKey = "herald.io/sharing-key"
	// AnnotationAllocatedFromPool is written by the controller on every Service it
	// gives addresses: the IPPool they came from. It stays when an edit leaves
	// the addresses outside every pool (orphan policy Retain) or makes the pool
	// unreadable, so speakers keep announcing them with that pool's
	// announcements.
	AnnotationAllocatedFromPool = "herald.io/allocated-from-pool"

	// ConditionIPAllocated is the Service status condition the controller writes:
	// True with the addresses, or False with the reason none could be given.
	ConditionIPAllocated = "herald.io/IPAllocated"

	// IPPoolConditionReady is True when a pool's addresses were understood.
	IPPoolConditionReady = "Ready"
	// SpeakerFieldManagerPrefix, followed by the node's name, is the
	// server-side apply field manager with which a node's speaker writes its
	// entry of BGPPeer status.nodes.
	SpeakerFieldManagerPrefix = "herald-speaker/"

	// IPPoolConditionOverlapping is True when some of a pool's addresses are also
	// in another pool.
	IPPoolConditionOverlapping = "Overlapping"
	// IPPoolConditionNodeAddressOverlap is True when some of a pool's addresses are
	// Nodes' own addresses (InternalIP or ExternalIP); its message names them.
	// Such addresses are never handed out.
	IPPoolConditionNodeAddressOverlap = "NodeAddressOverlap"

	// L2AnnouncementConditionKubeProxyStrictARP is False when kube-proxy runs in
	// IPVS mode without ipvs.strictARP (read from the ConfigMap
	// kube-system/kube-proxy): every node then answers ARP for every
	// LoadBalancer address. Absent when there is nothing to say.
	L2AnnouncementConditionKubeProxyStrictARP = "KubeProxyStrictARP"
)
