package layer2

import "sync/atomic"

// Stats is a snapshot of a Responder's or an Announcer's counters. Counters only
// grow: an Announcer keeps the counts of the Responders it has closed.
type Stats struct {
	// RequestsSeen counts well-formed ARP requests and Neighbor Solicitations
	// from other hosts, for any target.
	RequestsSeen uint64
	// RepliesSent counts ARP replies and solicited Neighbor Advertisements sent.
	RepliesSent uint64
	// GratuitousSent counts gratuitous ARP packets and unsolicited Neighbor
	// Advertisements sent at takeover (and by Announcer.Reannounce), not those of
	// the periodic refresh.
	GratuitousSent uint64
	// RefreshSent counts gratuitous ARP packets and unsolicited Neighbor
	// Advertisements sent by the periodic refresh (Config.RefreshInterval).
	RefreshSent uint64
	// ProbesSent counts ARP probes and duplicate address detection solicitations sent.
	ProbesSent uint64
	// ConflictsDetected counts probes that another host (not an ignored one) answered.
	ConflictsDetected uint64
	// ForeignClaimsIPv4 and ForeignClaimsIPv6 count frames in which another host
	// claimed an address this node announces (see Conflict), reported or not.
	ForeignClaimsIPv4, ForeignClaimsIPv6 uint64
	// ConflictReportsDropped counts Conflicts not reported because the owner's
	// channel was full.
	ConflictReportsDropped uint64
	// Errors counts failed reads and writes on the packet socket.
	Errors uint64
	// Dropped counts received packets that were not answered, by reason
	// ("malformed", "notAnnounced", ...). Reasons never seen are absent.
	Dropped map[string]uint64
}

// add returns the sum of s and o.
func (s Stats) add(o Stats) Stats {
	out := Stats{
		RequestsSeen:           s.RequestsSeen + o.RequestsSeen,
		RepliesSent:            s.RepliesSent + o.RepliesSent,
		GratuitousSent:         s.GratuitousSent + o.GratuitousSent,
		RefreshSent:            s.RefreshSent + o.RefreshSent,
		ProbesSent:             s.ProbesSent + o.ProbesSent,
		ConflictsDetected:      s.ConflictsDetected + o.ConflictsDetected,
		ForeignClaimsIPv4:      s.ForeignClaimsIPv4 + o.ForeignClaimsIPv4,
		ForeignClaimsIPv6:      s.ForeignClaimsIPv6 + o.ForeignClaimsIPv6,
		ConflictReportsDropped: s.ConflictReportsDropped + o.ConflictReportsDropped,
		Errors:                 s.Errors + o.Errors,
	}
	for _, m := range []map[string]uint64{s.Dropped, o.Dropped} {
		for k, v := range m {
			if out.Dropped == nil {
				out.Dropped = make(map[string]uint64)
			}
			out.Dropped[k] += v
		}
	}
	return out
}

// counters are the live, lock-free form of Stats.
type counters struct {
	requests, replies, gratuitous, refresh, probes, conflicts, errors atomic.Uint64
	// claims counts foreign claims; the Responder's family says which field.
	claims, conflictDrops atomic.Uint64
	drops                 [numDropReasons]atomic.Uint64
}

func (c *counters) snapshot() Stats {
	s := Stats{
		RequestsSeen:           c.requests.Load(),
		RepliesSent:            c.replies.Load(),
		GratuitousSent:         c.gratuitous.Load(),
		RefreshSent:            c.refresh.Load(),
		ProbesSent:             c.probes.Load(),
		ConflictsDetected:      c.conflicts.Load(),
		ConflictReportsDropped: c.conflictDrops.Load(),
		Errors:                 c.errors.Load(),
	}
	for r := dropReason(1); r < numDropReasons; r++ {
		if n := c.drops[r].Load(); n > 0 {
			if s.Dropped == nil {
				s.Dropped = make(map[string]uint64)
			}
			s.Dropped[r.String()] = n
		}
	}
	return s
}
