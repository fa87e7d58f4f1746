package ipam

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/allocator"
	"github.com/heraldlb/herald/internal/ipaddr"
)

// Condition reasons written besides the allocator's refusal reasons.
const (
	// ReasonAllocated: the Service has its addresses from a pool.
	ReasonAllocated = "Allocated"
	// ReasonOutsidePools: the Service keeps an address no pool holds any more
	// (orphan policy Retain).
	ReasonOutsidePools = "OutsidePools"
	// ReasonHoldsNodeAddress: the Service keeps an address that has since become
	// a Node's own. Taking it away would cut the Service's traffic for certain,
	// while keeping it leaves the choice to a person (the condition stays True
	// and a Warning Event says what to do); herald never hands the address to
	// anyone else.
	ReasonHoldsNodeAddress = "HoldsNodeAddress"
)

// outcome is what an allocation pass decided for one Service.
type outcome struct {
	asg allocator.Assignment
	// err is the refusal, if any; asg then holds what the Service keeps.
	err error
	// onNodes are the addresses of asg that are Nodes' own.
	onNodes []allocator.NodeAddress
	// releasing are addresses the Service gave up that its status may still show:
	// the status is written even when the cache shows it current, since the cache
	// may not have seen the write that put them there.
	releasing []netip.Addr
}

// desiredCondition is the herald.io/IPAllocated condition for an outcome.
func desiredCondition(svc *corev1.Service, req allocator.Request, o outcome) metav1.Condition {
	asg, err := o.asg, o.err
	cond := metav1.Condition{Type: heraldv1.ConditionIPAllocated, ObservedGeneration: svc.Generation}
	switch {
	case err != nil:
		cond.Status = metav1.ConditionFalse
		cond.Reason = allocator.ReasonOf(err).String()
		cond.Message = err.Error()
		if len(asg.IPs) > 0 {
			cond.Message += fmt.Sprintf("; the Service keeps %s meanwhile", ipaddr.Join(asg.IPs))
		}
	case len(o.onNodes) > 0:
		cond.Status = metav1.ConditionTrue
		cond.Reason = ReasonHoldsNodeAddress
		cond.Message = fmt.Sprintf("%s is also a node's own address; the Service keeps it so its traffic is not cut, but the node answers for it too: give the Service another address (herald.io/ips or spec.loadBalancerIP) or the node another address", joinNodeAddrs(o.onNodes))
	case asg.Pool == "":
		cond.Status = metav1.ConditionTrue
		cond.Reason = ReasonOutsidePools
		cond.Message = fmt.Sprintf("%s is no longer in any IPPool; the Service keeps it until it is deleted or stops being a LoadBalancer (orphan policy Retain)", ipaddr.Join(asg.IPs))
	default:
		cond.Status = metav1.ConditionTrue
		cond.Reason = ReasonAllocated
		cond.Message = fmt.Sprintf("assigned %s from IPPool %s", ipaddr.Join(asg.IPs), asg.Pool)
		if req.Policy == allocator.PreferDualStack && len(asg.IPs) < len(req.Families) {
			cond.Message += "; no pool this Service may use has a free address of its other family"
		}
	}
	return cond
}

// writeStatus writes a Service's addresses and condition when they differ from what
// it shows, and records Events for what changed.
func (c *Controller) writeStatus(ctx context.Context, svc *corev1.Service, req allocator.Request, o outcome) error {
	asg, allocErr := o.asg, o.err
	cond := desiredCondition(svc, req, o)
	old := findCondition(svc)
	shown := statusIPs(svc)
	sameIPs := slices.Equal(shown, asg.IPs) && allVIP(svc)
	sameCond := old != nil && old.Status == cond.Status && old.Reason == cond.Reason &&
		old.Message == cond.Message && old.ObservedGeneration == cond.ObservedGeneration
	if sameIPs && sameCond && len(o.releasing) == 0 {
		return nil
	}
	cond.LastTransitionTime = metav1.Now()
	if old != nil && old.Status == cond.Status {
		cond.LastTransitionTime = old.LastTransitionTime
	}
	if err := c.applyStatus(ctx, svc, asg.IPs, &cond); err != nil {
		return err
	}
	switch {
	case allocErr != nil:
		// One Warning per new reason, not per reworded message or spec edit.
		if old == nil || old.Status != metav1.ConditionFalse || old.Reason != cond.Reason {
			allocationFailures.WithLabelValues(cond.Reason).Inc()
			c.recorder.Event(svc, corev1.EventTypeWarning, "AllocationFailed", cond.Message)
		}
	case !sameIPs:
		allocations.Inc()
		if cond.Reason == ReasonOutsidePools {
			c.recorder.Event(svc, corev1.EventTypeWarning, "IPOutsidePools", cond.Message)
		} else {
			c.recorder.Eventf(svc, corev1.EventTypeNormal, "IPAllocated", "Assigned %s from IPPool %s", ipaddr.Join(asg.IPs), asg.Pool)
		}
	case !sameCond && cond.Reason == ReasonOutsidePools:
		c.recorder.Event(svc, corev1.EventTypeWarning, "IPOutsidePools", cond.Message)
	case !sameCond && cond.Reason == ReasonHoldsNodeAddress && (old == nil || old.Reason != cond.Reason):
		c.recorder.Event(svc, corev1.EventTypeWarning, "NodeAddressHeld", cond.Message)
	}
	return nil
}

