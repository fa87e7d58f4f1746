package ipam

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/labelsel"
)

// +kubebuilder:rbac:groups=herald.io,resources=l2announcements,verbs=get;list;watch
// +kubebuilder:rbac:groups=herald.io,resources=l2announcements/status,verbs=get;update;patch

// l2Ready is the Ready condition of an L2Announcement given the pools that exist:
// False when a selector cannot be parsed or no pool is covered, so a typo in a pool
// name shows on the object rather than as addresses nobody announces.
func l2Ready(a *heraldv1.L2Announcement, pools []heraldv1.IPPool) metav1.Condition {
	c := metav1.Condition{Type: heraldv1.IPPoolConditionReady, ObservedGeneration: a.Generation}
	for name, ls := range map[string]*metav1.LabelSelector{"ipPoolSelector": a.Spec.IPPoolSelector, "nodeSelector": a.Spec.NodeSelector, "serviceSelector": a.Spec.ServiceSelector} {
		if _, err := labelsel.Func(ls); err != nil {
			c.Status, c.Reason, c.Message = metav1.ConditionFalse, "InvalidSelector", fmt.Sprintf("%s: %v", name, err)
			return c
		}
	}
	sel, _ := labelsel.Func(a.Spec.IPPoolSelector)
	var covered, missing []string
	for _, want := range a.Spec.IPPools {
		if !slices.ContainsFunc(pools, func(p heraldv1.IPPool) bool { return p.Name == want }) {
			missing = append(missing, want)
		}
	}
	for _, p := range pools {
		switch {
		case len(a.Spec.IPPools) > 0:
			if slices.Contains(a.Spec.IPPools, p.Name) {
				covered = append(covered, p.Name)
			}
		case sel != nil:
			if sel(p.Labels) {
				covered = append(covered, p.Name)
			}
		default:
			covered = append(covered, p.Name)
		}
	}
	slices.Sort(covered)
	switch {
	case len(covered) == 0:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, "NoPool", "covers no existing IPPool"
		if len(missing) > 0 {
			c.Message += "; IPPools not found: " + strings.Join(missing, ", ")
		}
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, "Valid", "covers IPPools "+strings.Join(covered, ", ")
		if len(missing) > 0 {
			c.Message += "; IPPools not found: " + strings.Join(missing, ", ")
		}
	}
	return c
}

// writeL2Statuses keeps every L2Announcement's Ready condition current.
func (c *Controller) writeL2Statuses(ctx context.Context, pools []heraldv1.IPPool) error {
	var anns heraldv1.L2AnnouncementList
	if err := c.client.List(ctx, &anns); err != nil {
		return fmt.Errorf("listing L2Announcements: %w", err)
	}
	var errs []string
	for i := range anns.Items {
		a := &anns.Items[i]
		st := a.Status.DeepCopy()
		meta.SetStatusCondition(&st.Conditions, l2Ready(a, pools))
		if equality.Semantic.DeepEqual(st, &a.Status) {
			continue
		}
		a.Status = *st
		if err := c.client.Status().Update(ctx, a); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Sprintf("L2Announcement %s: %v", a.Name, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
