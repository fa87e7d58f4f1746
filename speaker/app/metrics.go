package app

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	metricMembers = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_speaker_members_alive",
		Help: "Speakers this one sees alive in memberlist, itself included.",
	})
	metricAnnounced = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_speaker_announced_addresses",
		Help: "Addresses this node answers ARP/NDP for, by family.",
	}, []string{"family"})
	metricMACsDropped = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_speaker_memberlist_macs_dropped",
		Help: "MACs of this node left out of its memberlist metadata for lack of room; other speakers may take answers from them for conflicts.",
	})
	metricUntranslatedFlows = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_speaker_untranslated_flows_deleted_total",
		Help: "Conntrack entries of connections to a new address that reached this node before kube-proxy had rules for it, deleted so that their next packets reach the Service.",
	})
	metricConflicts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_speaker_address_conflicts_total",
		Help: "Addresses not announced because another machine answered the probe for them.",
	})
	metricRefused = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_speaker_l2_refused_groups",
		Help: "Address groups this node is eligible for but cannot announce (no usable interface); the election gives them to other nodes.",
	})
	metricYielded = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_speaker_l2_yielded_groups",
		Help: "Address groups this node stopped announcing because a speaker it cannot reach through memberlist answers for them on the wire (split brain).",
	})
	metricSplitBrain = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_speaker_l2_split_brain_total",
		Help: "Times another herald speaker, not alive in this one's memberlist view, answered on the wire for an address this node announced, by outcome (yielded, kept).",
	}, []string{"outcome"})
	metricNodeAddressConflicts = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_speaker_node_address_conflicts",
		Help: "Service addresses that are this node's own address (InternalIP/ExternalIP); no speaker announces them.",
	})
	metricForeignClaims = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_speaker_l2_foreign_claims_total",
		Help: "Frames in which another host claimed an address this node announces (ARP reply or announcement, NA), by family.",
	}, []string{"family"})
	metricConflictReportsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_speaker_l2_conflict_reports_dropped_total",
		Help: "Reports of another host claiming an address that the speaker loop had no room for.",
	})
	metricIPVSWithoutStrictARP = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_speaker_kube_ipvs_without_strict_arp",
		Help: "1 when this node has kube-ipvs0 and arp_ignore/arp_announce are not 1/2: its kernel answers ARP for every Service address.",
	})
	metricL2 = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_speaker_l2_packets_total",
		Help: "Layer 2 packets by kind: requests seen, replies sent, gratuitous sent at takeover, refresh (periodic gratuitous), probes.",
	}, []string{"kind"})
	metricBGPUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_speaker_bgp_session_up",
		Help: "1 when this node's BGP session with the peer is established, else 0.",
	}, []string{"peer"})
	metricBFDUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_speaker_bfd_session_up",
		Help: "1 when this node's BFD session with the BGP peer is Up, else 0; absent for peers without BFD.",
	}, []string{"peer"})
	metricBGPPrefixes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_speaker_bgp_prefixes_announced",
		Help: "Prefixes this node advertises to the peer.",
	}, []string{"peer"})
	metricBGPUpdates = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_speaker_bgp_updates_total",
		Help: "BGP UPDATE messages exchanged with the peer, by direction (sent, received).",
	}, []string{"peer", "direction"})
	metricAnnouncedWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_speaker_announced_condition_writes_total",
		Help: "Writes of Services' herald.io/Announced condition by this speaker (bounded by --status-qps).",
	})
	metricAnnouncedReported = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_speaker_services_reported",
		Help: "Services whose herald.io/Announced condition this speaker reports, by whether they are announced (true, false).",
	}, []string{"announced"})
)

func init() {
	metrics.Registry.MustRegister(metricForeignClaims, metricConflictReportsDropped, metricIPVSWithoutStrictARP, metricNodeAddressConflicts, metricRefused, metricYielded, metricSplitBrain, metricMembers, metricMACsDropped, metricAnnounced, metricConflicts, metricL2, metricBGPUp, metricBFDUp, metricBGPPrefixes, metricBGPUpdates, metricAnnouncedWrites, metricAnnouncedReported, metricUntranslatedFlows)
}
