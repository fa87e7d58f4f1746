// Package nodeaddr is the one rule for which addresses are a Node's own: the
// controller never hands them out and the speakers never announce them.
package nodeaddr

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
)

// Own returns n's InternalIP and ExternalIP addresses, unmapped, in status
// order. Hostnames and DNS names are not addresses a Service could be given;
// unparsable entries are passed over.
func Own(n *corev1.Node) []netip.Addr {
	var out []netip.Addr
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil {
			out = append(out, ip.Unmap())
		}
	}
	return out
}
