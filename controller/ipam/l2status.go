package ipam

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/labelsel"
	"github.com/heraldlb/herald/internal/poolcover"
)

// +kubebuilder:rbac:groups=herald.io,resources=l2announcements,verbs=get;list;watch
// +kubebuilder:rbac:groups=herald.io,resources=l2announcements/status,verbs=get;update;patch

// announcementReady starts the Ready condition of an L2 or BGP announcement: it is
// False/InvalidSelector (and ok false) when a selector cannot be parsed; else it
// returns the pools covered.
func announcementReady(gen int64, poolNames []string, poolSel, nodeSel, svcSel *metav1.LabelSelector, pools []heraldv1.IPPool) (metav1.Condition, poolCoverage, bool) {
	c := metav1.Condition{Type: heraldv1.IPPoolConditionReady, ObservedGeneration: gen}
	if err := selectorsError(
		namedSelector{"ipPoolSelector", poolSel},
		namedSelector{"nodeSelector", nodeSel},
		namedSelector{"serviceSelector", svcSel},
	); err != nil {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, "InvalidSelector", err.Error()
		return c, poolCoverage{}, false
	}
	return c, coverPools(poolNames, poolSel, pools), true
}

// l2Ready is the Ready condition of an L2Announcement given the pools that exist:
// False when a selector cannot be parsed or no pool is covered, so a typo in a pool
// name shows on the object rather than as addresses nobody announces.
func l2Ready(a *heraldv1.L2Announcement, pools []heraldv1.IPPool) metav1.Condition {
	c, pc, ok := announcementReady(a.Generation, a.Spec.IPPools, a.Spec.IPPoolSelector, a.Spec.NodeSelector, a.Spec.ServiceSelector, pools)
	if !ok {
		return c
	}
	if len(pc.covered) == 0 {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, "NoPool", "covers no existing IPPool"
	} else {
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, "Valid", "covers IPPools "+strings.Join(pc.covered, ", ")
	}
	c.Message += pc.missingNote()
	return c
}

// namedSelector is a label selector of an announcement's spec and its field name.
type namedSelector struct {
	field string
	sel   *metav1.LabelSelector
}

// selectorsError reports the first selector that cannot be parsed, in the order
// given, so the message is the same on every pass.
func selectorsError(sels ...namedSelector) error {
	for _, s := range sels {
		if _, err := labelsel.Func(s.sel); err != nil {
			return fmt.Errorf("%s: %w", s.field, err)
		}
	}
	return nil
}

// poolCoverage is which existing pools an announcement covers (sorted) and which
// of the pools it names do not exist (in spec order).
type poolCoverage struct {
	covered, missing []string
}

// coverPools works out the pools covered by an announcement naming names or
// selecting sel (already known to parse); with neither, every pool is covered.
func coverPools(names []string, sel *metav1.LabelSelector, pools []heraldv1.IPPool) poolCoverage {
	match, _ := labelsel.Func(sel)
	var pc poolCoverage
	for _, want := range names {
		if !slices.ContainsFunc(pools, func(p heraldv1.IPPool) bool { return p.Name == want }) {
			pc.missing = append(pc.missing, want)
		}
	}
	for _, p := range pools {
		if poolcover.Covers(names, match, p.Name, p.Labels) {
			pc.covered = append(pc.covered, p.Name)
		}
	}
	slices.Sort(pc.covered)
	return pc
}

// missingNote is "; IPPools not found: a, b", or "" when every named pool exists.
func (pc poolCoverage) missingNote() string {
	if len(pc.missing) == 0 {
		return ""
	}
	return "; IPPools not found: " + strings.Join(pc.missing, ", ")
}

// writeL2Statuses keeps every L2Announcement's Ready condition current.
func (c *Controller) writeL2Statuses(ctx context.Context, pools []heraldv1.IPPool) error {
	var anns heraldv1.L2AnnouncementList
	if err := c.client.List(ctx, &anns); err != nil {
		return fmt.Errorf("listing L2Announcements: %w", err)
	}
	kp := c.kubeProxy.Load()
	var errs []string
	for i := range anns.Items {
		a := &anns.Items[i]
		hadStrictARP := meta.FindStatusCondition(a.Status.Conditions, heraldv1.L2AnnouncementConditionKubeProxyStrictARP) != nil
		ready := meta.SetStatusCondition(&a.Status.Conditions, l2Ready(a, pools))
		if !setStrictARPCondition(a, kp) && !ready {
			continue
		}
		err := c.client.Status().Update(ctx, a)
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Sprintf("L2Announcement %s: %v", a.Name, err))
			continue
		}
		// The Event goes on each L2Announcement rather than on the ConfigMap:
		// only layer 2 mode is hurt, and its users look at their announcements
		// (kubectl describe l2announcement), not at kube-system.
		if err == nil && !hadStrictARP && kp != nil && kp.strictARPMissing {
			c.recorder.Event(a, corev1.EventTypeWarning, "KubeProxyStrictARPMissing", strictARPMessage)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
