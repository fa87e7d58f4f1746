//go:build !linux

package flows

import (
	"errors"
	"net/netip"
)

// Conntrack is Linux's; elsewhere there is nothing to delete from.
type Conntrack struct{}

// DeleteUntranslated fails: connection tracking is Linux's.
func (Conntrack) DeleteUntranslated([]netip.Addr) (map[netip.Addr]int, error) {
	return nil, errors.ErrUnsupported
}
