package layer2

// dropReason says why a received packet was not answered. The zero value,
// dropNone, means the packet was answered.
type dropReason int

const (
	// dropNone: the packet was a request for an announced address and was answered.
	dropNone dropReason = iota
	// dropWrongProtocol: the frame is not ARP (or not ICMPv6 NDP), so the socket's
	// filter let through something this handler does not speak.
	dropWrongProtocol
	// dropMalformed: the frame failed to parse or to validate (truncated, bad
	// lengths, bad checksum, hop limit other than 255, ...).
	dropMalformed
	// dropFromSelf: the frame was sent from this interface's hardware address;
	// packet sockets also see outgoing frames.
	dropFromSelf
	// dropNotRequest: the packet is a reply or advertisement, not a request.
	dropNotRequest
	// dropNotAnnounced: the request is for an address this responder does not
	// announce.
	dropNotAnnounced
	// dropAnnouncement: another host announced (gratuitously) an address this
	// responder announces; answering an announcement tells nobody anything.
	dropAnnouncement

	numDropReasons
)

var dropReasonNames = [numDropReasons]string{
	dropNone:          "none",
	dropWrongProtocol: "wrongProtocol",
	dropMalformed:     "malformed",
	dropFromSelf:      "fromSelf",
	dropNotRequest:    "notRequest",
	dropNotAnnounced:  "notAnnounced",
	dropAnnouncement:  "announcement",
}

func (r dropReason) String() string {
	if r >= 0 && r < numDropReasons {
		return dropReasonNames[r]
	}
	return "unknown"
}
