package doctor

import (
	"fmt"
	"slices"
	"strings"

	"go4.org/netipx"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/yaml"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/ipaddr"
	"github.com/heraldlb/herald/internal/kubeproxy"
	"github.com/heraldlb/herald/internal/nodeaddr"
)

// kubeProxyMode reads the mode of a KubeProxyConfiguration, lower-cased; ""
// means the default (iptables on Linux).
func kubeProxyMode(conf string) (string, error) {
	var c struct {
		Mode string `json:"mode"`
	}
	if err := yaml.Unmarshal([]byte(conf), &c); err != nil {
		return "", fmt.Errorf("reading the KubeProxyConfiguration: %w", err)
	}
	return strings.ToLower(strings.TrimSpace(c.Mode)), nil
}

const strictARPHint = `kubectl -n kube-system edit configmap kube-proxy   # under ipvs: set strictARP: true
kubectl -n kube-system rollout restart daemonset kube-proxy`

// checkKubeProxy judges config.conf of the ConfigMap kube-system/kube-proxy.
// l2Announcements is how many L2Announcements exist, -1 when unknown: IPVS
// without strictARP is an error only when layer 2 mode is in use.
func checkKubeProxy(conf string, l2Announcements int) Check {
	c := Check{Name: CheckKubeProxy}
	mode, err := kubeProxyMode(conf)
	if err == nil {
		var missing bool
		if missing, err = kubeproxy.StrictARPMissing(conf); err == nil && missing {
			const what = "IPVS mode without strictARP: every node answers ARP for every LoadBalancer address, whichever node herald elected"
			c.Hint = strictARPHint
			switch {
			case l2Announcements > 0:
				c.Status = StatusError
				c.Message = fmt.Sprintf("%s (%s in use)", what, plural(l2Announcements, "L2Announcement"))
			case l2Announcements == 0:
				c.Status = StatusWarning
				c.Message = what + " (no L2Announcement yet: BGP mode is unaffected)"
			default:
				c.Status = StatusWarning
				c.Message = what + " (L2Announcements could not be read)"
			}
			return c
		}
	}
	if err != nil {
		c.Status = StatusWarning
		c.Message = fmt.Sprintf("kube-system/kube-proxy %s is unreadable: %v", kubeproxy.ConfigKey, err)
		c.Hint = "kubectl -n kube-system get configmap kube-proxy -o yaml"
		return c
	}
	c.Status = StatusOK
	switch mode {
	case "", "iptables":
		c.Message = "iptables mode"
		if mode == "" {
			c.Message += " (mode unset: the default)"
		}
		c.Message += ": kube-proxy answers no ARP itself"
	case "nftables":
		c.Message = "nftables mode: kube-proxy answers no ARP itself"
	case "ipvs":
		c.Message = "IPVS mode with strictARP: true"
	default:
		c.Message = mode + " mode"
	}
	return c
}

// parsedPool is an IPPool's name and its addresses as a set.
type parsedPool struct {
	name string
	set  *netipx.IPSet
}

// parsePools parses every pool's addresses; bad lists the pools that do not
// parse (the API server's rules make that rare), one line each.
func parsePools(pools []heraldv1.IPPool) (ok []parsedPool, sets map[string]*netipx.IPSet, bad []string) {
	sets = map[string]*netipx.IPSet{}
	for i := range pools {
		p := &pools[i]
		s, err := ipaddr.ParseSet(p.Spec.Addresses)
		if err != nil {
			bad = append(bad, fmt.Sprintf("pool %q is unreadable: %v", p.Name, err))
			continue
		}
		sets[p.Name] = s
		ok = append(ok, parsedPool{name: p.Name, set: s})
	}
	return ok, sets, bad
}

// checkNodeAddresses reports Nodes' own addresses (InternalIP, ExternalIP) that
// lie in an IPPool. herald never hands them out, but the pool is then smaller
// than it looks and probably overlaps the nodes' subnet by mistake.
func checkNodeAddresses(pools []heraldv1.IPPool, nodes []corev1.Node) Check {
	c := Check{Name: CheckNodeAddresses}
	parsed, _, bad := parsePools(pools)
	var found []string
	for _, p := range parsed {
		for i := range nodes {
			for _, a := range nodeaddr.Own(&nodes[i]) {
				if p.set.Contains(a) {
					found = append(found, fmt.Sprintf("pool %q holds %s, an address of Node %s", p.name, a, nodes[i].Name))
				}
			}
		}
	}
	lines := slices.Concat(found, bad)
	switch {
	case len(found) > 0:
		c.Status = StatusError
		c.Message = strings.Join(lines, "\n")
		c.Hint = "herald never hands these out, but the pool likely overlaps the nodes' subnet or DHCP range by mistake:\nkubectl edit ippool <pool>   # take the node addresses out of spec.addresses"
	case len(bad) > 0:
		c.Status = StatusWarning
		c.Message = strings.Join(lines, "\n")
		c.Hint = "kubectl get ippools -o yaml"
	default:
		c.Status = StatusOK
		c.Message = fmt.Sprintf("no pool holds a node's address (%s, %s)", plural(len(pools), "pool"), plural(len(nodes), "node"))
	}
	return c
}

