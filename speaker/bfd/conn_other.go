//go:build !linux

package bfd

import (
	"errors"
	"net/netip"
)

// UDPConfig configures NewUDP.
type UDPConfig struct {
	Port    int
	Listen  []netip.Addr
	DstPort int
}

// UDP is the real Conn; it is implemented on Linux only.
type UDP struct{ Conn }

// NewUDP is implemented on Linux only.
func NewUDP(UDPConfig) (*UDP, error) {
	return nil, errors.New("bfd: UDP transport not implemented on this OS")
}
