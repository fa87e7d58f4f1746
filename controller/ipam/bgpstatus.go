package ipam

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// The speakers own each BGPPeer's status.nodes (one entry per node, each under its
// own field manager); the controller applies only status.summary.
//
// +kubebuilder:rbac:groups=herald.io,resources=bgppeers;bgpannouncements,verbs=get;list;watch
// +kubebuilder:rbac:groups=herald.io,resources=bgppeers/status;bgpannouncements/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",namespace=herald-system,resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch

// bgpReady is the Ready condition of a BGPAnnouncement given the pools and peers
// that exist. Selectors and pools are judged as for an L2Announcement; then the
// peers: False/UnknownPeer when none of the peers it names exists, False/NoPeer
// when it names none and there is no BGPPeer at all. Named peers of which only
// some exist leave it Ready, with the missing ones in the message.
func bgpReady(a *heraldv1.BGPAnnouncement, pools []heraldv1.IPPool, peers []heraldv1.BGPPeer) metav1.Condition {
	c, pc, ok := announcementReady(a.Generation, a.Spec.IPPools, a.Spec.IPPoolSelector, a.Spec.NodeSelector, a.Spec.ServiceSelector, pools)
	if !ok {
		return c
	}

	var found, missing []string
	if len(a.Spec.Peers) == 0 {
		for _, p := range peers {
			found = append(found, p.Name)
		}
	} else {
		for _, want := range a.Spec.Peers {
			if slices.ContainsFunc(peers, func(p heraldv1.BGPPeer) bool { return p.Name == want }) {
				found = append(found, want)
			} else {
				missing = append(missing, want)
			}
		}
	}
	slices.Sort(found)
	var missingPeers string
	if len(missing) > 0 {
		missingPeers = "; BGPPeers not found: " + strings.Join(missing, ", ")
	}

	switch {
	case len(pc.covered) == 0:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, "NoPool", "covers no existing IPPool"
	case len(a.Spec.Peers) > 0 && len(found) == 0:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, "UnknownPeer", "names no existing BGPPeer"
	case len(found) == 0:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, "NoPeer", "no BGPPeer exists to announce to"
	default:
		c.Status, c.Reason = metav1.ConditionTrue, "Valid"
		c.Message = "covers IPPools " + strings.Join(pc.covered, ", ") + " and BGPPeers " + strings.Join(found, ", ")
	}
	c.Message += pc.missingNote() + missingPeers
	return c
}

// peerSummary is a BGPPeer's status.summary: established sessions over all the
// sessions the speakers report, e.g. "2/3".
func peerSummary(st *heraldv1.BGPPeerStatus) string {
	up := 0
	for _, n := range st.Nodes {
		if n.State == heraldv1.BGPSessionEstablished {
			up++
		}
	}
	return fmt.Sprintf("%d/%d", up, len(st.Nodes))
}

// peerSecretCheck is the BGPPeer spec whose password Secret was last looked up.
type peerSecretCheck struct {
	uid        types.UID
	generation int64
}

