// Package layer2 makes LoadBalancer addresses reachable on a local link: it answers
// ARP (RFC 826) and Neighbor Discovery (RFC 4861) for addresses that no interface
// holds, probes before first use (RFC 5227 ARP probes, RFC 4862 duplicate address
// detection), and announces takeovers with gratuitous ARP and unsolicited Neighbor
// Advertisements.
//
// A Responder serves one protocol on one interface; an Announcer turns a desired
// set of address → interface pairs into open Responders. ChooseInterface picks the
// interface for an address from a Topology, which ReadTopology reads from netlink and
// Watch reports changes of.
package layer2
