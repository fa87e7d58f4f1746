//go:build kind

package kind

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/mdlayher/arp"
)

// resolver asks "who has ip?" on the host's kind bridge, as a client's kernel
// would, without caching: every call is a fresh resolution.
type resolver struct {
	c     *arp.Client
	nodes map[string]node
}

func newResolver(c *cluster) (*resolver, error) {
	ifi, err := net.InterfaceByName(c.bridge)
	if err != nil {
		return nil, fmt.Errorf("kind bridge %s: %w", c.bridge, err)
	}
	client, err := arp.Dial(ifi)
	if err != nil {
		return nil, fmt.Errorf("ARP on %s: %w", c.bridge, err)
	}
	return &resolver{c: client, nodes: c.nodes}, nil
}

func (r *resolver) Close() error { return r.c.Close() }

// owner sends one ARP request for ip and returns the node whose MAC answered
// within timeout ("" when none did, or a MAC no node has).
func (r *resolver) owner(ip string, timeout time.Duration) (string, string) {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return "", err.Error()
	}
	// Drop answers still queued from earlier requests (two nodes answer while an
	// address moves): only an answer to this request counts.
	if err := r.c.SetReadDeadline(time.Now().Add(time.Millisecond)); err != nil {
		return "", err.Error()
	}
	for {
		if _, _, err := r.c.Read(); err != nil {
			break
		}
	}
	if err := r.c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err.Error()
	}
	if err := r.c.Request(addr); err != nil {
		return "", err.Error()
	}
	for {
		p, _, err := r.c.Read()
		if err != nil {
			return "", "no answer"
		}
		if p.Operation != arp.OperationReply || p.SenderIP != addr {
			continue
		}
		mac := strings.ToLower(p.SenderHardwareAddr.String())
		for _, n := range r.nodes {
			if n.MAC == mac {
				return n.Name, mac
			}
		}
		return "", "MAC " + mac + " is no node's"
	}
}
