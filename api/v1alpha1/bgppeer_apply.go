package v1alpha1

import (
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// BGPPeer status has several writers: each node's speaker owns its entry of
// status.nodes (field manager SpeakerFieldManagerPrefix + node) and the controller
// owns status.summary. Each writes with server-side apply of its own fields only,
// from the objects below; an update would take over, or drop, the others' fields.

// BGPPeerNodeStatusApply is the apply object for one node's entry of a BGPPeer's
// status.nodes; with a nil entry it removes whatever entry the manager owns.
func BGPPeerNodeStatusApply(peer string, entry *BGPPeerNodeStatus) *unstructured.Unstructured {
	nodes := []any{}
	if entry != nil {
		e := map[string]any{"node": entry.Node, "state": string(entry.State), "prefixesSent": int64(entry.PrefixesSent)}
		if !entry.Since.IsZero() {
			e["since"] = entry.Since.UTC().Format(time.RFC3339)
		}
		if entry.LastError != "" {
			e["lastError"] = entry.LastError
		}
		if entry.BFD != "" {
			e["bfd"] = entry.BFD
		}
		nodes = append(nodes, e)
	}
	return bgpPeerStatusApply(peer, map[string]any{"nodes": nodes})
}

// BGPPeerSummaryApply is the apply object for a BGPPeer's status.summary.
func BGPPeerSummaryApply(peer, summary string) *unstructured.Unstructured {
	return bgpPeerStatusApply(peer, map[string]any{"summary": summary})
}

func bgpPeerStatusApply(peer string, status map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": GroupVersion.String(),
		"kind":       "BGPPeer",
		"metadata":   map[string]any{"name": peer},
		"status":     status,
	}}
}