// checkPoolOverlap reports pairs of IPPools that share addresses: an address in
// two pools is handed out by one of them only, and which is not obvious.
func checkPoolOverlap(pools []heraldv1.IPPool) Check {
	c := Check{Name: CheckPoolOverlap}
	_, sets, _ := parsePools(pools)
	names := make([]string, 0, len(sets))
	for n := range sets {
		names = append(names, n)
	}
	slices.Sort(names)
	var found []string
	for i, a := range names {
		for _, b := range names[i+1:] {
			if shared := intersect(sets[a], sets[b]); len(shared) > 0 {
				found = append(found, fmt.Sprintf("pools %q and %q share %s", a, b, strings.Join(shared, ", ")))
			}
		}
	}
	if len(found) == 0 {
		c.Status = StatusOK
		c.Message = fmt.Sprintf("no two pools share an address (%s)", plural(len(sets), "pool"))
		return c
	}
	c.Status = StatusWarning
	c.Message = strings.Join(found, "\n")
	c.Hint = "kubectl edit ippool <pool>   # make each address belong to one pool"
	return c
}

// checkBGPSessions reports every node's session with every BGPPeer that is not
// Established, and peers no node keeps a session with.
func checkBGPSessions(peers []heraldv1.BGPPeer) Check {
	c := Check{Name: CheckBGPSessions}
	if len(peers) == 0 {
		c.Status = StatusOK
		c.Message = "no BGP peers"
		return c
	}
	peers = slices.Clone(peers)
	slices.SortFunc(peers, func(a, b heraldv1.BGPPeer) int { return strings.Compare(a.Name, b.Name) })
	var down, idle []string
	up := 0
	for _, p := range peers {
		who := fmt.Sprintf("%s (%s AS %d)", p.Name, p.Spec.PeerAddress, p.Spec.PeerASN)
		if len(p.Status.Nodes) == 0 {
			idle = append(idle, "peer "+who+": no node reports a session")
		}
		for _, n := range p.Status.Nodes {
			if n.State == heraldv1.BGPSessionEstablished {
				up++
				continue
			}
			line := fmt.Sprintf("node %s to peer %s: %s", n.Node, who, n.State)
			if n.LastError != "" {
				line += ": " + n.LastError
			}
			down = append(down, line)
		}
	}
	lines := slices.Concat(down, idle)
	switch {
	case len(down) > 0:
		c.Status = StatusError
		c.Message = fmt.Sprintf("%d of %d BGP sessions down\n%s", len(down), len(down)+up, strings.Join(lines, "\n"))
		c.Hint = "check the router accepts the node as neighbour with these ASNs (and password), and that TCP 179 is open between them:\nkubectl get bgppeers -o yaml; kubectl -n " + Namespace + " logs <speaker pod on the node>"
	case len(idle) > 0:
		c.Status = StatusWarning
		c.Message = strings.Join(lines, "\n")
		c.Hint = "the peer's nodeSelector matches no node with a running speaker: kubectl get bgppeer <peer> -o yaml"
	default:
		c.Status = StatusOK
		c.Message = fmt.Sprintf("%s Established with %s", plural(up, "session"), plural(len(peers), "peer"))
	}
	return c
}

// intersect returns the ranges a and b share, for people: "10.0.0.5",
// "10.0.0.8-10.0.0.15".
func intersect(a, b *netipx.IPSet) []string {
	var sb netipx.IPSetBuilder
	sb.AddSet(a)
	sb.Intersect(b)
	s, err := sb.IPSet()
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, r := range s.Ranges() {
		if r.From() == r.To() {
			out = append(out, r.From().String())
		} else {
			out = append(out, r.String())
		}
	}
	return out
}

// plural writes "1 pool", "2 pools".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
