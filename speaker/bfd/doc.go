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
//   - Manager: the runner. It owns the network (through the Conn seam; UDP is
//     the real one), one receive goroutine, one timer goroutine and one
//     notifier goroutine, and turns a declarative list of peers into sessions.
//
// # Use from a BGP speaker
//
// One Manager per node: New(Config{Logger, OnChange}) at start. Whenever the
// set of BGP peers with BFD changes, call Set with all of them (adding a peer
// starts its session, changing its timers runs a Poll Sequence without taking
// it down, leaving it out tells the peer AdminDown and forgets it). OnChange
// (peer, false) means the path to peer failed: tear that BGP session down.
// OnChange(peer, true) means BFD is Up. At a deliberate shutdown or restart
// call Close(ctx): the peers see AdminDown, which RFC 5882 §3.2 tells them not
// to treat as a failure, so their BGP sessions (and graceful restart) are left
// to BGP. Stop ends the Manager silently: the peers detect a failure, as if
// the node had died. The receive port, 3784, is the node's: a bfdd running on
// the same host would hold it.
//
// # Deviations from the RFCs
//
//   - Authentication (§6.7) is not implemented; packets with the A bit are
//     dropped, as §6.8.6 orders when none is configured.
//   - Demand mode, the Echo function (RequiredMinEchoRx is always 0),
//     multihop (RFC 5883) and the passive role are not implemented. A peer's
//     D bit is recorded but we keep sending periodically.
//   - A packet is sent at once on every state change, not only at the next
//     periodic slot (as FRR and most implementations do): it halves the time
//     to come Up.
//   - When a session is set AdminDown it keeps its negotiated pace for the
//     few packets it sends (Detect Mult of them, about a Detection Time, as
//     §6.8.16 asks) instead of slowing to 1 s (§6.8.3), so the peer hears it
//     within its own Detection Time; then the session is forgotten.
//   - A change of timers during a Poll Sequence waits for it to end and then
//     starts its own (only one poll runs at a time).
package bfd
