//go:build !linux

package layer2

import "context"

// ReadTopology is not implemented on this platform.
func ReadTopology() (Topology, error) { return Topology{}, errUnimplemented }

// Watch is not implemented on this platform.
func Watch(ctx context.Context) (<-chan struct{}, error) { return nil, errUnimplemented }
