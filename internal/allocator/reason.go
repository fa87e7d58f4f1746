package allocator

import "errors"

// Reason says why a Service got no address. Its String is the reason written on the
// Service's herald.io/IPAllocated condition and its Event, and the label of the
// failure metric.
type Reason int

const (
	// ReasonInvalidRequest: the Service's annotations or fields contradict
	// themselves (two requested addresses of one family, say).
	ReasonInvalidRequest Reason = iota + 1
	// ReasonNoPool: there are no IPPools, or none that takes automatic assignments.
	ReasonNoPool
	// ReasonNoPoolAllowed: pools exist, but their allocation limits (namespaces,
	// selectors) leave this Service out of all of them.
	ReasonNoPoolAllowed
	// ReasonPoolNotFound: the Service names a pool that does not exist.
	ReasonPoolNotFound
	// ReasonPoolNotAllowed: the named pool's allocation limits leave the Service out.
	ReasonPoolNotAllowed
	// ReasonFamilyUnavailable: no pool the Service may use has an address family the
	// Service requires.
	ReasonFamilyUnavailable
	// ReasonPoolExhausted: the pools the Service may use have no free address.
	ReasonPoolExhausted
	// ReasonRequestedIPNotInPool: a requested address is in no pool the Service may
	// use (or is excluded there by avoidBuggyIPs).
	ReasonRequestedIPNotInPool
	// ReasonRequestedIPInUse: a requested address belongs to a Service it may not
	// be shared with.
	ReasonRequestedIPInUse
	// ReasonSharingConflict: Services with the same sharing key cannot share an
	// address because ports clash or their externalTrafficPolicy differs.
	ReasonSharingConflict
	// ReasonNodeAddress: a requested address is a Node's own address
	// (InternalIP or ExternalIP). The node already answers for it, so a Service
	// given it would have two machines answering ARP/NDP for one address.
	ReasonNodeAddress
	// ReasonSharingLocalSelector: externalTrafficPolicy Local Services may share
	// an address only when they select the same pods (equal spec.selector): the
	// address is announced only from nodes with a ready endpoint of every sharer,
	// so sharers whose pods run on different nodes would leave no node eligible
	// and cut the Service that worked.
	ReasonSharingLocalSelector
)

var reasonNames = map[Reason]string{
	ReasonInvalidRequest:       "InvalidRequest",
	ReasonNoPool:               "NoPool",
	ReasonNoPoolAllowed:        "NoPoolAllowed",
	ReasonPoolNotFound:         "PoolNotFound",
	ReasonPoolNotAllowed:       "PoolNotAllowed",
	ReasonFamilyUnavailable:    "FamilyUnavailable",
	ReasonPoolExhausted:        "PoolExhausted",
	ReasonRequestedIPNotInPool: "RequestedIPNotInPool",
	ReasonRequestedIPInUse:     "RequestedIPInUse",
	ReasonSharingConflict:      "SharingConflict",
	ReasonNodeAddress:          "NodeAddress",
	ReasonSharingLocalSelector: "SharingLocalSelector",
}

func (r Reason) String() string {
	if s, ok := reasonNames[r]; ok {
		return s
	}
	return "Unknown"
}

// Reasons lists every reason, for metrics that want all label values up front.
func Reasons() []Reason {
	out := make([]Reason, 0, len(reasonNames))
	for r := ReasonInvalidRequest; r <= ReasonSharingLocalSelector; r++ {
		out = append(out, r)
	}
	return out
}

// Error is a refusal: a reason for programs and a message for people.
type Error struct {
	Reason  Reason
	Message string
}

func (e *Error) Error() string { return e.Message }

// ReasonOf returns the reason carried by err, or 0 when it carries none.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return 0
}
