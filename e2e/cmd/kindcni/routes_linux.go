package main

import (
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// routeProtocol marks the routes the agent owns ("proto 157" in ip route, 0x9d).
// The number is unassigned in iproute2's rt_protos (kernel 0-4, daemons 8-17,
// 42 babel, 186-192 bgp/isis/ospf/rip/eigrp), so no other routing software on a
// kind node uses it, and a restarted agent can find and remove stale routes of a
// previous run without touching anyone else's.
const routeProtocol netlink.RouteProtocol = 0x9d

// netlinkTable is the main routing table of the current network namespace.
type netlinkTable struct{}

var _ routeTable = netlinkTable{}

func newRouteTable() (routeTable, error) { return netlinkTable{}, nil }

func (netlinkTable) List() ([]Route, error) {
	filter := &netlink.Route{Protocol: routeProtocol, Table: unix.RT_TABLE_MAIN}
	nrs, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, err
	}
	out := make([]Route, 0, len(nrs))
	for _, nr := range nrs {
		r, ok := fromNetlink(nr)
		if !ok {
			// Not a route this agent writes (no gateway, multipath): still
			// ours by protocol, so return it with what can be read, to be
			// deleted by Dst.
			r = Route{Dst: prefixOf(nr.Dst)}
			if !r.Dst.IsValid() {
				continue
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func (netlinkTable) Replace(r Route) error { return netlink.RouteReplace(toNetlink(r)) }

func (netlinkTable) Delete(r Route) error { return netlink.RouteDel(toNetlink(r)) }

func toNetlink(r Route) *netlink.Route {
	return &netlink.Route{
		Dst:      &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), r.Dst.Addr().BitLen())},
		Gw:       r.Via.AsSlice(), // nil for the zero Addr: delete by Dst alone
		Protocol: routeProtocol,
		Table:    unix.RT_TABLE_MAIN,
	}
}

// fromNetlink reports whether nr has the shape toNetlink gives, and converts it.
func fromNetlink(nr netlink.Route) (Route, bool) {
	dst := prefixOf(nr.Dst)
	via, ok := netip.AddrFromSlice(nr.Gw)
	if !dst.IsValid() || !ok {
		return Route{}, false
	}
	return Route{Dst: dst, Via: via.Unmap()}, true
}

// prefixOf converts a route destination; the zero Prefix for none or a bad mask.
func prefixOf(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.Prefix{}
	}
	a, ok := netip.AddrFromSlice(n.IP)
	ones, bits := n.Mask.Size()
	if !ok || bits == 0 {
		return netip.Prefix{}
	}
	a = a.Unmap()
	if a.BitLen() != bits {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(a, ones).Masked()
}