func joinNodeAddrs(nas []allocator.NodeAddress) string {
	s := make([]string, len(nas))
	for i, na := range nas {
		s[i] = na.String()
	}
	return strings.Join(s, " and ")
}

// wantPoolAnnotation returns the herald.io/allocated-from-pool value a Service
// should carry, and false when it should carry none. Addresses kept outside every
// pool (orphan policy Retain, or a pool the controller cannot read since a
// restart) keep the value shown, so speakers keep announcing them with that
// pool's announcements.
func wantPoolAnnotation(svc *corev1.Service, asg allocator.Assignment) (string, bool) {
	if len(asg.IPs) == 0 {
		return "", false
	}
	if asg.Pool != "" {
		return asg.Pool, true
	}
	shown, ok := svc.Annotations[heraldv1.AnnotationAllocatedFromPool]
	return shown, ok
}

// writePoolAnnotation sets or removes herald.io/allocated-from-pool on a Service,
// only when it differs from what it shows. The annotation is metadata, which the
// status subresource cannot write, so it is a patch of its own; a JSON merge patch
// touches that one key and nothing else.
func (c *Controller) writePoolAnnotation(ctx context.Context, svc *corev1.Service, asg allocator.Assignment) error {
	want, keep := wantPoolAnnotation(svc, asg)
	shown, has := svc.Annotations[heraldv1.AnnotationAllocatedFromPool]
	if keep == has && want == shown {
		return nil
	}
	var value any // nil removes the key
	if keep {
		value = want
	}
	// The UID in the patch makes it fail rather than land on a Service deleted
	// and re-created under the same name since it was read.
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid":         svc.UID,
		"annotations": map[string]any{heraldv1.AnnotationAllocatedFromPool: value},
	}})
	if err != nil {
		return fmt.Errorf("encoding the %s patch: %w", heraldv1.AnnotationAllocatedFromPool, err)
	}
	_, err = c.cs.CoreV1().Services(svc.Namespace).Patch(ctx, svc.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) || (apierrors.IsInvalid(err) && strings.Contains(err.Error(), "uid")) {
		c.log.V(1).Info("Service changed identity before its annotation was written", "service", svc.Namespace+"/"+svc.Name, "detail", err.Error())
		return nil
	}
	if err != nil {
		return fmt.Errorf("writing annotation %s on Service %s/%s: %w", heraldv1.AnnotationAllocatedFromPool, svc.Namespace, svc.Name, err)
	}
	return nil
}

// applyStatus sets, by server-side apply, the fields herald owns in a Service's
// status: the ingress addresses and the herald.io/IPAllocated condition. With no
// condition it removes both, leaving other writers' fields alone.
func (c *Controller) applyStatus(ctx context.Context, svc *corev1.Service, ips []netip.Addr, cond *metav1.Condition) error {
	st := corev1ac.ServiceStatus()
	if cond != nil {
		lb := corev1ac.LoadBalancerStatus()
		for _, ip := range ips {
			lb.WithIngress(corev1ac.LoadBalancerIngress().WithIP(ip.String()).WithIPMode(corev1.LoadBalancerIPModeVIP))
		}
		st.WithLoadBalancer(lb).WithConditions(metav1ac.Condition().
			WithType(cond.Type).WithStatus(cond.Status).WithReason(cond.Reason).WithMessage(cond.Message).
			WithObservedGeneration(cond.ObservedGeneration).WithLastTransitionTime(cond.LastTransitionTime))
	}
	// The UID makes the write fail rather than land on a Service deleted and
	// re-created under the same name since it was read (or create a new one).
	ac := corev1ac.Service(svc.Name, svc.Namespace).WithUID(svc.UID).WithStatus(st)
	_, err := c.cs.CoreV1().Services(svc.Namespace).ApplyStatus(ctx, ac, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) || (apierrors.IsInvalid(err) && svc.UID != "" && strings.Contains(err.Error(), "uid")) {
		// The Service is gone or replaced; its own events bring it back here.
		c.log.V(1).Info("Service changed identity before its status was written", "service", svc.Namespace+"/"+svc.Name, "detail", err.Error())
		return nil
	}
	if err != nil {
		return fmt.Errorf("writing status of Service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	c.writes.Add(1)
	return nil
}

func findCondition(svc *corev1.Service) *metav1.Condition {
	return meta.FindStatusCondition(svc.Status.Conditions, heraldv1.ConditionIPAllocated)
}

func allVIP(svc *corev1.Service) bool {
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IPMode == nil || *ing.IPMode != corev1.LoadBalancerIPModeVIP {
			return false
		}
	}
	return true
}
