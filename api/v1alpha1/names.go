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

	// ConditionAnnounced is the Service status condition the speakers write
	// (field manager SpeakerStatusFieldManager): True with which nodes announce
	// the Service's addresses and how, or False with why none does. One speaker
	// writes it for each Service: the layer 2 owner, else one chosen by a hash
	// of the Service over the live speakers.
	ConditionAnnounced = "herald.io/Announced"
	// SpeakerStatusFieldManager is the server-side apply field manager of the
	// herald.io/Announced condition. Every speaker uses it, so whichever
	// speaker writes the condition next replaces the last one's.
	SpeakerStatusFieldManager = "herald-speaker"

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

// Reasons of the herald.io/Announced condition.
const (
	// AnnouncedReasonAnnounced (True): nodes announce every address.
	AnnouncedReasonAnnounced = "Announced"
	// AnnouncedReasonPartly (True): some addresses are announced, others not;
	// the message says which and why.
	AnnouncedReasonPartly = "PartlyAnnounced"
	// AnnouncedReasonNotCovered: no L2Announcement or BGPAnnouncement covers
	// the Service's pool (or selects the Service).
	AnnouncedReasonNotCovered = "NotCovered"
	// AnnouncedReasonNoEligibleNode: announcements cover the Service, but
	// their nodeSelectors, node readiness or the exclude label leave no node.
	AnnouncedReasonNoEligibleNode = "NoEligibleNode"
	// AnnouncedReasonNoReadyEndpoint: externalTrafficPolicy Local and no
	// eligible node has a ready endpoint of the Service.
	AnnouncedReasonNoReadyEndpoint = "NoReadyEndpoint"
	// AnnouncedReasonNoSpeaker: eligible nodes exist but no speaker runs (or is
	// alive in memberlist) on any of them.
	AnnouncedReasonNoSpeaker = "NoSpeaker"
	// AnnouncedReasonAddressConflict: the elected node found another host
	// (not a herald speaker) answering for the address, and does not announce.
	AnnouncedReasonAddressConflict = "AddressConflict"
	// AnnouncedReasonInterfaceUnavailable: the eligible nodes cannot announce
	// (no usable interface, or answering failed).
	AnnouncedReasonInterfaceUnavailable = "InterfaceUnavailable"
	// AnnouncedReasonBGPSessionsDown: BGP would announce it, but no session
	// of the nodes that announce it is Established.
	AnnouncedReasonBGPSessionsDown = "BGPSessionsDown"
	// AnnouncedReasonNodeAddress: every address is a Node's own address,
	// which no speaker announces.
	AnnouncedReasonNodeAddress = "NodeAddress"
)
