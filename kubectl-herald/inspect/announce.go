package inspect

import (
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/labelsel"
	"github.com/heraldlb/herald/internal/poolcover"
)

// Announcement is an L2Announcement or BGPAnnouncement covering a pool.
type Announcement struct {
	// Kind is "L2Announcement" or "BGPAnnouncement".
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Pool is the covered pool.
	Pool string `json:"pool"`
	// Selects reports whether its serviceSelector takes the Service (always
	// true in pools reports, which have no Service).
	Selects bool `json:"selects"`
	// Peers are the BGPPeers a BGPAnnouncement names; empty means every peer.
	Peers []string `json:"peers,omitempty"`
	// Note says, in words, anything that limits it (serviceSelector,
	// nodeSelector).
	Note string `json:"note,omitempty"`
}

// covering returns the announcements covering pool (by poolcover's rule, as the
// controller and the speakers apply it), L2 first, each sorted by name. With
// svcLabels non-nil, Selects says whether each one's serviceSelector takes them.
// An announcement whose selector cannot be parsed covers nothing, as in the
// controller.
func covering(c Cluster, pool string, svcLabels map[string]string) []Announcement {
	var labels map[string]string
	for _, p := range c.Pools {
		if p.Name == pool {
			labels = p.Labels
		}
	}
	var out []Announcement
	add := func(kind, name string, names []string, poolSel, nodeSel, svcSel *metav1.LabelSelector, peers []string) {
		match, err := labelsel.Func(poolSel)
		if err != nil || !poolcover.Covers(names, match, pool, labels) {
			return
		}
		a := Announcement{Kind: kind, Name: name, Pool: pool, Selects: true, Peers: peers}
		var notes []string
		if svcSel != nil {
			sel, err := labelsel.Func(svcSel)
			switch {
			case err != nil:
				a.Selects = false
				notes = append(notes, "its serviceSelector cannot be parsed")
			case svcLabels != nil && sel != nil && !sel(svcLabels):
				a.Selects = false
				notes = append(notes, "its serviceSelector leaves this Service out")
			case svcLabels == nil:
				notes = append(notes, "only Services matching its serviceSelector")
			}
		}
		if nodeSel != nil {
			notes = append(notes, "only nodes matching "+metav1.FormatLabelSelector(nodeSel))
		}
		a.Note = strings.Join(notes, "; ")
		out = append(out, a)
	}
	l2 := slices.Clone(c.L2)
	slices.SortFunc(l2, func(a, b heraldv1.L2Announcement) int { return strings.Compare(a.Name, b.Name) })
	for _, a := range l2 {
		add("L2Announcement", a.Name, a.Spec.IPPools, a.Spec.IPPoolSelector, a.Spec.NodeSelector, a.Spec.ServiceSelector, nil)
	}
	bgp := slices.Clone(c.BGP)
	slices.SortFunc(bgp, func(a, b heraldv1.BGPAnnouncement) int { return strings.Compare(a.Name, b.Name) })
	for _, a := range bgp {
		add("BGPAnnouncement", a.Name, a.Spec.IPPools, a.Spec.IPPoolSelector, a.Spec.NodeSelector, a.Spec.ServiceSelector, a.Spec.Peers)
	}
	return out
}
