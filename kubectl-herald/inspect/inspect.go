// Package inspect turns objects already read from the API server into the
// reports of kubectl herald: why a Service has (or lacks) its addresses and who
// announces them, and how full each IPPool is. It is pure: no client, no clock
// (callers pass the time, so reports can be compared byte for byte).
package inspect

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// Cluster is what the plugin read from the API server. Events need only be the
// inspected Service's; others are ignored.
type Cluster struct {
	Services   []corev1.Service
	Namespaces []corev1.Namespace
	Nodes      []corev1.Node
	Pools      []heraldv1.IPPool
	L2         []heraldv1.L2Announcement
	BGP        []heraldv1.BGPAnnouncement
	Peers      []heraldv1.BGPPeer
	Events     []corev1.Event
}

// Condition is a status condition as reports show it.
type Condition struct {
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	// Since is lastTransitionTime.
	Since time.Time `json:"since"`
}

func conditionOf(conds []metav1.Condition, typ string) *Condition {
	for _, c := range conds {
		if c.Type == typ {
			return &Condition{Status: string(c.Status), Reason: c.Reason, Message: c.Message, Since: c.LastTransitionTime.Time}
		}
	}
	return nil
}
