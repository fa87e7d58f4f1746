// Package layer2 makes LoadBalancer addresses reachable on a local link: it answers
// ARP (RFC 826) and Neighbor Discovery (RFC 4861) for addresses that no interface
// holds, probes before first use (RFC 5227 ARP probes, RFC 4862 duplicate address
// detection), and announces takeovers with gratuitous ARP and unsolicited Neighbor
// Advertisements, repeated periodically if asked (Config.RefreshInterval).
//
// A Responder serves one protocol on one interface; an Announcer turns a desired
// set of address → interface pairs into open Responders. ChooseInterface picks the
// interface for an address from a Topology, which ReadTopology reads from netlink and
// Watch reports changes of.
//
// While it announces an address, a Responder watches the wire for another host
// claiming it (an ARP reply or announcement from it, a Neighbor Advertisement for
// it) and reports each such Conflict to the Announcer's owner, who decides which
// side stops (package conflict); this package never withdraws on its own.
package layer2