// writeBGPStatuses keeps every BGPAnnouncement's Ready condition and every
// BGPPeer's summary current, and warns about password Secrets that do not exist.
func (c *Controller) writeBGPStatuses(ctx context.Context, pools []heraldv1.IPPool) error {
	var peers heraldv1.BGPPeerList
	if err := c.client.List(ctx, &peers); err != nil {
		return fmt.Errorf("listing BGPPeers: %w", err)
	}
	var anns heraldv1.BGPAnnouncementList
	if err := c.client.List(ctx, &anns); err != nil {
		return fmt.Errorf("listing BGPAnnouncements: %w", err)
	}
	var errs []string
	for i := range anns.Items {
		a := &anns.Items[i]
		if !meta.SetStatusCondition(&a.Status.Conditions, bgpReady(a, pools, peers.Items)) {
			continue
		}
		if err := c.client.Status().Update(ctx, a); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Sprintf("BGPAnnouncement %s: %v", a.Name, err))
		}
	}
	exists := map[string]bool{}
	if slices.ContainsFunc(peers.Items, func(p heraldv1.BGPPeer) bool { return len(p.Status.Nodes) > 0 }) {
		var nodes corev1.NodeList
		if err := c.client.List(ctx, &nodes, client.UnsafeDisableDeepCopy); err != nil {
			return fmt.Errorf("listing Nodes: %w", err)
		}
		for _, n := range nodes.Items {
			exists[n.Name] = true
		}
	}
	for i := range peers.Items {
		p := &peers.Items[i]
		c.pruneGoneNodes(ctx, p, exists)
		if err := c.applyPeerSummary(ctx, p); err != nil {
			errs = append(errs, fmt.Sprintf("BGPPeer %s: %v", p.Name, err))
		}
	}
	c.checkPeerSecrets(ctx, peers.Items)
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// pruneGoneNodes removes the status entries of Nodes that no longer exist: their
// speakers, gone with them, cannot. Each entry belongs to its speaker's field
// manager, so the removal is that manager applying an empty list.
func (c *Controller) pruneGoneNodes(ctx context.Context, p *heraldv1.BGPPeer, exists map[string]bool) {
	kept := p.Status.Nodes[:0:0]
	for _, e := range p.Status.Nodes {
		if exists[e.Node] {
			kept = append(kept, e)
			continue
		}
		err := c.client.Status().Patch(ctx, heraldv1.BGPPeerNodeStatusApply(p.Name, nil), client.Apply, client.FieldOwner(heraldv1.SpeakerFieldManagerPrefix+e.Node))
		if err != nil && !apierrors.IsNotFound(err) {
			c.log.Error(err, "Removing a deleted Node's BGPPeer status entry", "peer", p.Name, "node", e.Node)
			kept = append(kept, e)
			continue
		}
		c.log.Info("Removed a deleted Node's BGPPeer status entry", "peer", p.Name, "node", e.Node)
	}
	p.Status.Nodes = kept
}

// applyPeerSummary writes status.summary when it changed, with server-side apply of
// that field alone: an update would take over, or drop, the speakers' entries.
func (c *Controller) applyPeerSummary(ctx context.Context, p *heraldv1.BGPPeer) error {
	sum := peerSummary(&p.Status)
	if sum == p.Status.Summary {
		return nil
	}
	err := c.client.Status().Patch(ctx, heraldv1.BGPPeerSummaryApply(p.Name, sum), client.Apply, client.FieldOwner(FieldManager), client.ForceOwnership)
	if apierrors.IsNotFound(err) {
		return nil // deleted meanwhile
	}
	return err
}

// checkPeerSecrets records a Warning Event on each BGPPeer whose passwordSecretRef
// names a Secret (or key) missing from herald's namespace. Each peer's spec is
// checked once, when first seen and after each change to it; Secrets are not
// watched, so one created or deleted later is noticed at the peer's next edit.
func (c *Controller) checkPeerSecrets(ctx context.Context, peers []heraldv1.BGPPeer) {
	if c.opts.Namespace == "" {
		return
	}
	seen := map[string]bool{}
	for i := range peers {
		p := &peers[i]
		seen[p.Name] = true
		ref := p.Spec.PasswordSecretRef
		if ref == nil {
			delete(c.peerSecrets, p.Name)
			continue
		}
		check := peerSecretCheck{uid: p.UID, generation: p.Generation}
		if c.peerSecrets[p.Name] == check {
			continue
		}
		// Straight to the API server: a cached read would watch every Secret in
		// the cluster.
		s, err := c.cs.CoreV1().Secrets(c.opts.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			c.recorder.Eventf(p, corev1.EventTypeWarning, "PasswordSecretNotFound",
				"passwordSecretRef names Secret %s/%s, which does not exist: the sessions cannot use their TCP MD5 password", c.opts.Namespace, ref.Name)
		case err != nil:
			// Tried again at a status pass, asked for in a while so an API
			// outage is not hammered.
			c.log.Error(err, "Checking a BGPPeer's password Secret; retrying in 30s", "bgppeer", p.Name, "secret", ref.Name)
			time.AfterFunc(30*time.Second, c.markPoolsDirty)
			continue
		default:
			key := ref.Key
			if key == "" {
				key = "password"
			}
			if _, ok := s.Data[key]; !ok {
				c.recorder.Eventf(p, corev1.EventTypeWarning, "PasswordSecretNotFound",
					"Secret %s/%s named by passwordSecretRef has no key %q: the sessions cannot use their TCP MD5 password", c.opts.Namespace, ref.Name, key)
			}
		}
		c.peerSecrets[p.Name] = check
	}
	for name := range c.peerSecrets {
		if !seen[name] {
			delete(c.peerSecrets, name)
		}
	}
}
