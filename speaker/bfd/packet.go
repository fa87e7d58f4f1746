package bfd

import (
	"encoding/binary"
	"fmt"
	"time"
)

// State is a session state (RFC 5880 §4.1, bfd.SessionState).
type State uint8

// The session states, with their wire values.
const (
	StateAdminDown State = 0
	StateDown      State = 1
	StateInit      State = 2
	StateUp        State = 3
)

func (s State) String() string {
	switch s {
	case StateAdminDown:
		return "AdminDown"
	case StateDown:
		return "Down"
	case StateInit:
		return "Init"
	case StateUp:
		return "Up"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Diag is a diagnostic code: why the sender's session last changed state
// (RFC 5880 §4.1). Values 9–31 are reserved; they are carried, not rejected.
type Diag uint8

// The diagnostic codes of RFC 5880 §4.1.
const (
	DiagNone                  Diag = 0
	DiagControlDetectExpired  Diag = 1
	DiagEchoFailed            Diag = 2
	DiagNeighborSignaledDown  Diag = 3
	DiagForwardingPlaneReset  Diag = 4
	DiagPathDown              Diag = 5
	DiagConcatenatedPathDown  Diag = 6
	DiagAdminDown             Diag = 7
	DiagReverseConcatPathDown Diag = 8
)

var diagNames = [...]string{
	"No Diagnostic",
	"Control Detection Time Expired",
	"Echo Function Failed",
	"Neighbor Signaled Session Down",
	"Forwarding Plane Reset",
	"Path Down",
	"Concatenated Path Down",
	"Administratively Down",
	"Reverse Concatenated Path Down",
}

func (d Diag) String() string {
	if int(d) < len(diagNames) {
		return diagNames[d]
	}
	return fmt.Sprintf("Diag(%d)", uint8(d))
}

// Packet is a BFD control packet without authentication section. Intervals
// travel in microseconds; Marshal truncates sub-microsecond parts and clamps
// to the 32-bit field.
type Packet struct {
	Diag  Diag
	State State
	// Flags. Authentication (A) and Multipoint (M) are not fields: Unmarshal
	// rejects packets that set them and Marshal never sets them.
	Poll                    bool
	Final                   bool
	ControlPlaneIndependent bool
	Demand                  bool

	DetectMult        uint8
	MyDiscriminator   uint32
	YourDiscriminator uint32
	DesiredMinTx      time.Duration
	RequiredMinRx     time.Duration
	RequiredMinEchoRx time.Duration
}

// PacketLen is the length of a control packet without authentication.
const PacketLen = 24

const (
	version   = 1
	flagPoll  = 1 << 5
	flagFinal = 1 << 4
	flagCPI   = 1 << 3
	flagAuth  = 1 << 2
	flagDem   = 1 << 1
	flagMulti = 1 << 0
)

// DropReason says why Unmarshal refused a datagram; it is the error Unmarshal
// returns, so callers and tests can tell reasons apart with errors.As.
type DropReason uint8

// The reasons a received datagram is not a usable control packet.
const (
	DropShort        DropReason = iota + 1 // fewer than 24 bytes, or Length < 24
	DropVersion                            // version is not 1
	DropLength                             // Length field exceeds the datagram
	DropDetectMult                         // Detect Mult is zero
	DropMultipoint                         // M bit set
	DropMyDiscZero                         // My Discriminator is zero
	DropYourDiscZero                       // Your Discriminator zero in state Init or Up
	DropAuth                               // A bit set: authentication is not supported
	DropTTL                                // TTL / hop limit not 255 (GTSM, RFC 5881 §5); reported by Conn
	DropNoSession                          // no session matches the discriminators or the source
	DropAdminDown                          // our session is AdminDown (§6.8.6)
	dropReasonEnd
)

var dropNames = [...]string{
	DropShort:        "packet too short",
	DropVersion:      "unsupported version",
	DropLength:       "length exceeds datagram",
	DropDetectMult:   "detect multiplier is zero",
	DropMultipoint:   "multipoint bit set",
	DropMyDiscZero:   "my discriminator is zero",
	DropYourDiscZero: "your discriminator is zero outside Down/AdminDown",
	DropAuth:         "authentication not supported",
	DropTTL:          "TTL/hop limit is not 255",
	DropNoSession:    "no matching session",
	DropAdminDown:    "session is administratively down",
}

func (r DropReason) String() string {
	if r > 0 && r < dropReasonEnd {
		return dropNames[r]
	}
	return fmt.Sprintf("DropReason(%d)", uint8(r))
}

func (r DropReason) Error() string { return "bfd: dropped: " + r.String() }

// Unmarshal parses a control packet and applies the checks of RFC 5880 §6.8.6
// that need only the packet. Bytes after the Length field's end are ignored.
// Packets with the A bit are rejected: herald configures no authentication,
// and §6.8.6 says to discard them then. The error is a DropReason.
func Unmarshal(b []byte) (Packet, error) {
	var p Packet
	if len(b) < PacketLen {
		return p, DropShort
	}
	if b[0]>>5 != version {
		return p, DropVersion
	}
	flags := b[1] & 0x3f
	length := int(b[3])
	if length < PacketLen {
		return p, DropShort
	}
	if length > len(b) {
		return p, DropLength
	}
	if flags&flagAuth != 0 {
		return p, DropAuth
	}
	if b[2] == 0 {
		return p, DropDetectMult
	}
	if flags&flagMulti != 0 {
		return p, DropMultipoint
	}
	p = Packet{
		Diag:                    Diag(b[0] & 0x1f),
		State:                   State(b[1] >> 6),
		Poll:                    flags&flagPoll != 0,
		Final:                   flags&flagFinal != 0,
		ControlPlaneIndependent: flags&flagCPI != 0,
		Demand:                  flags&flagDem != 0,
		DetectMult:              b[2],
		MyDiscriminator:         binary.BigEndian.Uint32(b[4:]),
		YourDiscriminator:       binary.BigEndian.Uint32(b[8:]),
		DesiredMinTx:            usec(binary.BigEndian.Uint32(b[12:])),
		RequiredMinRx:           usec(binary.BigEndian.Uint32(b[16:])),
		RequiredMinEchoRx:       usec(binary.BigEndian.Uint32(b[20:])),
	}
	if p.MyDiscriminator == 0 {
		return Packet{}, DropMyDiscZero
	}
	if p.YourDiscriminator == 0 && p.State != StateDown && p.State != StateAdminDown {
		return Packet{}, DropYourDiscZero
	}
	return p, nil
}

// Marshal appends the 24-byte wire form of p to b and returns the result. It
// does not validate p: a Session never builds an invalid packet, and tests
// need invalid ones.
func (p *Packet) Marshal(b []byte) []byte {
	var flags byte
	if p.Poll {
		flags |= flagPoll
	}
	if p.Final {
		flags |= flagFinal
	}
	if p.ControlPlaneIndependent {
		flags |= flagCPI
	}
	if p.Demand {
		flags |= flagDem
	}
	b = append(b,
		version<<5|byte(p.Diag)&0x1f,
		byte(p.State)<<6|flags,
		p.DetectMult,
		PacketLen)
	b = binary.BigEndian.AppendUint32(b, p.MyDiscriminator)
	b = binary.BigEndian.AppendUint32(b, p.YourDiscriminator)
	b = binary.BigEndian.AppendUint32(b, toUsec(p.DesiredMinTx))
	b = binary.BigEndian.AppendUint32(b, toUsec(p.RequiredMinRx))
	b = binary.BigEndian.AppendUint32(b, toUsec(p.RequiredMinEchoRx))
	return b
}

func usec(v uint32) time.Duration { return time.Duration(v) * time.Microsecond }

func toUsec(d time.Duration) uint32 {
	switch {
	case d <= 0:
		return 0
	case d/time.Microsecond > 0xffffffff:
		return 0xffffffff
	}
	return uint32(d / time.Microsecond)
}
