// Package bfd implements Bidirectional Forwarding Detection (RFC 5880) in
// asynchronous mode over single-hop IPv4 and IPv6 (RFC 5881), so a speaker
// learns within a fraction of a second that the path to a BGP peer is gone.
//
// The package has three layers:
//
//   - Packet, Marshal and Unmarshal: the control packet codec (RFC 5880 §4.1)
//     with the reception checks of §6.8.6 that depend only on the packet.
//   - Session: the per-session state machine, a pure value driven by the
//     current time and received packets; it never reads a clock, sleeps or
//     starts goroutines, and it tells its caller what to send and when to call
//     it next.
//   - Manager: the runner. It owns the sockets (through the Conn seam), one
//     receive goroutine, one event loop and one notifier goroutine, and turns a
//     declarative list of peers into sessions.
//
// What is not implemented: authentication (packets with the A bit are
// dropped), Demand mode, the Echo function, multihop (RFC 5883) and the
// passive role (herald always sends first).
package bfd
