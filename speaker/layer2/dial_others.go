//go:build !linux

package layer2

import (
	"errors"
	"net"
	"runtime"
)

// errUnimplemented is returned by everything that needs Linux sockets or netlink.
var errUnimplemented = errors.New("layer2: not implemented on " + runtime.GOOS)

// DialARP is not implemented on this platform; use NewARP with a conn of your own.
func DialARP(ifi *net.Interface) (*Responder, error) { return nil, errUnimplemented }

// DialNDP is not implemented on this platform; use NewNDP with a conn of your own.
func DialNDP(ifi *net.Interface) (*Responder, error) { return nil, errUnimplemented }
